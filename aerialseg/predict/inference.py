"""Applying a trained Keras model: photos of any size in, class probabilities and maps out.

aerialseg.predict.blending holds the algorithm over a plain ``predict_batch`` function; this module
loads a Keras model and adapts it to it (checking once that it is a segmentation model for the
expected classes), and runs the ``predict`` settings of params.yaml over an image held in memory
or read from disk row by row (aerialseg.predict.mapping, for the predict stage and aerialseg-predict).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np

import aerialseg.train.model  # noqa: F401  registers the encoder preprocessing layer a saved model may use
from aerialseg import d4
from aerialseg.errors import InputError
from aerialseg.predict.blending import (
    Blending,
    FinishedRows,
    Rows,
    probabilities_to_index,
    stream_probabilities,
    window_weights,
)

SEGMENTATION = "a model that maps H x W x C images to H x W x K class probabilities"


class ModelError(InputError, ValueError):
    """A model file cannot be used for prediction; the message names the file and what to do."""


class ModelMismatchError(InputError, ValueError):
    """The model does not fit the data: other classes than params name, or bands the photo lacks."""


class KerasPredictor:
    """``predict_batch`` for a Keras model, checked once against the classes it must output.

    Channels: see :func:`usable_channels`.
    """

    def __init__(self, model, num_classes: int):
        channels, classes = segmentation_shape(model)
        if classes != num_classes:
            raise ModelMismatchError(
                f"model {model.name!r} outputs {classes} classes per pixel, but {num_classes} classes are "
                f"expected (output shape {model.output_shape}; use the model trained on these classes, or the "
                "params.yaml it was trained with)"
            )
        self.model = model
        self.channels = channels
        self.num_classes = num_classes
        self._symmetric: dict[tuple, keras.Model] = {}  # compiled per (symmetries, window size, profile)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(fit_channels(batch, self.channels, source="batch")))

    def predict_symmetries(self, batch: np.ndarray, symmetries: tuple[int, ...], profile: np.ndarray) -> np.ndarray:
        """Test-time augmentation on the backend's device: the windows under every symmetry go
        through the model as one batch, and come back with the symmetries undone, summed and
        weighted per window, in one compiled call (see blending.SymmetricPredictor)."""
        key = (symmetries, batch.shape[1:3], profile.tobytes())
        if key not in self._symmetric:
            self._symmetric[key] = symmetric_model(self.model, symmetries, window_weights(profile), self.channels)
        return np.asarray(self._symmetric[key].predict_on_batch(fit_channels(batch, self.channels, source="batch")))


def symmetric_model(model: keras.Model, symmetries: tuple[int, ...], weights: np.ndarray, channels: int):
    """``model`` wrapped to take N windows of the size of ``weights`` (H, W) and return, per
    window, the sum over ``symmetries`` (aerialseg.d4 numbers) of its predictions with each
    symmetry undone, times ``weights`` (the windows are square, so transposes fit)."""
    inputs = keras.Input((*weights.shape, channels))
    predictions = model(_Turned(symmetries)(inputs))
    if isinstance(predictions, (list, tuple)):  # a functional model saved with outputs=[...], as the train stage's
        (predictions,) = predictions
    outputs = _UndoAndSum(symmetries)(predictions) * weights[:, :, None]
    return keras.Model(inputs, outputs, name=f"{model.name}_tta")


class _Turned(keras.layers.Layer):
    """(N, H, W, C) -> (S N, H, W, C): the batch under each of the S symmetries, one after another."""

    def __init__(self, symmetries: tuple[int, ...], **kwargs):
        super().__init__(**kwargs)
        self.symmetries = symmetries

    def call(self, batch):
        return keras.ops.concatenate([d4.apply(batch, s, ops=keras.ops) for s in self.symmetries], axis=0)

    def compute_output_shape(self, shape):
        return (None, *shape[1:])


class _UndoAndSum(_Turned):
    """(S N, H, W, K) -> (N, H, W, K): each symmetry's part undone, the parts summed."""

    def call(self, predictions):
        parts = keras.ops.split(predictions, len(self.symmetries), axis=0)
        return sum(d4.undo(part, s, ops=keras.ops) for part, s in zip(parts, self.symmetries))


def segmentation_shape(model) -> tuple[int, int]:
    """(channels in, classes out) of a model with one (batch, height, width, channels) input and
    one (batch, height, width, classes) output; any other model is refused."""
    input_shape, output_shape = model.input_shape, model.output_shape
    if not isinstance(input_shape, tuple) or not isinstance(output_shape, tuple):
        raise ModelMismatchError(
            f"model {model.name!r}: expected one input and one output, got input shape "
            f"{input_shape} and output shape {output_shape} (use {SEGMENTATION})"
        )
    if len(input_shape) != 4 or len(output_shape) != 4:
        raise ModelMismatchError(
            f"model {model.name!r} is not a segmentation model: input shape {input_shape}, output shape "
            f"{output_shape} (use {SEGMENTATION})"
        )
    return input_shape[-1], output_shape[-1]


def load_model(path: str | Path) -> keras.Model:
    """The Keras model saved at ``path``; a missing or foreign file is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file (train one with `dvc repro`, or pass the path of a .keras model)")
    try:
        return keras.saving.load_model(path)
    except Exception as error:  # Keras raises many types for files it cannot load
        reason = _first_line(error).split(". ")[0]  # Keras goes on about formats it no longer reads
        raise ModelError(
            f"{path}: not a Keras model ({reason}) (pass a .keras file saved by the train stage)"
        ) from error


def load_predictor(path: str | Path, num_classes: int, window: int) -> KerasPredictor:
    """The Keras model saved at ``path`` as a predictor of ``num_classes`` classes on windows of
    ``window`` pixels, tried on one window, so that a model that is not a segmentation model (or
    cannot take such windows) is refused before any photo is read."""
    path = Path(path)
    model = load_model(path)
    try:
        predictor = KerasPredictor(model, num_classes)
    except ModelMismatchError as error:
        raise ModelError(f"{path}: {error}") from error
    try:
        output = predictor(np.zeros((1, window, window, predictor.channels), np.float32))
    except Exception as error:  # the model's own error on a window size it cannot take
        raise ModelError(
            f"{path}: cannot predict {window} x {window} windows: {_first_line(error)} (use the window size the "
            "model was trained on, params.yaml's patches.patch_size)"
        ) from error
    if output.shape != (1, window, window, num_classes):
        raise ModelError(
            f"{path}: not a segmentation model: a {window} x {window} window gave output shape {output.shape} "
            f"(use {SEGMENTATION})"
        )
    return predictor


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


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
    predictor: KerasPredictor, image: Rows, blending: Blending, progress: bool = False, label: str = ""
) -> Iterator[FinishedRows]:
    """Class probabilities of ``image`` (an array, or a raster read row by row), finished rows
    top to bottom, blended as ``blending`` says: the one prediction path of the predict stage,
    aerialseg-predict, the training snapshots and the evaluation."""
    return stream_probabilities(image, predictor, blending, predictor.num_classes, progress=progress, label=label)


def predict_map(predictor: KerasPredictor, image: Rows, blending: Blending, progress: bool = False) -> np.ndarray:
    """Class-index map (uint8) of ``image``: :func:`predict_rows`, each finished row kept as its
    most probable class only, so the whole map costs one byte per pixel."""
    index = np.empty(image.shape[:2], dtype=np.uint8)
    for first, probabilities in predict_rows(predictor, image, blending, progress):
        index[first : first + len(probabilities)] = probabilities_to_index(probabilities)
    return index
