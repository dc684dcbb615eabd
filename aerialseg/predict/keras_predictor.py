"""A Keras model as a predictor (aerialseg.predict.inference.Predictor), with test-time
augmentation compiled into the model's call.

Kept apart from aerialseg.predict.inference so that only a ``.keras`` model loads Keras (and with
it TensorFlow): aerialseg.predict.inference.load_predictor imports this module for one.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

import aerialseg.train.model  # noqa: F401  registers the encoder preprocessing layer a saved model may use
from aerialseg import d4
from aerialseg.errors import first_line
from aerialseg.predict.blending import window_weights
from aerialseg.predict.inference import (
    SEGMENTATION,
    ModelError,
    ModelMismatchError,
    classes_mismatch,
    fit_channels,
    model_file,
)


class KerasPredictor:
    """``predict_batch`` for a Keras model, checked once against the classes it must output.

    Channels: see aerialseg.predict.inference.usable_channels.
    """

    def __init__(self, model, num_classes: int):
        channels, classes = segmentation_shape(model)
        if classes != num_classes:
            raise classes_mismatch(model.name, classes, num_classes, model.output_shape)
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
    path = model_file(path)
    try:
        return keras.saving.load_model(path)
    except Exception as error:  # Keras raises many types for files it cannot load
        reason = first_line(error).split(". ")[0]  # Keras goes on about formats it no longer reads
        raise ModelError(
            f"{path}: not a Keras model ({reason}) (pass a .keras file saved by the train stage, or an .onnx export)"
        ) from error


def load_keras_predictor(path: Path, num_classes: int) -> KerasPredictor:
    """The Keras model at ``path`` as a predictor of ``num_classes`` classes; a model that does
    not fit is an error naming the file (aerialseg.predict.inference.load_predictor tries it)."""
    try:
        return KerasPredictor(load_model(path), num_classes)
    except ModelMismatchError as error:
        raise ModelError(f"{path}: {error}") from error
