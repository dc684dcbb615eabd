"""D4 augmentation inside the compiled training step.

Every training patch gets one of the 8 symmetries of the square: a quarter turn, a mirror, or a
mix of both. The loader only draws each patch's symmetry number (seeded by epoch and batch, so a
resumed training sees the same ones). The training model turns the photos on the device, runs
the U-Net and turns its output back, so the loss compares the prediction for the turned photo,
turned back, with the label as stored. The loss and the metrics sum over pixels, so that is the
same as turning photo and label alike, but without copying either in NumPy: the loader stays
as fast as without augmentation, and on a GPU the turning costs next to nothing
(benchmarks/throughput.py measures both).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from aerialseg.model import SERIALIZATION_PACKAGE

SYMMETRIES = 8


def draw_symmetries(count: int, rng: np.random.Generator) -> np.ndarray:
    """The symmetry number (0..7) of each of ``count`` patches, drawn from ``rng``."""
    return rng.integers(0, SYMMETRIES, count).astype(np.int32)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class D4(layers.Layer):
    """Turns each sample of (N, H, W, C), H == W, by its symmetry number, or undoes it.

    Bit 0 of the number transposes the sample, bit 1 flips its rows, bit 2 its columns, in that
    order; ``inverse=True`` undoes the three in reverse order. Eight numbers, eight symmetries.
    """

    def __init__(self, inverse: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.inverse = inverse

    def call(self, images, symmetries):
        steps = [
            (1, lambda x: ops.transpose(x, (0, 2, 1, 3))),
            (2, lambda x: ops.flip(x, axis=1)),
            (4, lambda x: ops.flip(x, axis=2)),
        ]
        for bit, step in reversed(steps) if self.inverse else steps:
            chosen = ops.reshape(ops.not_equal(ops.mod(ops.floor_divide(symmetries, bit), 2), 0), (-1, 1, 1, 1))
            images = ops.where(chosen, step(images), images)
        return images

    def compute_output_shape(self, images_shape, symmetries_shape):
        return images_shape

    def get_config(self):
        return {**super().get_config(), "inverse": self.inverse}


def training_model(model: keras.Model) -> keras.Model:
    """``model`` between a D4 turn of its input and the turn back of its output: the model that
    is compiled and fitted, on (photos, symmetry numbers). Number 0 leaves a patch as it is."""
    images = keras.Input(model.input_shape[1:], name="images")
    symmetries = keras.Input((), dtype="int32", name="symmetries")
    outputs = D4(inverse=True, name="turn_back")(model(D4(name="turn")(images, symmetries)), symmetries)
    return keras.Model([images, symmetries], outputs, name=f"{model.name}_d4_training")


def segmentation_model(training: keras.Model) -> keras.Model:
    """The model inside a :func:`training_model`: what is saved, snapshotted and predicts."""
    return next(layer for layer in training.layers if isinstance(layer, keras.Model))
