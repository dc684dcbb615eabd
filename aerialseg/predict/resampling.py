"""A photo seen at a model's ground resolution, and its map brought back to the photo's grid, by rows.

A network learns objects at a size in pixels, so a photo is mapped best at the metres per pixel
the model was trained at. :class:`ResampledRows` shows a photo (any :class:`Rows`, e.g. a raster
read from disk by rows) at another size over the same ground, reading only the photo rows that
the requested rows cover; :func:`to_photo_grid` takes the model-resolution probabilities as
blending finishes them, top to bottom, and hands out the photo's rows as soon as the model rows
they need have all come, keeping only those still needed. So the photo and its map are never
whole in memory, at either resolution.

One kernel serves both ways and both directions (:class:`AxisMap`): each output pixel averages
the input pixels its footprint overlaps, weighted by the overlap, with the footprint at least one
input pixel wide. Shrinking, that is GDAL's area average (a 2 x 2 mean for a factor of 2);
enlarging, it is linear interpolation between pixel centres. Probabilities are resampled so;
classes are taken from the nearest model pixel (no class between two classes is invented).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from aerialseg.predict.blending import FinishedRows, Rows, probabilities_to_index

SAME_RESOLUTION = 0.01  # a photo within this share of the model's resolution is mapped as it is

PhotoRows = tuple[int, np.ndarray, np.ndarray]  # (first photo row, probabilities (n, W, K), classes (n, W) uint8)


def model_shape(
    photo_hw: tuple[int, int], photo_sides: tuple[float, float] | None, model_size: float | None
) -> tuple[int, int]:
    """The photo's size in pixels at the model's resolution, from its pixels' width and height in
    metres (``photo_sides``): its own size where either resolution is unknown or both sides are
    within SAME_RESOLUTION of the model's (mapped as it is)."""
    if photo_sides is None or model_size is None:
        return photo_hw
    width, height = photo_sides
    if all(abs(side / model_size - 1) < SAME_RESOLUTION for side in photo_sides):
        return photo_hw
    return max(1, round(photo_hw[0] * height / model_size)), max(1, round(photo_hw[1] * width / model_size))


@dataclass(frozen=True)
class AxisMap:
    """How ``n_in`` pixels along one axis become ``n_out``: output pixel ``j`` is the sum over
    taps ``t`` of ``weights[j, t]`` times input pixel ``indices[j, t]`` (zero weights pad the
    taps), and ``nearest[j]`` is the input pixel under its centre."""

    indices: np.ndarray
    weights: np.ndarray
    nearest: np.ndarray

    @classmethod
    def of(cls, n_in: int, n_out: int) -> AxisMap:
        factor = n_in / n_out
        centres = (np.arange(n_out) + 0.5) * factor
        half = max(factor, 1.0) / 2
        low, high = np.clip(centres - half, 0, n_in), np.clip(centres + half, 0, n_in)
        first = np.floor(low).astype(np.int64)
        pixels = first[:, None] + np.arange(math.ceil(max(factor, 1.0)) + 1)
        overlap = np.clip(np.minimum(pixels + 1, high[:, None]) - np.maximum(pixels, low[:, None]), 0, None)
        nearest = np.minimum(np.floor(centres).astype(np.int64), n_in - 1)
        return cls(np.minimum(pixels, n_in - 1), overlap / overlap.sum(1, keepdims=True), nearest)

    def needs(self) -> tuple[np.ndarray, np.ndarray]:
        """(first, last + 1) input pixel each output pixel reads (its taps and its nearest), both
        ascending along the axis, so the input pixels a band of output pixels needs are one range."""
        used = self.weights > 0
        first = np.minimum(np.where(used, self.indices, np.iinfo(np.int64).max).min(1), self.nearest)
        last = np.maximum(np.where(used, self.indices, -1).max(1), self.nearest)
        return first, last + 1

    def average(self, data: np.ndarray, out: slice, offset: int, axis: int) -> np.ndarray:
        """Output pixels ``out`` along ``axis`` of ``data``, whose first pixel is input pixel ``offset``."""
        indices = np.clip(self.indices[out] - offset, 0, data.shape[axis] - 1)
        shape = [1] * data.ndim
        shape[axis] = len(indices)
        result = np.zeros(data.shape[:axis] + (len(indices),) + data.shape[axis + 1 :], np.float32)
        for tap in range(indices.shape[1]):
            result += self.weights[out, tap].astype(np.float32).reshape(shape) * np.take(data, indices[:, tap], axis)
        return result


class ResampledRows:
    """The image ``source`` (:class:`Rows`) resampled to ``height`` x ``width`` pixels over the same
    ground, itself a :class:`Rows` of uint8 pixels, as a photo stored at that size would be."""

    def __init__(self, source: Rows, height: int, width: int):
        self.source = source
        self.shape = (height, width, source.shape[2])
        self.rows, self.cols = AxisMap.of(source.shape[0], height), AxisMap.of(source.shape[1], width)
        self.reads = self.rows.needs()

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        first, stop = int(rows[0]), int(rows[-1]) + 1
        low, high = self.reads[0][first:stop].min(), self.reads[1][first:stop].max()
        strip = np.asarray(self.source[np.arange(low, high)], dtype=np.float32)
        band = self.rows.average(strip, slice(first, stop), low, axis=0)
        pixels = self.cols.average(band, slice(None), 0, axis=1)
        return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)[rows - first]


def to_photo_grid(pieces: Iterator[FinishedRows], model_hw: tuple[int, int], photo_hw: tuple[int, int]):
    """Finished model-resolution probability rows (top to bottom, as blending hands them out) as
    :data:`PhotoRows` of the photo's grid: probabilities averaged, classes the nearest model
    pixel's. A photo row is handed out once every model row it needs has come, and a model row is
    kept only while a photo row still to come needs it: a few model rows besides one piece."""
    rows, cols = AxisMap.of(model_hw[0], photo_hw[0]), AxisMap.of(model_hw[1], photo_hw[1])
    needed_from, needed_to = rows.needs()
    kept, kept_from, done = None, 0, 0
    for first, probabilities in pieces:
        kept = probabilities if kept is None else np.concatenate([kept, probabilities])
        ready = int(np.searchsorted(needed_to, first + len(probabilities), side="right"))
        if ready > done:
            yield _photo_rows(kept, kept_from, rows, cols, slice(done, ready))
            done = ready
            drop = min((needed_from[done] if done < photo_hw[0] else model_hw[0]) - kept_from, len(kept))
            kept, kept_from = kept[drop:], kept_from + drop


def _photo_rows(model_rows: np.ndarray, offset: int, rows: AxisMap, cols: AxisMap, out: slice) -> PhotoRows:
    """Photo rows ``out`` from the model rows held, the first of which is model row ``offset``."""
    probabilities = cols.average(rows.average(model_rows, out, offset, axis=0), slice(None), 0, axis=1)
    classes = probabilities_to_index(model_rows[rows.nearest[out] - offset][:, cols.nearest])
    return out.start, probabilities, classes
