"""Ground resolution (metres per pixel): of each tile as it comes, and of the tiles a model learns from.

A tile's resolution comes, in this order, from its georeferencing where the CRS is in metres or
degrees (aerialseg.raster.georef.ground_pixel_size), from ``data.pixel_size`` for photos that
carry none (the user's word over the layout's), or from its layout (Potsdam's photos are 5 cm).
A world file alone has no CRS, so its numbers have no known unit: Potsdam's synthetic tiles,
which carry one, take the layout's value.
The download stage records it in data/raw/manifest.csv, the resize stage after resampling in
data/resized/manifest.csv, and the train stage records what its tiles had with the model: a
network learns objects at a size in pixels, so it maps photos of that resolution best.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aerialseg.errors import InputError
from aerialseg.raster.georef import PixelSizeError, ground_pixel_size, read_georef

SPREAD_WARNING = 0.01  # training tiles whose resolutions differ by more than this share of the median are warned of


class UnknownResolutionError(InputError, ValueError):
    """resize.pixel_size asks for a resolution, and a tile's own is unknown."""


@dataclass(frozen=True)
class KnownSizes:
    """What tells a photo's resolution where its georeferencing cannot: ``data.pixel_size`` and,
    failing it, the layout's value (``Tiles.pixel_size_m``); ``required`` when resize.pixel_size is set."""

    layout: float | None = None
    data: float | None = None
    required: bool = False


def tile_pixel_size(tile: str, photo: Path, shape_hw: tuple[int, int], known: KnownSizes) -> float | None:
    """The ground size of a pixel of ``tile``'s photo (stored at ``photo``, ``shape_hw`` pixels), or None.

    A rotated or non-square georeferencing stops the stage only when a resolution is required;
    otherwise the tile is resized by scale or size, which needs none, and it is said once.
    """
    try:
        size = ground_pixel_size(read_georef(photo), shape_hw, f"tile {tile} ({photo})")
    except PixelSizeError as error:
        if known.required:
            raise
        print(f"note: {error}; its pixel_size_m is left empty")
        return None
    size = next(
        (value for value in (size, known.data, known.layout) if value is not None), None
    )  # the user's over the layout's
    if size is None and known.required:
        raise unknown_resolution(tile, photo)
    return size


def unknown_resolution(tile: str, photo: Path) -> UnknownResolutionError:
    return UnknownResolutionError(
        f"tile {tile}: the ground resolution of its photo {photo} is unknown (no CRS in metres or degrees, and "
        "the layout knows none), so resize.pixel_size cannot resample it: set data.pixel_size to its metres per "
        "pixel, or resize.scale or resize.size instead of resize.pixel_size"
    )


@dataclass(frozen=True)
class TrainingResolution:
    """The metres per pixel of the training tiles: their median and range (None if any is unknown)."""

    median: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, manifest: pd.DataFrame, tiles: Sequence[str]) -> TrainingResolution:
        """From data/resized/manifest.csv; tiles of different resolutions do train together, but
        a spread above SPREAD_WARNING is warned of: the model then learns objects at several sizes."""
        sizes = manifest.set_index("tile").loc[list(tiles), "pixel_size_m"].to_numpy(float)
        if not len(sizes) or np.isnan(sizes).any():
            return cls(None, None, None)
        resolution = cls(float(np.median(sizes)), float(sizes.min()), float(sizes.max()))
        if resolution.high - resolution.low > SPREAD_WARNING * resolution.median:
            warnings.warn(
                f"the training tiles' resolutions range from {resolution.low:.4g} to {resolution.high:.4g} m per "
                f"pixel (median {resolution.median:.4g}): set resize.pixel_size to train on one resolution",
                stacklevel=2,
            )
        return resolution

    def summary(self) -> dict[str, float | None]:
        """For metrics/train.json and MLflow: the median as ``pixel_size_m``, and the range."""
        return {"pixel_size_m": self.median, "pixel_size_min_m": self.low, "pixel_size_max_m": self.high}
