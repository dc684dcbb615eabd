"""Training input pipeline over the memory-mapped patch arrays.

A keras.utils.PyDataset works with every Keras backend. Batches are read straight from the
memory-mapped .npy files (indices sorted inside a batch so reads stay sequential), so the data
set never has to fit in memory and the model is not kept waiting (see benchmarks/throughput.py).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from aerialseg.data.palette import IGNORE_INDEX
from aerialseg.errors import InputError
from aerialseg.train.augmentation import draw_symmetries


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


class PatchSequence(keras.utils.PyDataset):
    """Batches of ((uint8 photos, symmetry numbers), uint8 class indices), reshuffled every epoch.

    Photos stay uint8 (a quarter of float32's bytes to copy and hand over); the model's input
    layer casts them to float, exactly. With ``augment``, each patch draws one of the 8 D4
    symmetries, which the training model applies on the device (aerialseg.train.augmentation);
    without, every number is 0, the patch as it is.

    The order and symmetries of epoch ``e`` depend only on ``seed`` and ``e``, so a resumed
    training sees exactly the batches an uninterrupted one would have seen.

    Data-parallel training splits every batch evenly over ``devices``, so a short last batch is
    cut to a multiple of it (at most ``devices - 1`` patches left out; with shuffling, others
    each epoch). Of each such global batch, ``part = (index, count)`` yields the index-th of
    ``count`` equal slices: the share one process of a multi-host training feeds to its devices.
    The slices of all processes, in process order, are the batch a single process would yield,
    augmented alike, so the training is the same however many processes feed it.
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
        devices: int = 1,
        part: tuple[int, int] = (0, 1),
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.augment, self.seed = batch_size, shuffle, augment, seed
        self.devices, self.part = devices, part
        self.epoch = first_epoch
        self._order = self._epoch_order()

    def _epoch_order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.images))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.images))

    def __len__(self) -> int:
        full, rest = divmod(len(self.images), self.batch_size)
        return full + (rest >= self.devices)

    def __getitem__(self, index: int):
        batch = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        batch = np.sort(batch[: len(batch) - len(batch) % self.devices])
        process, processes = self.part
        share = len(batch) // processes
        mine = slice(process * share, (process + 1) * share)
        symmetries = np.zeros(len(batch), np.int32)
        if self.augment:
            symmetries = draw_symmetries(len(batch), np.random.default_rng([self.seed, self.epoch, index]))
        return (self.images[batch[mine]], symmetries[mine]), self.labels[batch[mine]]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._epoch_order()
