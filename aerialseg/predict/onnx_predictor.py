"""A model exported to ONNX (aerialseg-export's model.onnx) as a predictor
(aerialseg.predict.inference.Predictor), run by onnxruntime: mapping photos needs neither
TensorFlow nor Keras, only NumPy, rasterio and onnxruntime.

The predictor has no ``predict_symmetries``: blending turns the windows for test-time
augmentation in NumPy (aerialseg.d4) and sends them as ordinary batches, so the exported graph
is run as it is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aerialseg.errors import first_line, needing_extra
from aerialseg.predict.inference import (
    SEGMENTATION,
    ModelError,
    ModelMismatchError,
    classes_mismatch,
    fit_channels,
)

FLOAT32 = "tensor(float)"
PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")  # the first that this onnxruntime has runs the model


class OnnxPredictor:
    """``predict_batch`` for an onnxruntime session of a segmentation model, checked once against
    the classes it must output. Channels: see aerialseg.predict.inference.usable_channels."""

    def __init__(self, session, num_classes: int):
        name = session.get_modelmeta().graph_name
        (photo,), (probabilities,) = segmentation_arguments(session, name)
        classes = probabilities.shape[-1]
        if isinstance(classes, int) and classes != num_classes:
            raise classes_mismatch(name, classes, num_classes, described_shape(probabilities))
        self.session = session
        self.channels = photo.shape[-1]
        self.num_classes = num_classes
        self._names = (photo.name, probabilities.name)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(fit_channels(batch, self.channels, source="batch"), dtype=np.float32)
        photo, probabilities = self._names
        (output,) = self.session.run([probabilities], {photo: pixels})
        return output


def segmentation_arguments(session, name: str) -> tuple[list, list]:
    """The session's inputs and outputs, if they are one float32 (N, H, W, C) input with a fixed C
    and one (N, H, W, K) output; any other graph is refused, naming what it has."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if (
        len(inputs) == 1
        and len(outputs) == 1
        and inputs[0].type == FLOAT32
        and len(inputs[0].shape) == len(outputs[0].shape) == 4
        and isinstance(inputs[0].shape[-1], int)
    ):
        return inputs, outputs
    raise ModelMismatchError(
        f"model {name!r} is not a segmentation model: inputs {described(inputs)}, outputs {described(outputs)} "
        f"(use {SEGMENTATION}, its input float32 (N, H, W, C))"
    )


def described(arguments) -> str:
    """ONNX inputs or outputs as "'photo' tensor(float) (None, None, None, 3)" (None: any size)."""
    return "; ".join(f"{each.name!r} {each.type} {described_shape(each)}" for each in arguments) or "none"


def described_shape(argument) -> tuple:
    """An ONNX argument's shape as Keras writes shapes: a named or unknown dimension is None."""
    return tuple(size if isinstance(size, int) else None for size in argument.shape)


def load_onnx_predictor(path: Path, num_classes: int) -> OnnxPredictor:
    """The ONNX model at ``path`` as a predictor of ``num_classes`` classes; a file onnxruntime
    cannot load, or a model that does not fit, is an error naming the file."""
    session = onnx_session(path)
    try:
        return OnnxPredictor(session, num_classes)
    except ModelMismatchError as error:
        raise ModelError(f"{path}: {error}") from error


def onnx_session(path: Path):
    """An onnxruntime session of ``path`` on the best device this onnxruntime has. onnxruntime is
    imported here: an install without it (it is the ``onnx`` extra) is told how to get it."""
    with needing_extra("onnx", str(path), "an ONNX model runs on onnxruntime"):
        import onnxruntime
    providers = [provider for provider in PROVIDERS if provider in onnxruntime.get_available_providers()]
    try:
        return onnxruntime.InferenceSession(path, providers=providers)
    except Exception as error:  # onnxruntime raises its own types for files it cannot load
        raise ModelError(
            f"{path}: not an ONNX model onnxruntime can run ({first_line(error)}) (pass the model.onnx that "
            "aerialseg-export writes)"
        ) from error
