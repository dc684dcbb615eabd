"""A model file as a predictor (aerialseg.predict.inference.Predictor), run by the runtime its
suffix names: ``.onnx`` on onnxruntime (aerialseg.predict.onnx_predictor), anything else on
Keras (aerialseg.predict.keras_predictor).

Each runtime is imported when its first model is loaded, so mapping with an ONNX model never
imports TensorFlow or Keras (seconds of start-up saved, and an install without them works). Kept
apart from aerialseg.predict.inference so that training and evaluation, which run Keras models
only, do not depend on the ONNX code (dvc.yaml tracks each stage's imports).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aerialseg.errors import first_line, needing_extra
from aerialseg.predict.inference import SEGMENTATION, ModelError, Predictor, model_file


def load_predictor(path: str | Path, num_classes: int, window: int) -> Predictor:
    """The model saved at ``path`` as a predictor of ``num_classes`` classes on windows of
    ``window`` pixels, tried on one window, so that a model that is not a segmentation model (or
    cannot take such windows) is refused before any photo is read.

    An ``.onnx`` file runs on onnxruntime; anything else is loaded by Keras. Each runtime is
    imported here, when its first model is loaded, so an ONNX model never loads TensorFlow."""
    path = model_file(path)
    if path.suffix.lower() == ".onnx":
        from aerialseg.predict.onnx_predictor import load_onnx_predictor as load
    else:
        needs = "a Keras model runs on Keras and TensorFlow"
        with needing_extra("train", str(path), needs, "map its ONNX export, written by aerialseg-export"):
            from aerialseg.predict.keras_predictor import load_keras_predictor as load
    return tried(path, load(path, num_classes), window)


def tried(path: Path, predictor: Predictor, window: int) -> Predictor:
    """``predictor`` once it has mapped one blank ``window`` x ``window`` window to as many
    class probabilities; the runtime's own error, or another output, is an error naming ``path``."""
    try:
        output = predictor(np.zeros((1, window, window, predictor.channels), np.float32))
    except Exception as error:  # the runtime's own error on a window size it cannot take
        raise ModelError(
            f"{path}: cannot predict {window} x {window} windows: {first_line(error)} (use the window size the "
            "model was trained on, params.yaml's patches.patch_size)"
        ) from error
    if output.shape != (1, window, window, predictor.num_classes):
        raise ModelError(
            f"{path}: not a segmentation model: a {window} x {window} window gave output shape {output.shape} "
            f"(use {SEGMENTATION})"
        )
    return predictor
