"""D4 augmentation inside the compiled training step.

Every training patch gets one of the 8 symmetries of the square: a quarter turn, a mirror, or a
mix of both. The loader only draws each patch's symmetry number (seeded by epoch and batch, so a
resumed training sees the same ones). The training model turns the photos on the device and runs
the U-Net on them; its loss and metrics turn the labels alike before comparing. Neither is copied
in NumPy, so the loader stays as fast as without augmentation, and the turning costs a few
element-wise selects in the step: on the photos and the one-channel labels, not on the
prediction or its gradient (benchmarks/throughput.py measures the step).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from aerialseg import d4
from aerialseg.train.model import SERIALIZATION_PACKAGE


def draw_symmetries(count: int, rng: np.random.Generator) -> np.ndarray:
    """The symmetry number (0..7, see aerialseg.d4) of each of ``count`` patches, drawn from ``rng``."""
    return rng.integers(0, d4.SYMMETRIES, count).astype(np.int32)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class D4(layers.Layer):
    """aerialseg.d4.apply_each as a layer: turns the photos (N, H, W, bands) by their symmetry numbers."""

    def call(self, images, symmetries):
        return d4.apply_each(images, symmetries)

    def compute_output_shape(self, images_shape, symmetries_shape):
        return images_shape


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class D4TrainingModel(keras.Model):
    """A model on (photos, symmetry numbers) whose output is the map of the turned photos: its
    loss and metrics turn the labels by the same numbers before comparing (any backend: Keras'
    train and test steps call both methods)."""

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return super().compute_loss(x, self._turned(x, y), y_pred, sample_weight, training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, self._turned(x, y), y_pred, sample_weight)

    @staticmethod
    def _turned(x, labels):
        """The labels turned as the photos ``x[0]`` were, by the numbers ``x[1]``; as int32, since
        TensorFlow's oneDNN transpose logs an error for uint8 before falling back to Eigen's."""
        return d4.apply_each(ops.cast(labels, "int32"), x[1])


def training_model(model: keras.Model) -> keras.Model:
    """``model`` behind a D4 turn of its input: the model that is compiled and fitted, on
    (photos, symmetry numbers), against the labels as stored. Number 0 leaves a patch as it is."""
    images = keras.Input(model.input_shape[1:], name="images")
    symmetries = keras.Input((), dtype="int32", name="symmetries")
    outputs = model(D4(name="turn")(images, symmetries))
    return D4TrainingModel([images, symmetries], outputs, name=f"{model.name}_d4_training")


def segmentation_model(training: keras.Model) -> keras.Model:
    """The model inside a :func:`training_model`: what is saved, snapshotted and predicts."""
    return next(layer for layer in training.layers if isinstance(layer, keras.Model))
