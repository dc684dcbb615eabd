"""Reading and writing tiles: photos, label pictures and maps, with clear errors and atomic writes.

Potsdam ships 8-bit RGB GeoTIFFs named ``top_potsdam_<tile id>_RGB.tif`` and
``top_potsdam_<tile id>_label.tif``; PNG and JPEG are read too. Every write goes to a temporary
name first and is renamed into place, so a failed stage never leaves half a file or half a folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import tifffile

from aerialseg.palette import Palette

TIFF_SUFFIXES = {".tif", ".tiff"}
GEO_TAGS = {33550, 33922, 34264, 34735, 34736, 34737}  # pixel scale, tie points, transform, geokeys
_TILE_NAME = re.compile(r"^top_potsdam_(?P<tile>\d+_\d+)_(?P<kind>RGB|RGBIR|IRRG|label)\.(tif|tiff|png)$", re.I)


class ImageReadError(ValueError):
    """An image file exists but cannot be decoded (corrupt, truncated or not an image)."""


def parse_tile_name(path: str | Path) -> tuple[str, str] | None:
    """Return (tile id, kind) of a Potsdam file name, e.g. ('2_10', 'RGB'), or None."""
    match = _TILE_NAME.match(Path(path).name)
    return (match["tile"], match["kind"]) if match else None


def photo_name(tile: str) -> str:
    return f"top_potsdam_{tile}_RGB.tif"


def label_name(tile: str) -> str:
    return f"top_potsdam_{tile}_label.tif"


def read_image(path: str | Path) -> np.ndarray:
    """Read an 8-bit image as H x W x C (RGB order) uint8; name the file in every error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            image = tifffile.imread(path)
        else:
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise ValueError("OpenCV could not decode it")
            if image.ndim == 3:
                image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB if image.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    except Exception as error:  # tifffile raises many types for truncated or foreign files
        raise ImageReadError(f"{path}: cannot read image ({type(error).__name__}: {error})") from error
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.dtype != np.uint8:
        raise ImageReadError(f"{path}: expected an 8-bit picture, got {image.dtype} of shape {image.shape}")
    return image


def read_label(path: str | Path, palette: Palette, ignore_unknown: bool = False) -> np.ndarray:
    """Read a colour-coded label picture as an H x W uint8 class-index map."""
    return palette.rgb_to_index(read_image(path), source=str(path), ignore_unknown=ignore_unknown)


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
            tifffile.imwrite(tmp, image, photometric="rgb" if image.ndim == 3 else "minisblack",
                             extratags=list(extratags))
        else:
            pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
            if not cv2.imwrite(str(tmp), pixels):
                raise OSError(f"{path}: OpenCV could not write it")


@contextlib.contextmanager
def atomic_file(path: str | Path):
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix="".join(path.suffixes), dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | Path):
    """Yield a fresh temporary folder beside ``path``; it replaces ``path`` only if the block succeeds.

    Stage outputs are whole folders; building them aside means a failure keeps the old output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | Path, data) -> None:
    """Write ``data`` as indented JSON, atomically (metrics files are read by DVC at any time)."""
    with atomic_file(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2) + "\n")
