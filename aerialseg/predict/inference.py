"""Applying a trained model: photos of any size in, class probabilities and maps out.

aerialseg.predict.blending holds the algorithm over a plain ``predict_batch`` function; this module
says what a loaded model must offer it (:class:`Predictor`: aerialseg.predict.keras_predictor
runs a Keras model, aerialseg.predict.onnx_predictor an ONNX one, aerialseg.predict.runtimes
loads a file with the runtime it needs), and runs the ``predict`` settings of params.yaml over an
image held in memory or read from disk row by row (aerialseg.predict.mapping, for the predict
stage and aerialseg-predict). It imports no runtime, so mapping with an ONNX model never imports
TensorFlow or Keras.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from aerialseg.errors import InputError
from aerialseg.predict.blending import Blending, FinishedRows, Rows, probabilities_to_index, stream_probabilities

SEGMENTATION = "a model that maps H x W x C images to H x W x K class probabilities"
MODEL_SUFFIXES = (".keras", ".onnx")


class ModelError(InputError, ValueError):
    """A model file cannot be used for prediction; the message names the file and what to do."""


class ModelMismatchError(InputError, ValueError):
    """The model does not fit the data: other classes than params name, or bands the photo lacks."""


class Predictor(Protocol):
    """What prediction needs of a loaded model, whatever runs it: a ``predict_batch`` function
    (float32 (N, H, W, C) pixels 0..255 -> (N, H, W, K) probabilities) that knows its C and K."""

    channels: int
    num_classes: int

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


def model_file(path: str | Path) -> Path:
    """``path``, if it is a file; otherwise an error naming it, before any runtime is loaded."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(
            f"{path}: no such model file (train one with `dvc repro`, or pass the path of a "
            f"{' or '.join(MODEL_SUFFIXES)} model)"
        )
    return path


def classes_mismatch(name: str, classes: int, num_classes: int, output_shape) -> ModelMismatchError:
    """The error of a model ``name`` that outputs ``classes`` classes where ``num_classes`` are expected."""
    return ModelMismatchError(
        f"model {name!r} outputs {classes} classes per pixel, but {num_classes} classes are expected (output shape "
        f"{output_shape}; use the model trained on these classes, or the params.yaml it was trained with)"
    )


def usable_channels(available: int, channels: int, source: str = "image") -> int:
    """How many of an image's ``available`` channels (bands) a model taking ``channels`` gets.

    All of them; or, for a model that takes 3, the first 3 of more, so RGBA pictures and
    Potsdam's 4-band RGBIR tiles (infrared last) are predicted from their RGB bands. Fewer
    channels than the model takes, or extra channels for a model that does not take 3, is an
    error naming both counts.
    """
    if available == channels or available > channels == 3:
        return channels
    if available < channels:
        advice = f"give an image with the model's {channels} bands"
    else:
        advice = f"only extra channels beyond RGB are dropped; give an image with exactly {channels} bands"
    raise ModelMismatchError(f"{source}: has {available} channel(s) but the model takes {channels} ({advice})")


def fit_channels(image: np.ndarray, channels: int, source: str = "image") -> np.ndarray:
    """``image`` (..., C) cut to the channels a model takes (see :func:`usable_channels`)."""
    return image[..., : usable_channels(image.shape[-1], channels, source)]


def predict_rows(
    predictor: Predictor, image: Rows, blending: Blending, progress: bool = False, label: str = ""
) -> Iterator[FinishedRows]:
    """Class probabilities of ``image`` (an array, or a raster read row by row), finished rows
    top to bottom, blended as ``blending`` says: the one prediction path of the predict stage,
    aerialseg-predict, the training snapshots and the evaluation."""
    return stream_probabilities(image, predictor, blending, predictor.num_classes, progress=progress, label=label)


def predict_map(predictor: Predictor, image: Rows, blending: Blending, progress: bool = False) -> np.ndarray:
    """Class-index map (uint8) of ``image``: :func:`predict_rows`, each finished row kept as its
    most probable class only, so the whole map costs one byte per pixel."""
    index = np.empty(image.shape[:2], dtype=np.uint8)
    for first, probabilities in predict_rows(predictor, image, blending, progress):
        index[first : first + len(probabilities)] = probabilities_to_index(probabilities)
    return index
