"""Reading and writing tile pictures: photos, label pictures and maps, with errors that name the file.

Potsdam ships 8-bit RGB GeoTIFFs; PNG and JPEG are read too. GeoTIFF georeferencing tags are read
so that a map written from a photo lies on it in a GIS. Writes are atomic (see aerialseg.pipeline.atomic).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import tifffile

from aerialseg.data.palette import Palette
from aerialseg.data.potsdam import BOUNDARY_FREE, FULL
from aerialseg.errors import InputError, MissingFileError
from aerialseg.pipeline.atomic import atomic_file

TIFF_SUFFIXES = {".tif", ".tiff"}
GEO_TAGS = {33550, 33922, 34264, 34735, 34736, 34737}  # pixel scale, tie points, transform, geokeys


class ImageReadError(InputError, ValueError):
    """An image file exists but cannot be decoded (corrupt, truncated or not an image)."""


def read_image(path: str | Path, name: str | None = None) -> np.ndarray:
    """Read an 8-bit image as H x W x C (RGB order) uint8, planar TIFFs too; name the file in every error.

    ``name``: what errors call the file, if not its path (``archive.zip!member`` for a file unpacked
    from an archive into a work folder that is gone when the error is read).
    """
    path = Path(path)
    name = name or str(path)
    if not path.is_file():
        raise MissingFileError(f"{name}: no such file")
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            with tifffile.TiffFile(path) as tif:
                image, axes = tif.series[0].asarray(), tif.series[0].axes
            if image.ndim == 3 and axes[0] in "SC":  # planar TIFF (a plane per band): tifffile gives bands x H x W
                image = np.ascontiguousarray(np.moveaxis(image, 0, -1))  # H x W x bands, like every other picture
        else:
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise ValueError("OpenCV could not decode it")
            if image.ndim == 3:
                image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB if image.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    except Exception as error:  # tifffile raises many types for truncated or foreign files
        raise ImageReadError(f"{name}: cannot read image ({type(error).__name__}: {error})") from error
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.dtype != np.uint8:
        raise ImageReadError(f"{name}: expected an 8-bit picture, got {image.dtype} of shape {image.shape}")
    return image


def read_label(path: str | Path, palette: Palette, ignore_unknown: bool = False, variant: str = FULL) -> np.ndarray:
    """Read a colour-coded label picture as an H x W uint8 class-index map.

    ``variant`` ``no_boundary``: a boundary-free label, whose black pixels are ignored pixels.
    """
    return palette.rgb_to_index(
        read_image(path), source=str(path), ignore_unknown=ignore_unknown, with_ignored=variant == BOUNDARY_FREE
    )


def read_geotags(path: str | Path) -> list[tuple]:
    """GeoTIFF georeferencing tags of ``path`` as tifffile ``extratags`` (empty if none)."""
    path = Path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return []
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        return [(tag.code, tag.dtype, tag.count, tag.value, True) for tag in tags.values() if tag.code in GEO_TAGS]


def write_image(path: str | Path, image: np.ndarray, extratags: list[tuple] = ()) -> None:
    """Write a uint8 picture atomically; TIFF keeps ``extratags`` (e.g. from read_geotags)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        if path.suffix.lower() in TIFF_SUFFIXES:
            tifffile.imwrite(
                tmp, image, photometric="rgb" if image.ndim == 3 else "minisblack", extratags=list(extratags)
            )
        else:
            pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
            if not cv2.imwrite(str(tmp), pixels):
                raise OSError(f"{path}: OpenCV could not write it")
