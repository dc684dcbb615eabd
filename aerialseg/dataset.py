"""Training input pipeline over the memory-mapped patch arrays.

A keras.utils.PyDataset works with every Keras backend. Batches are read straight from the
memory-mapped .npy files (indices sorted inside a batch so reads stay sequential), so the data
set never has to fit in memory and the model is not kept waiting (see benchmarks/input_pipeline.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np

from aerialseg.errors import InputError
from aerialseg.palette import IGNORE_INDEX


class PatchDataError(InputError, ValueError):
    """The patch arrays are missing, empty, inconsistent or hold classes the model does not know."""


def open_patches(images_path: str | Path, labels_path: str | Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Memory-map a split's patch arrays and check they fit together and match the class count."""
    arrays = []
    for path in (Path(images_path), Path(labels_path)):
        if not path.is_file():
            raise PatchDataError(f"{path}: no such file (run `dvc repro patches` first)")
        try:
            array = np.load(path, mmap_mode="r")
        except ValueError as error:
            raise PatchDataError(f"{path}: not a readable .npy array ({error})") from error
        if len(array) == 0:
            raise PatchDataError(f"{path}: holds no patches")
        arrays.append(array)
    images, labels = arrays
    if images.shape[:3] != labels.shape:
        raise PatchDataError(f"{images_path} {images.shape} and {labels_path} {labels.shape} do not match")
    present = np.unique(labels)
    unknown = present[(present >= num_classes) & (present != IGNORE_INDEX)]
    if unknown.size:
        raise PatchDataError(
            f"{labels_path}: holds class indices {unknown.tolist()} but params name "
            f"{num_classes} classes; rerun the patches stage after changing `classes`"
        )
    return images, labels


def augment_d4(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Apply one random flip/90-degree rotation per sample, the same to photo and label.

    The samples that drew the same of the 8 symmetries are turned together, so a batch costs at
    most 8 vectorised copies instead of one Python step per sample (benchmarks/throughput.py).
    """
    turns, flips = rng.integers(0, 4, len(images)), rng.integers(0, 2, len(images))
    out_images, out_labels = np.empty_like(images), np.empty_like(labels)
    for turn, flip in {(int(t), int(f)) for t, f in zip(turns, flips)}:
        chosen = np.flatnonzero((turns == turn) & (flips == flip))
        out_images[chosen] = _turn(images[chosen], turn, flip)
        out_labels[chosen] = _turn(labels[chosen], turn, flip)
    return out_images, out_labels


def _turn(batch: np.ndarray, turns: int, flip: bool) -> np.ndarray:
    """Quarter turns of each sample of (N, H, W, ...), then a left-right flip if ``flip``."""
    turned = np.rot90(batch, turns, axes=(1, 2))
    return turned[:, :, ::-1] if flip else turned


class PatchSequence(keras.utils.PyDataset):
    """Batches of (uint8 RGB, uint8 class index) patches, reshuffled every epoch.

    Photos stay uint8 (a quarter of float32's bytes to copy and hand over); the model's input
    layer casts them to float, exactly.

    The order and augmentation of epoch ``e`` depend only on ``seed`` and ``e``, so a resumed
    training sees exactly the batches an uninterrupted one would have seen.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        shuffle: bool = False,
        augment: bool = False,
        seed: int = 0,
        first_epoch: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.augment, self.seed = batch_size, shuffle, augment, seed
        self.epoch = first_epoch
        self._order = self._epoch_order()

    def _epoch_order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.images))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.images))

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index: int):
        batch = np.sort(self._order[index * self.batch_size : (index + 1) * self.batch_size])
        images, labels = self.images[batch], self.labels[batch]
        if self.augment:
            images, labels = augment_d4(images, labels, np.random.default_rng([self.seed, self.epoch, index]))
        return images, labels

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._epoch_order()
