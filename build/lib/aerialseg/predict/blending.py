"""Whole-tile prediction: a model trained on small windows applied to a photo of any size.

The algorithm only: it takes any ``predict_batch`` function (aerialseg.predict.inference adapts a Keras
model to it) and arrays, and knows nothing of files.

Two modes:

* ``plain``: non-overlapping windows; the last row and column of windows reach past the photo
  into a mirrored border, which is cropped away. Cheap, and the baseline: window edges, where
  the network sees little context, show as seams in the map.
* ``smooth``: the "smooth tiled predictions" technique (Chevalier, Vooban 2017). Windows
  overlap (step = window // subdivisions), each window's probabilities are weighted by a smooth
  2-D window that is close to zero at its edges (the squared spline of the original, or Hann),
  the photo is mirror-padded so every photo pixel is covered by a full set of overlapping
  windows, and each window is also predicted under test-time augmentation (flips, rotations),
  undone before blending.

Unlike the widely copied original, prediction streams: windows come from a generator (the
mirror padding is built one strip of rows at a time), are predicted ``batch_size`` at a time,
and accumulate into running float32 sums of the rows they touch. Windows go top to bottom, so
once the next window starts below a row, that row is final: it is divided by its summed
weights (every pixel exactly normalised, borders included), handed out and forgotten.
:func:`stream_probabilities` is the algorithm; its image is an array or anything that gives rows
by index (a raster on disk, read window row by window row), so peak memory is a few windows'
height of rows plus one batch, whatever the image's size. :func:`predict_probabilities` is the
same stream collected into one array. The original holds every window of every rotation in
float64 at once (tens of GB for a 6000 x 6000 tile), leaves the last strip unpredicted when the
size is not a multiple of the step, and breaks on non-square photos.
"""

from __future__ import annotations

import collections
import functools
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from tqdm import tqdm

from aerialseg import d4
from aerialseg.pipeline.params import PredictParams

MODES = ("plain", "smooth")
WINDOW_FUNCTIONS = ("spline", "hann")

PredictBatch = Callable[[np.ndarray], np.ndarray]
FinishedRows = tuple[int, np.ndarray]  # (first image row, probabilities of the rows from there)


class SymmetricPredictor(Protocol):
    """A ``predict_batch`` that can also apply test-time symmetries itself (see _tta_plan)."""

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...

    def predict_symmetries(self, batch: np.ndarray, symmetries: tuple[int, ...], profile: np.ndarray) -> np.ndarray:
        """For each window, the sum over ``symmetries`` (aerialseg.d4 numbers) of its predictions
        with the symmetry undone, weighted by the outer product of the 1-D ``profile`` with itself (the blending
        weights, see :func:`window_weights`): (N, window, window, C) in, (N, window, window, K) out."""


class Rows(Protocol):
    """An H x W x C image that gives its rows by index: a NumPy array, or a raster read from disk
    window by window (aerialseg.raster.streaming.RasterInput), so no whole image need be in memory."""

    shape: tuple[int, ...]

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        """The image rows ``rows`` (ascending indices), as a (len(rows), W, C) array."""


@dataclass(frozen=True, kw_only=True)
class Blending:
    """How a photo is cut into windows and their predictions joined: the settings every
    prediction path (predict stage, aerialseg-predict, training snapshots, evaluation) hands on
    in one piece, checked once, when made (:meth:`from_params` makes them from params.yaml).

    ``mode``: ``plain`` or ``smooth`` (see the module docstring); ``plain`` ignores
    ``subdivisions``, ``window_function`` and ``tta``. ``window``: the side of the square windows
    the model predicts, in pixels. ``subdivisions``: smooth windows overlap by all but
    ``window // subdivisions`` pixels. ``window_function``: the blending weights (see
    :func:`window_profile`). ``tta``: the test-time augmentation set (aerialseg.d4.TTA_SETS).
    ``batch_size``: windows per forward pass.
    """

    mode: str = "smooth"
    window: int
    subdivisions: int = 2
    window_function: str = "spline"
    tta: str = "d4"
    batch_size: int = 16

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown prediction mode {self.mode!r}: use one of {MODES}")
        if self.tta not in d4.TTA_SETS:
            raise ValueError(f"unknown test-time augmentation {self.tta!r}: use one of {tuple(d4.TTA_SETS)}")
        if self.window_function not in WINDOW_FUNCTIONS:
            raise ValueError(f"unknown window function {self.window_function!r}: use one of {WINDOW_FUNCTIONS}")
        if self.window < 1 or self.batch_size < 1:
            raise ValueError(f"window ({self.window}) and batch_size ({self.batch_size}) must be positive")
        if not 1 <= self.subdivisions <= self.window:
            raise ValueError(
                f"subdivisions must be between 1 and the window size {self.window}, got {self.subdivisions}"
            )

    @classmethod
    def from_params(cls, params: PredictParams, window: int, mode: str) -> Blending:
        """The ``predict`` settings of params.yaml for windows of ``window`` pixels in ``mode``:
        the one way from params to blending, so no caller forgets or renames a setting."""
        return cls(mode=mode, window=window, **params.model_dump())


def predict_probabilities(
    image: np.ndarray, predict_batch: PredictBatch, blending: Blending, num_classes: int, progress: bool = False
) -> np.ndarray:
    """Class probabilities (H, W, K) float32 for an H x W x C image of any size: the rows of
    :func:`stream_probabilities` (which explains the arguments) written into one array."""
    probabilities = np.empty(image.shape[:2] + (num_classes,), dtype=np.float32)
    rows = stream_probabilities(image, predict_batch, blending, num_classes, progress=progress, out=probabilities)
    collections.deque(rows, maxlen=0)  # runs the stream to its end
    return probabilities


def stream_probabilities(
    image: Rows,
    predict_batch: PredictBatch,
    blending: Blending,
    num_classes: int,
    progress: bool = False,
    label: str = "",
    out: np.ndarray | None = None,
) -> Iterator[FinishedRows]:
    """Class probabilities of an H x W x C image, finished rows top to bottom: ``(first row,
    (n, W, K) float32)`` pieces that tile the image exactly once.

    ``image`` is read one window's height of rows at a time (see :class:`Rows`), and a row is
    handed out as soon as no window still to come touches it, so a raster larger than memory can
    be predicted and written row band by row band, with the same result as the whole at once.
    ``predict_batch`` maps a float32 (N, window, window, C) batch to (N, window, window, K)
    probabilities; ``blending`` says which windows and how they are joined (:class:`Blending`).
    The progress bar (``label`` before its name) counts windows and shows the time left.
    ``out``: an (H, W, K) float32 array that the finished rows are written into (the pieces are
    then views of it), instead of a new array per piece.
    """
    _check_image(image.shape, num_classes)
    window, smooth = blending.window, blending.mode == "smooth"
    grid = plan_grid(image.shape[0], image.shape[1], window, blending.subdivisions if smooth else 1)
    profile = window_profile(window, blending.window_function) if smooth else np.ones(window, np.float32)
    symmetries = d4.TTA_SETS[blending.tta if smooth else "none"]
    bar = dict(desc=f"{label}{blending.mode} windows", disable=not progress)
    return _stream(image, grid, predict_batch, profile, symmetries, num_classes, blending.batch_size, bar, out)


def probabilities_to_index(probabilities: np.ndarray) -> np.ndarray:
    """The most probable class of each pixel, as a uint8 class-index map."""
    return np.argmax(probabilities, axis=-1).astype(np.uint8)


# --- Window layout and weights ----------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """Where the windows go: a mirror-padded canvas tiled by windows every ``step`` pixels.

    ``border`` pixels are added before the image on top and left (and at least as many after it),
    so that each image pixel lies inside ``subdivisions`` windows along each axis; the bottom and
    right are padded further so the last window ends exactly at the canvas edge. Only the image
    part of each window's prediction is kept, so nothing of the canvas outside the image is stored.
    """

    image_shape: tuple[int, int]
    window: int
    step: int
    border: int
    padded_shape: tuple[int, int]

    def starts(self, axis: int) -> range:
        """Canvas coordinates where windows start along ``axis`` (0: rows, 1: columns)."""
        return range(0, self.padded_shape[axis] - self.window + 1, self.step)

    def positions(self) -> Iterator[tuple[int, int]]:
        """Top-left canvas corners of the windows, row by row, generated lazily."""
        return itertools.product(self.starts(0), self.starts(1))

    def count(self) -> int:
        return len(self.starts(0)) * len(self.starts(1))

    def clip(self, start: int, axis: int) -> tuple[slice, slice]:
        """(image slice, window slice) of the pixels that a window starting at ``start`` shares with the image."""
        first = start - self.border
        low, high = max(first, 0), min(first + self.window, self.image_shape[axis])
        return slice(low, high), slice(low - first, high - first)

    def padded_rows(self, image: Rows, start: int) -> np.ndarray:
        """The ``window`` canvas rows from ``start``: mirror-padded on the fly, one strip at a time,
        so no padded copy of the whole image is ever made. Only the image rows the strip shows are
        read; rows above and below the image mirror the image's own first and last rows."""
        rows = _reflect(np.arange(start, start + self.window) - self.border, self.image_shape[0])
        needed = np.unique(rows)
        strip = np.asarray(image[needed])[np.searchsorted(needed, rows)]
        right = self.padded_shape[1] - self.border - self.image_shape[1]
        padding = [(0, 0), (self.border, right)] + [(0, 0)] * (strip.ndim - 2)
        return np.pad(strip, padding, mode="reflect")


def plan_grid(height: int, width: int, window: int, subdivisions: int) -> Grid:
    """Window layout for an image of this size (``subdivisions=1``: plain, no overlap, no border)."""
    step = window // subdivisions
    border = window - step
    padded_shape = tuple(_grid_length(border + side + border, window, step) for side in (height, width))
    return Grid((height, width), window, step, border, padded_shape)


def _grid_length(length: int, window: int, step: int) -> int:
    """Smallest canvas length >= ``length`` (and >= ``window``) that windows every ``step`` fill exactly."""
    return window + -(-max(length - window, 0) // step) * step


def _reflect(index: np.ndarray, length: int) -> np.ndarray:
    """Mirror indices into 0..length-1 without repeating the edge pixel (NumPy's "reflect" padding)."""
    if length == 1:
        return np.zeros_like(index)
    period = 2 * (length - 1)
    index = np.mod(index, period)
    return np.where(index < length, index, period - index)


def window_profile(window: int, function: str = "spline") -> np.ndarray:
    """1-D blending weights (window,) float32, largest at the centre, > 0 everywhere, mean 1.

    ``spline``: the original technique's squared spline, ``(2t)^2 / 2`` on the outer quarters and
    ``1 - (2 (1 - t))^2 / 2`` in the middle half of a triangle ``t``; copies shifted by half a
    window sum to a constant. ``hann``: a Hann window without its zero end points.
    """
    if function == "spline":
        t = _triangle(window)
        profile = np.where(t < 0.5, (2 * t) ** 2 / 2, 1 - (2 * (1 - t)) ** 2 / 2)
    elif function == "hann":
        profile = np.hanning(window + 2)[1:-1]
    else:
        raise ValueError(f"unknown window function {function!r}: use one of {WINDOW_FUNCTIONS}")
    return (profile / profile.mean()).astype(np.float32)


def window_weights(profile: np.ndarray) -> np.ndarray:
    """2-D blending weights (window, window): the outer product of a :func:`window_profile`, so
    unchanged by flips and quarter turns (weighting before or after undoing TTA is the same)."""
    return np.outer(profile, profile)


def _triangle(length: int) -> np.ndarray:
    """scipy.signal.windows.triang: a triangle that peaks at 1 and never reaches 0."""
    i = np.arange(length)
    return 1 - np.abs(2 * i - (length - 1)) / (length + length % 2)


def weight_sums(grid: Grid, profile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Summed window weights per image row (H,) and column (W,).

    The 2-D window is an outer product and the windows form a product grid, so the summed 2-D
    weight at pixel (i, j) is ``rows[i] * cols[j]``: two vectors replace an (H, W) weight map.
    """
    return tuple(_axis_weight_sum(grid, profile, axis) for axis in (0, 1))


def _axis_weight_sum(grid: Grid, profile: np.ndarray, axis: int) -> np.ndarray:
    sums = np.zeros(grid.image_shape[axis], dtype=np.float32)
    for start in grid.starts(axis):
        inside, part = grid.clip(start, axis)
        sums[inside] += profile[part]
    return sums


# --- Streaming --------------------------------------------------------------------------------


class _RunningSums:
    """Weighted prediction sums of the image rows from ``first`` on, the rows windows still add to.

    One buffer, grown to the rows the windows of a batch reach (a window's height, or a few more
    when a batch spans several rows of windows of a narrow image) and reused: finished rows are
    handed out, already divided, and the rows still in use moved to its top, so a large tile does
    not page in a new buffer for every row of windows.
    """

    def __init__(self, width: int, num_classes: int):
        self.first, self.used = 0, 0
        self.buffer = np.zeros((0, width, num_classes), dtype=np.float32)

    def add(self, rows: slice, cols: slice, values: np.ndarray) -> None:
        end = rows.stop - self.first
        if end > len(self.buffer):
            grown = np.zeros((end,) + self.buffer.shape[1:], dtype=np.float32)
            grown[: self.used] = self.buffer[: self.used]
            self.buffer = grown
        self.used = max(self.used, end)
        self.buffer[rows.start - self.first : end, cols] += values

    def pop(self, stop: int, scale: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Remove the sums of rows ``first`` to ``stop`` (no window adds to them any more) and
        return them times ``scale`` (stop - first, W): one pass over them, into ``out`` (or a
        new array)."""
        count = stop - self.first
        done = np.multiply(self.buffer[:count], scale[:, :, None], out=out)
        kept = max(self.used - count, 0)
        self.buffer[:kept] = self.buffer[count : count + kept]
        self.buffer[kept : self.used] = 0
        self.first, self.used = stop, kept
        return done


def _stream(
    image: Rows,
    grid: Grid,
    predict_batch: PredictBatch,
    profile: np.ndarray,
    symmetries: tuple[int, ...],
    num_classes: int,
    batch_size: int,
    bar: dict,
    out: np.ndarray | None,
) -> Iterator[FinishedRows]:
    """The generator behind :func:`stream_probabilities`, which checks the arguments before it starts."""
    row_sums, col_sums = weight_sums(grid, profile)
    divisors = (row_sums * len(symmetries), col_sums)
    sums = _RunningSums(grid.image_shape[1], num_classes)
    predict, jobs, per_job, weights = _tta_plan(predict_batch, symmetries, profile)
    with tqdm(total=grid.count() * len(symmetries), unit="window", leave=False, **bar) as progress:
        for batch in _batches(_windows(image, grid, jobs), max(1, batch_size // per_job)):
            # windows come in row order: no window from this batch on touches the rows above its first
            yield from _finish(sums, min(max(batch[0][0] - grid.border, 0), grid.image_shape[0]), divisors, out)
            _accumulate(sums, _predict(batch, predict, grid.window, num_classes), batch, grid, weights)
            progress.update(len(batch) * per_job)
        yield from _finish(sums, grid.image_shape[0], divisors, out)


def _tta_plan(
    predict_batch, symmetries: tuple[int, ...], profile: np.ndarray
) -> tuple[PredictBatch, tuple[int, ...], int, np.ndarray | None]:
    """(predict function, symmetries to apply here, forward passes per window sent, blending
    weights NumPy applies to its predictions: None when the predictor applies them).

    A :class:`SymmetricPredictor` applies the symmetries and the blending weights itself, on its
    device in one compiled call, and returns each window's weighted sum: windows are sent once, a
    batch holds ``batch_size // len(symmetries)`` of them (the same forward batch), and NumPy
    accumulates once per window instead of once per symmetry. Any other function gets every
    turned window, and NumPy weights its predictions (the weights are unchanged by the
    symmetries, so weighting before undoing them is the same).
    """
    if hasattr(predict_batch, "predict_symmetries") and len(symmetries) > 1:
        symmetric = functools.partial(predict_batch.predict_symmetries, symmetries=symmetries, profile=profile)
        return symmetric, d4.TTA_SETS["none"], len(symmetries), None
    return predict_batch, symmetries, 1, window_weights(profile)[..., None]


def _finish(
    sums: _RunningSums, stop: int, divisors: tuple[np.ndarray, np.ndarray], out: np.ndarray | None
) -> Iterator[FinishedRows]:
    """Hand out rows ``sums.first`` to ``stop`` divided by their summed weights (none if there
    are none), written into those rows of ``out`` unless it is None."""
    if stop <= sums.first:
        return
    first, (row_sums, col_sums) = sums.first, divisors
    rows = None if out is None else out[first:stop]
    yield first, sums.pop(stop, 1 / np.outer(row_sums[first:stop], col_sums), rows)


def _accumulate(
    sums: _RunningSums, predictions: np.ndarray, batch: list[tuple], grid: Grid, weights: np.ndarray | None
) -> None:
    """Add one batch of window predictions to the running sums, their symmetries undone, times
    ``weights`` unless None (the predictor weighted them)."""
    for (y, x, symmetry, _), prediction in zip(batch, predictions):
        (rows, window_rows), (cols, window_cols) = grid.clip(y, 0), grid.clip(x, 1)
        part = d4.undo(prediction[None], symmetry)[0, window_rows, window_cols]
        sums.add(rows, cols, part if weights is None else part * weights[window_rows, window_cols])


def _windows(image: Rows, grid: Grid, symmetries: tuple[int, ...]) -> Iterator[tuple]:
    """(y, x, symmetry, pixels) of every window under each symmetry, lazily, one strip of rows at a time."""
    for y in grid.starts(0):
        strip = grid.padded_rows(image, y)
        for x in grid.starts(1):
            for symmetry in symmetries:
                yield y, x, symmetry, d4.apply(strip[None, :, x : x + grid.window], symmetry)[0]


def _batches(jobs: Iterator, size: int) -> Iterator[list]:
    while batch := list(itertools.islice(jobs, size)):
        yield batch


def _predict(batch: list[tuple], predict_batch: PredictBatch, window: int, num_classes: int) -> np.ndarray:
    pixels = np.stack([item[-1] for item in batch]).astype(np.float32, copy=False)
    predictions = np.asarray(predict_batch(pixels), dtype=np.float32)
    expected = (len(batch), window, window, num_classes)
    if predictions.shape != expected:
        raise ValueError(
            f"predictor returned shape {predictions.shape} for a batch of shape {pixels.shape}; expected {expected}"
        )
    return predictions


def _check_image(shape, num_classes: int) -> None:
    """What :class:`Blending` cannot check: the image and the predictor's classes."""
    if len(shape) != 3 or shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"expected an H x W x C image, got an array of shape {tuple(shape)}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
