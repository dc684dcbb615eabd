"""Reading and writing tile pictures: photos, label pictures and maps, with errors that name the file.

Potsdam ships 8-bit RGB GeoTIFFs; rasterio (GDAL) reads them, PNG, JPEG and TIFFs of any layout
or compression GDAL knows (planar, LZW, DEFLATE, ...), as QGIS and other tools write them. A
picture written with a :class:`~aerialseg.raster.georef.Georeference` keeps its CRS and transform
in the GeoTIFF, and a world file where its source had one, so a map lies on its photo in a GIS.
Writes are atomic (see aerialseg.pipeline.atomic).

A photo's pixels that hold nothing (a mosaic's empty corners) are marked by a nodata value, an
alpha band or an internal mask; GDAL's dataset mask covers all three (:func:`read_photo`). The
pipeline stores such a photo with an internal mask (:func:`write_image`): the bands stay the
bands of ``data.bands`` (no alpha band to tell from an infrared one), every pixel value stays a
value (no nodata value that a real black pixel could hold), and the mask is inside the TIFF, so
it moves with the file through atomic renames, where a ``.msk`` beside it would be left behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import rasterio
from rasterio.enums import ColorInterp

from aerialseg.data.palette import Palette
from aerialseg.pipeline.atomic import atomic_file
from aerialseg.raster.georef import Georeference, allow_plain, write_world_file
from aerialseg.raster.opening import open_raster, reading

DRIVERS = {".tif": "GTiff", ".tiff": "GTiff", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}  # for writing
TIFF_SUFFIXES = {suffix for suffix, driver in DRIVERS.items() if driver == "GTiff"}


class Photo(NamedTuple):
    """A photo's bands (H x W x bands uint8, without an alpha band) and its valid pixels (H x W
    bool: False where GDAL's mask says the photo holds nothing)."""

    pixels: np.ndarray
    valid: np.ndarray


def read_image(path: str | Path, name: str | None = None) -> np.ndarray:
    """Read an 8-bit image as H x W x bands uint8 (bands as stored: RGB for a photo); name the file in every error.

    ``name``: what errors call the file, if not its path (``archive.zip!member`` for a file unpacked
    from an archive into a work folder that is gone when the error is read).
    """
    with open_raster(path, name) as dataset, reading(name or path):
        return _bands(dataset, range(1, dataset.count + 1))


def read_photo(path: str | Path, name: str | None = None) -> Photo:
    """Read a photo's bands, less any alpha band, and its valid pixels (see the module's docstring)."""
    with open_raster(path, name) as dataset, reading(name or path):
        colours = [band for band, kind in enumerate(dataset.colorinterp, 1) if kind != ColorInterp.alpha]
        return Photo(_bands(dataset, colours), dataset.dataset_mask() > 0)


def read_valid(path: str | Path) -> np.ndarray:
    """The valid pixels of a photo (H x W bool), without reading its bands."""
    with open_raster(path) as dataset, reading(path):
        return dataset.dataset_mask() > 0


def _bands(dataset: rasterio.DatasetReader, bands) -> np.ndarray:
    image = np.empty((dataset.height, dataset.width, len(bands)), np.uint8)
    dataset.read(list(bands), out=np.moveaxis(image, -1, 0))  # straight into H x W x bands, whatever the layout
    return image


def read_label(path: str | Path, palette: Palette, ignore_unknown: bool = False) -> np.ndarray:
    """Read a colour-coded label picture of data/raw or later as an H x W uint8 class-index map.

    Black (IGNORE_COLOUR) pixels are ignored pixels in every label there: the boundaries of a
    boundary-free label, and in a full label the pixels its source left unlabelled. The download
    stage has already refused black wherever a source must not have it.
    """
    return palette.rgb_to_index(read_image(path), source=str(path), ignore_unknown=ignore_unknown, with_ignored=True)


def write_image(
    path: str | Path, image: np.ndarray, georef: Georeference | None = None, valid: np.ndarray | None = None
) -> None:
    """Write a uint8 picture (H x W or H x W x bands) atomically, as its suffix says (TIF, PNG, JPEG).

    ``georef``: a GeoTIFF gets its CRS and transform (a PNG or JPEG cannot hold them: GDAL would
    put them in a ``.aux.xml`` beside it), and every format a world file if ``georef`` came from one.
    ``valid``: a photo's valid pixels; where some are not, a GeoTIFF gets them as its internal mask.
    """
    path = Path(path)
    pixels = image if image.ndim == 3 else image[..., None]
    driver = DRIVERS.get(path.suffix.lower())
    if driver is None:
        raise ValueError(f"{path}: cannot write a picture of this kind (write one of {', '.join(DRIVERS)})")
    profile = image_profile(pixels, driver)
    if georef and driver == "GTiff":
        profile.update(georef.profile())
    masked = valid is not None and not valid.all()
    if masked and driver != "GTiff":
        raise ValueError(f"{path}: only a GeoTIFF keeps a mask of valid pixels")
    with (
        atomic_file(path) as tmp,
        allow_plain(),
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
        rasterio.open(tmp, "w", **profile) as dataset,
    ):
        dataset.write(np.moveaxis(pixels, -1, 0))
        if masked:
            dataset.write_mask(valid)
    if georef and georef.world_file:
        write_world_file(path, georef.transform)


def image_profile(pixels: np.ndarray, driver: str) -> dict:
    """rasterio creation options of an H x W x bands picture: a TIFF of 3 or more bands is RGB
    with any further band (Potsdam's infrared) an unspecified extra sample, not alpha."""
    profile = dict(driver=driver, height=pixels.shape[0], width=pixels.shape[1], count=pixels.shape[2])
    profile.update(dtype=pixels.dtype.name)
    if driver == "GTiff" and pixels.shape[2] >= 3:
        profile.update(photometric="RGB", alpha="UNSPECIFIED")
    return profile
