"""Reading and writing tiles: photos, label pictures and maps, with clear errors and atomic writes.

Potsdam ships 8-bit RGB GeoTIFFs named ``top_potsdam_<tile id>_RGB.tif`` and
``top_potsdam_<tile id>_label.tif``; PNG and JPEG are read too. Every write goes to a temporary
name first and is renamed into place, so a failed stage never leaves half a file or half a folder.
"""

from __future__ import annotations

import contextlib
import functools
import json
import multiprocessing
import os
import re
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import tifffile
from tqdm import tqdm

from aerialseg.palette import Palette

TIFF_SUFFIXES = {".tif", ".tiff"}
MANIFEST_COLUMNS = ("tile", "height", "width", "source")  # manifest.csv of data/raw and data/resized
GEO_TAGS = {33550, 33922, 34264, 34735, 34736, 34737}  # pixel scale, tie points, transform, geokeys
PARTIAL = ".partial-"  # in the names of files and folders being written (see atomic_file)
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
    """Read an 8-bit image as H x W x C (RGB order) uint8, planar TIFFs too; name the file in every error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
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
    prefix, suffix = f".{path.stem}{PARTIAL}", "".join(path.suffixes)
    _remove_stale(path.parent, f"{prefix}*{suffix}")
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs should be readable like any file
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
    prefix = f".{path.name}{PARTIAL}"
    _remove_stale(path.parent, f"{prefix}*")
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale(parent: Path, pattern: str) -> None:
    """Delete temporaries of the same output that a killed process left behind (no cleanup ran)."""
    for stale in parent.glob(pattern):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_json(path: str | Path, data) -> None:
    """Write ``data`` as indented JSON, atomically (metrics files are read by DVC at any time)."""
    with atomic_file(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2) + "\n")


# --- resizing ------------------------------------------------------------------------------------

class TileSizeError(ValueError):
    """A photo and its label picture differ in size."""


def target_size(size_hw: tuple[int, int], scale: float | None = None,
                size: tuple[int, int] | None = None) -> tuple[int, int]:
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


def read_manifest(path: str | Path) -> pd.DataFrame:
    """A stage's manifest.csv (tile, height, width, source); tile ids stay strings such as "2_10"."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (run the stage that writes it first)")
    manifest = pd.read_csv(path, dtype={"tile": str, "source": str}, keep_default_na=False)
    missing = [column for column in MANIFEST_COLUMNS if column not in manifest.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {list(MANIFEST_COLUMNS)}")
    return manifest


def resize_dataset(raw_dir: str | Path, out_dir: str | Path, palette: Palette, scale: float | None = None,
                   size: tuple[int, int] | None = None, ignore_unknown: bool = False,
                   workers: int = 2) -> pd.DataFrame:
    """Resize every tile listed in ``raw_dir``/manifest.csv into ``out_dir`` (images/, labels/, manifest.csv).

    Tiles are resized by ``workers`` processes in parallel. ``out_dir`` is built aside and swapped
    in only when every tile succeeded, so a bad file leaves the previous output as it was.
    """
    raw_dir = Path(raw_dir)
    manifest = read_manifest(raw_dir / "manifest.csv")
    with atomic_dir(out_dir) as staging:
        resize = functools.partial(_resize_tile, raw_dir=raw_dir, out_dir=staging, palette=palette, scale=scale,
                                   size=size, ignore_unknown=ignore_unknown)
        # spawn, not fork: a forked copy of a process with OpenCV or TensorFlow threads can hang
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=cv2.setNumThreads, initargs=(1,)) as pool:
            try:
                sizes = list(tqdm(pool.map(resize, manifest["tile"]), total=len(manifest), desc="resize",
                                  unit="tile"))
            except BaseException:
                pool.shutdown(cancel_futures=True)  # stop at the first bad tile instead of finishing all
                raise
        resized = manifest.assign(height=[h for h, _ in sizes], width=[w for _, w in sizes])
        resized.to_csv(staging / "manifest.csv", index=False)
    return resized


def _resize_tile(tile: str, raw_dir: Path, out_dir: Path, palette: Palette, scale: float | None,
                 size: tuple[int, int] | None, ignore_unknown: bool) -> tuple[int, int]:
    """Resize one photo/label pair; return the new (height, width)."""
    photo_path, label_path = raw_dir / "images" / photo_name(tile), raw_dir / "labels" / label_name(tile)
    photo, label = read_image(photo_path)[..., :3], read_image(label_path)[..., :3]
    if photo.shape[:2] != label.shape[:2]:
        raise TileSizeError(f"tile {tile}: photo {photo_path} is {photo.shape[1]}x{photo.shape[0]} px but label "
                            f"{label_path} is {label.shape[1]}x{label.shape[0]} px (width x height)")
    size_hw = target_size(photo.shape[:2], scale, size)
    label = resize_label(label, size_hw)
    palette.rgb_to_index(label, source=f"{label_path} (resized)", ignore_unknown=ignore_unknown)
    write_image(out_dir / "images" / photo_name(tile), resize_photo(photo, size_hw))
    write_image(out_dir / "labels" / label_name(tile), label)
    return size_hw
