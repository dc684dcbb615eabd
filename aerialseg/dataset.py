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

from aerialseg.palette import IGNORE_INDEX


class PatchDataError(ValueError):
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
    """Apply one random flip/90-degree rotation per sample, the same to photo and label."""
    images, labels = images.copy(), labels.copy()
    for i, (turns, flip) in enumerate(zip(rng.integers(0, 4, len(images)), rng.integers(0, 2, len(images)))):
        image, label = np.rot90(images[i], turns), np.rot90(labels[i], turns)
        if flip:
            image, label = image[:, ::-1], label[:, ::-1]
        images[i], labels[i] = image, label
    return images, labels


class PatchSequence(keras.utils.PyDataset):
    """Batches of (float32 RGB 0..255, uint8 class index) patches, reshuffled every epoch.

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
        return images.astype(np.float32), labels

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._epoch_order()
