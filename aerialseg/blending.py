"""Whole-tile prediction: a model trained on small windows applied to a photo of any size.

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

Unlike the widely copied original, prediction streams: window positions come from a generator,
are predicted ``batch_size`` at a time, and accumulate into one float32 (H_pad, W_pad, K)
buffer, which is then divided by the summed weights, so every pixel is exactly normalised,
borders included. Peak memory is that buffer plus one batch, whatever the tile size; the
original holds every window of every rotation in float64 at once (tens of GB for a
6000 x 6000 tile), leaves the last strip unpredicted when the size is not a multiple of the
step, and breaks on non-square photos.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from tqdm import tqdm

from aerialseg.palette import Palette
from aerialseg.tiles import read_geotags, read_image, write_image

MODES = ("plain", "smooth")
WINDOW_FUNCTIONS = ("spline", "hann")
TTA_CHOICES = ("none", "flips", "d4")

PredictBatch = Callable[[np.ndarray], np.ndarray]
Transform = tuple[int, bool]  # (quarter turns, left-right flip first)

# Test-time augmentation: every transform is undone on the prediction before blending.
# "flips" = identity, left-right flip, up-down flip (a left-right flip then a half turn) and both
# (a half turn): 4 passes. "d4" = the 8 symmetries of the square: 4 rotations, with and without
# a left-right flip.
TTA_TRANSFORMS: dict[str, tuple[Transform, ...]] = {
    "none": ((0, False),),
    "flips": ((0, False), (0, True), (2, True), (2, False)),
    "d4": tuple((turns, flip) for flip in (False, True) for turns in range(4)),
}


def predict_probabilities(image: np.ndarray, predict_batch: PredictBatch, window: int, num_classes: int,
                          mode: str = "smooth", subdivisions: int = 2, window_function: str = "spline",
                          tta: str = "d4", batch_size: int = 16, progress: bool = False) -> np.ndarray:
    """Class probabilities (H, W, K) float32 for an H x W x C image of any size.

    ``predict_batch`` maps a float32 (N, window, window, C) batch to (N, window, window, K)
    probabilities. ``mode="plain"`` ignores ``subdivisions``, ``window_function`` and ``tta``.
    The result is a view into the padded accumulation buffer (no copy of the largest array).
    """
    _check_arguments(image, window, num_classes, mode, subdivisions, window_function, tta, batch_size)
    smooth = mode == "smooth"
    grid = plan_grid(image.shape[0], image.shape[1], window, subdivisions if smooth else 1)
    weights = window_weights(window, window_function) if smooth else np.ones((window, window), np.float32)
    transforms = TTA_TRANSFORMS[tta] if smooth else TTA_TRANSFORMS["none"]
    padded = grid.pad(image)

    total = np.zeros(grid.padded_shape + (num_classes,), dtype=np.float32)
    jobs = ((y, x, transform) for y, x in grid.positions() for transform in transforms)
    with tqdm(total=grid.count() * len(transforms), desc=f"{mode} windows", unit="window",
              disable=not progress, leave=False) as bar:
        for batch_jobs in _batches(jobs, batch_size):
            predictions = _predict_windows(padded, batch_jobs, predict_batch, window, num_classes)
            for (y, x, transform), prediction in zip(batch_jobs, predictions):
                total[y:y + window, x:x + window] += _undo(prediction, transform) * weights[..., None]
            bar.update(len(batch_jobs))

    summed_weights = weight_map(grid, weights) * len(transforms)
    np.divide(total, summed_weights[..., None], out=total)
    return grid.crop(total)


def probabilities_to_index(probabilities: np.ndarray) -> np.ndarray:
    """The most probable class of each pixel, as a uint8 class-index map."""
    return np.argmax(probabilities, axis=-1).astype(np.uint8)


def predict_map(model_or_predictor, image: np.ndarray, window: int, num_classes: int, mode: str = "smooth",
                **predict_params) -> np.ndarray:
    """Class-index map (uint8) of ``image`` from a Keras model or a ``predict_batch`` function."""
    predictor = (keras_predictor(model_or_predictor, num_classes)
                 if hasattr(model_or_predictor, "predict_on_batch") else model_or_predictor)
    return probabilities_to_index(
        predict_probabilities(image, predictor, window, num_classes, mode=mode, **predict_params))


def prediction_name(tile: str, suffix: str) -> str:
    """File name of a tile's predicted map: ``top_potsdam_<tile>_pred<suffix>``."""
    return f"top_potsdam_{tile}_pred{suffix}"


def write_tile_predictions(photo: str | Path, tile: str, predictor: KerasPredictor, palette: Palette,
                           output_dir: str | Path, window: int, modes: tuple[str, ...] = MODES,
                           **predict_params) -> None:
    """Predict one photo in each mode; write ``<output_dir>/<mode>/`` colour PNG and index TIF.

    The TIF keeps the photo's GeoTIFF tags, so the map lies on the photo in a GIS.
    """
    image = fit_channels(read_image(photo), predictor.channels, source=str(photo))
    geotags = read_geotags(photo)
    for mode in modes:
        index = predict_map(predictor, image, window, palette.num_classes, mode=mode, progress=True,
                            **predict_params)
        folder = Path(output_dir) / mode
        write_image(folder / prediction_name(tile, ".png"), palette.index_to_rgb(index))
        write_image(folder / prediction_name(tile, ".tif"), index, extratags=geotags)


# --- Keras models -----------------------------------------------------------------------------

class KerasPredictor:
    """``predict_batch`` for a Keras model, checked once against the classes it must output.

    Channels: an image with more channels than the model takes is cut to the model's first
    channels when the model takes 3, so RGBA pictures and Potsdam's 4-band RGBIR tiles (infrared
    last) are predicted from their RGB bands. Fewer channels than the model takes, or extra
    channels for a model that does not take 3, is an error naming both counts.
    """

    def __init__(self, model, num_classes: int):
        input_shape, output_shape = model.input_shape, model.output_shape
        if not isinstance(input_shape, tuple) or not isinstance(output_shape, tuple):
            raise ValueError(f"model {model.name!r}: expected one input and one output, got input shape "
                             f"{input_shape} and output shape {output_shape}")
        if output_shape[-1] != num_classes:
            raise ValueError(f"model {model.name!r} outputs {output_shape[-1]} classes per pixel, but "
                             f"{num_classes} classes are expected (output shape {output_shape})")
        self.model = model
        self.channels = input_shape[-1]
        self.num_classes = num_classes

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(fit_channels(batch, self.channels, source="batch")))


def keras_predictor(model, num_classes: int) -> KerasPredictor:
    """Wrap a Keras model as a ``predict_batch`` function (see :class:`KerasPredictor`)."""
    return KerasPredictor(model, num_classes)


def fit_channels(image: np.ndarray, channels: int, source: str = "image") -> np.ndarray:
    """``image`` (..., C) cut to the ``channels`` a model takes: the first 3 (RGB) of RGBA or RGBIR."""
    available = image.shape[-1]
    if available == channels:
        return image
    if available > channels == 3:
        return image[..., :3]
    raise ValueError(f"{source}: has {available} channel(s) but the model takes {channels}"
                     + ("" if available < channels else "; only extra channels beyond RGB are dropped"))


# --- Window layout and weights ----------------------------------------------------------------

@dataclass(frozen=True)
class Grid:
    """Where the windows go: a mirror-padded canvas tiled by windows every ``step`` pixels.

    ``border`` pixels are added before the image on top and left (and at least as many after it),
    so that each image pixel lies inside ``subdivisions`` windows along each axis; the bottom and
    right are padded further so the last window ends exactly at the canvas edge.
    """

    image_shape: tuple[int, int]
    window: int
    step: int
    border: int
    padded_shape: tuple[int, int]

    def positions(self) -> Iterator[tuple[int, int]]:
        """Top-left corners of the windows, row by row, generated lazily."""
        rows = range(0, self.padded_shape[0] - self.window + 1, self.step)
        cols = range(0, self.padded_shape[1] - self.window + 1, self.step)
        return itertools.product(rows, cols)

    def count(self) -> int:
        rows, cols = ((side - self.window) // self.step + 1 for side in self.padded_shape)
        return rows * cols

    def pad(self, image: np.ndarray) -> np.ndarray:
        after = [padded - self.border - side for padded, side in zip(self.padded_shape, self.image_shape)]
        padding = [(self.border, after[0]), (self.border, after[1])] + [(0, 0)] * (image.ndim - 2)
        return np.pad(image, padding, mode="reflect")

    def crop(self, canvas: np.ndarray) -> np.ndarray:
        height, width = self.image_shape
        return canvas[self.border:self.border + height, self.border:self.border + width]


def plan_grid(height: int, width: int, window: int, subdivisions: int) -> Grid:
    """Window layout for an image of this size (``subdivisions=1``: plain, no overlap, no border)."""
    step = window // subdivisions
    border = window - step
    padded_shape = tuple(_grid_length(border + side + border, window, step) for side in (height, width))
    return Grid((height, width), window, step, border, padded_shape)


def _grid_length(length: int, window: int, step: int) -> int:
    """Smallest canvas length >= ``length`` (and >= ``window``) that windows every ``step`` fill exactly."""
    return window + -(-max(length - window, 0) // step) * step


def window_weights(window: int, function: str = "spline") -> np.ndarray:
    """2-D blending weights (window, window) float32, largest at the centre, > 0 everywhere.

    ``spline``: the original technique's squared spline, 1-D ``(2t)^2 / 2`` on the outer quarters
    and ``1 - (2 (1 - t))^2 / 2`` in the middle half of a triangle ``t``; copies shifted by half a
    window sum to a constant. ``hann``: a Hann window without its zero end points. The 2-D window
    is the outer product of the 1-D one, so it is unchanged by flips and quarter turns.
    """
    if function == "spline":
        t = _triangle(window)
        profile = np.where(t < 0.5, (2 * t) ** 2 / 2, 1 - (2 * (1 - t)) ** 2 / 2)
    elif function == "hann":
        profile = np.hanning(window + 2)[1:-1]
    else:
        raise ValueError(f"unknown window function {function!r}: use one of {WINDOW_FUNCTIONS}")
    profile = profile / profile.mean()
    return np.outer(profile, profile).astype(np.float32)


def _triangle(length: int) -> np.ndarray:
    """scipy.signal.windows.triang: a triangle that peaks at 1 and never reaches 0."""
    i = np.arange(length)
    return 1 - np.abs(2 * i - (length - 1)) / (length + length % 2)


def weight_map(grid: Grid, weights: np.ndarray) -> np.ndarray:
    """Sum of the window weights over all window positions, (H_pad, W_pad) float32."""
    summed = np.zeros(grid.padded_shape, dtype=np.float32)
    for y, x in grid.positions():
        summed[y:y + grid.window, x:x + grid.window] += weights
    return summed


# --- Streaming --------------------------------------------------------------------------------

def _batches(jobs: Iterator, size: int) -> Iterator[list]:
    while batch := list(itertools.islice(jobs, size)):
        yield batch


def _predict_windows(padded: np.ndarray, jobs: list, predict_batch: PredictBatch, window: int,
                     num_classes: int) -> np.ndarray:
    batch = np.stack([_apply(padded[y:y + window, x:x + window], transform) for y, x, transform in jobs])
    predictions = np.asarray(predict_batch(batch.astype(np.float32, copy=False)), dtype=np.float32)
    expected = (len(jobs), window, window, num_classes)
    if predictions.shape != expected:
        raise ValueError(f"predictor returned shape {predictions.shape} for a batch of shape {batch.shape}; "
                         f"expected {expected}")
    return predictions


def _apply(window: np.ndarray, transform: Transform) -> np.ndarray:
    turns, flip = transform
    return np.rot90(window[:, ::-1] if flip else window, turns)


def _undo(window: np.ndarray, transform: Transform) -> np.ndarray:
    turns, flip = transform
    window = np.rot90(window, -turns)
    return window[:, ::-1] if flip else window


def _check_arguments(image, window, num_classes, mode, subdivisions, window_function, tta, batch_size) -> None:
    if image.ndim != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an H x W x C image, got an array of shape {image.shape}")
    if mode not in MODES:
        raise ValueError(f"unknown prediction mode {mode!r}: use one of {MODES}")
    if tta not in TTA_CHOICES:
        raise ValueError(f"unknown test-time augmentation {tta!r}: use one of {TTA_CHOICES}")
    if window_function not in WINDOW_FUNCTIONS:
        raise ValueError(f"unknown window function {window_function!r}: use one of {WINDOW_FUNCTIONS}")
    if window < 1 or num_classes < 1 or batch_size < 1:
        raise ValueError(f"window ({window}), num_classes ({num_classes}) and batch_size ({batch_size}) "
                         "must be positive")
    if not 1 <= subdivisions <= window:
        raise ValueError(f"subdivisions must be between 1 and the window size {window}, got {subdivisions}")
