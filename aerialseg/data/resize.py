"""The resize stage: every tile brought to the working resolution, photos and labels alike.

Photos (all their bands) are resampled with Lanczos, labels (full and boundary-free) with exact
nearest neighbour so they keep palette colours only, and so is a photo's mask of valid pixels
(aerialseg.raster.pictures), which the predict stage reads to leave a map empty where its photo is.
A photo's position (GeoTIFF tags, world file) is scaled with it (aerialseg.raster.georef), so it
still lies where it did. ``resize.scale`` and ``resize.size`` resize every tile alike;
``resize.pixel_size`` each from its own resolution (manifest.csv's pixel_size_m, see
aerialseg.data.resolution), so that tiles of different resolutions train together. Tiles are
resized by worker processes in parallel, into a folder that replaces the previous output only when
every tile succeeded.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from aerialseg.data.manifest import read_manifest, write_manifest
from aerialseg.data.palette import Palette
from aerialseg.data.potsdam import BOUNDARY_FREE, LABEL_KINDS, parse_tile_name
from aerialseg.data.resolution import unknown_resolution
from aerialseg.errors import InputError
from aerialseg.pipeline.atomic import atomic_dir
from aerialseg.pipeline.paths import TileFolder
from aerialseg.raster.georef import SQUARE_TOLERANCE, read_georef
from aerialseg.raster.pictures import read_image, read_photo, write_image


class TileSizeError(InputError, ValueError):
    """A photo and its label picture differ in size."""


def target_size(
    size_hw: tuple[int, int], scale: float | None = None, size: tuple[int, int] | None = None
) -> tuple[int, int]:
    """(height, width) of a tile of ``size_hw`` after resizing: ``size`` [h, w] if given, else ``scale``."""
    if size is not None:
        return int(size[0]), int(size[1])
    if scale is None or scale <= 0:
        raise ValueError(f"resize: set a positive scale or a [height, width] size, got scale={scale}")
    return tuple(max(1, round(side * scale)) for side in size_hw)


def resize_photo(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Lanczos resampling: sharpest for photos, and it keeps the texture the network learns from."""
    return cv2.resize(image, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_LANCZOS4)


def resize_label(label: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resampling of a colour label or class-index map: never invents a colour.

    INTER_NEAREST_EXACT picks the pixel under each output pixel's centre, so the result does not
    shift by half a pixel against the Lanczos-resized photo as plain INTER_NEAREST does.
    """
    return cv2.resize(label, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_NEAREST_EXACT)


def resize_dataset(
    raw: TileFolder,
    out: TileFolder,
    palette: Palette,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    ignore_unknown: bool = False,
    workers: int = 2,
    pixel_size: float | None = None,
) -> pd.DataFrame:
    """Resize every tile listed in ``raw``'s manifest into ``out`` (images/, labels/, manifest.csv):
    by ``scale``, to ``size``, or from its own resolution to ``pixel_size`` metres per pixel.

    The manifest gives each tile's new metres per pixel: ``pixel_size``, or its own scaled with it.
    """
    manifest = read_manifest(raw.manifest)
    scales = [_scale_of(tile, own, scale, pixel_size, raw) for tile, own in manifest[["tile", "pixel_size_m"]].values]
    with atomic_dir(out.path) as staging:
        resize = functools.partial(
            _resize_tile, raw=raw, out=TileFolder(staging), palette=palette, size=size, ignore_unknown=ignore_unknown
        )
        # spawn, not fork: a forked copy of a process with OpenCV or TensorFlow threads can hang
        with ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=cv2.setNumThreads, initargs=(1,)
        ) as pool:
            try:
                sizes = list(
                    tqdm(pool.map(resize, manifest["tile"], scales), total=len(manifest), desc="resize", unit="tile")
                )
            except BaseException:
                pool.shutdown(cancel_futures=True)  # stop at the first bad tile instead of finishing all
                raise
        heights, widths = [h for h, _ in sizes], [w for _, w in sizes]
        resized = write_manifest(
            TileFolder(staging).manifest,
            manifest.assign(
                height=heights,
                width=widths,
                pixel_size_m=pixel_size or _resized_pixel_size(manifest, heights, widths),
            ),
        )
    return resized


def _resized_pixel_size(manifest: pd.DataFrame, heights: list[int], widths: list[int]) -> pd.Series:
    """Each tile's metres per pixel after resizing by scale or size: its own, stretched as its width
    was; unknown (NaN) where a ``resize.size`` of another aspect made the pixels no longer square."""
    across = manifest["pixel_size_m"] * manifest["width"] / widths
    down = manifest["pixel_size_m"] * manifest["height"] / heights
    return across.where((across - down).abs() <= SQUARE_TOLERANCE * across)


def _scale_of(tile: str, own: float, scale: float | None, pixel_size: float | None, raw: TileFolder) -> float | None:
    """A tile's factor: ``scale``, or its own metres per pixel over ``pixel_size``; a tile whose own
    is unknown (NaN) is refused before any is resized."""
    if pixel_size is None:
        return scale
    if math.isnan(own):
        raise unknown_resolution(tile, raw.photo(tile))
    return own / pixel_size


def _resize_tile(
    tile: str,
    scale: float | None,
    raw: TileFolder,
    out: TileFolder,
    palette: Palette,
    size: tuple[int, int] | None,
    ignore_unknown: bool,
) -> tuple[int, int]:
    """Resize one tile's photo (with its position and mask) and each label it has; return the new (height, width)."""
    photo_path = raw.photo(tile)
    photo, valid = read_photo(photo_path)
    size_hw = target_size(photo.shape[:2], scale, size)
    target = out.photo(tile, parse_tile_name(photo_path).kind)
    georef = read_georef(photo_path).scaled(photo.shape[:2], size_hw)
    write_image(target, resize_photo(photo, size_hw), georef, resize_label(valid.view(np.uint8), size_hw) > 0)
    for variant in LABEL_KINDS:
        label_path = raw.label(tile, variant)
        if variant == BOUNDARY_FREE and not label_path.is_file():
            continue  # a source without boundary-free labels has none for any tile
        label = read_image(label_path)[..., :3]
        if photo.shape[:2] != label.shape[:2]:
            raise TileSizeError(
                f"tile {tile}: photo {photo_path} is {photo.shape[1]}x{photo.shape[0]} px but label "
                f"{label_path} is {label.shape[1]}x{label.shape[0]} px (width x height)"
            )
        label = resize_label(label, size_hw)
        # black is an ignored pixel in every label of data/raw (see read_label)
        palette.rgb_to_index(label, source=f"{label_path} (resized)", ignore_unknown=ignore_unknown, with_ignored=True)
        write_image(out.label(tile, variant), label)
    return size_hw
