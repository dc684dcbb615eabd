"""Opening a raster for reading, with one set of errors that name the file, for every reader.

The stages read whole pictures (aerialseg.raster.pictures) and aerialseg-predict reads rows of
rasters larger than memory (aerialseg.raster.streaming); both open files here, so a missing file,
one GDAL cannot read and one that is not 8-bit are told alike wherever they are met, and GDAL's
block cache is capped for every read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import rasterio
from rasterio.errors import RasterioError

from aerialseg.errors import InputError, MissingFileError, first_line
from aerialseg.raster.georef import allow_plain

GDAL_CACHE_MB = 256  # GDAL's block cache; its default, 5 % of the machine's memory, would grow with the raster


class RasterError(InputError, ValueError):
    """A raster cannot be read or written; the message names the file, what is wrong and what to do."""


def gdal_environment() -> rasterio.Env:
    """GDAL settings for every read and write: a capped block cache, so memory stays bounded."""
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20)  # rasterio passes this one to GDAL in bytes


def gdal_reason(error: Exception) -> str:
    """GDAL's own words: rasterio often says only 'see previous exception' and keeps them as the cause."""
    return first_line(error.__cause__ or error)


@contextlib.contextmanager
def open_raster(path: str | Path, name: str | None = None) -> Iterator[rasterio.DatasetReader]:
    """An 8-bit raster open for reading; a missing, unreadable or deeper one is an error naming it.
    Reading its pixels may still fail (a truncated file): wrap the reads in :func:`reading`.

    ``name``: what errors call the file, if not its path (``archive.zip!member`` for a file unpacked
    from an archive into a work folder that is gone when the error is read).
    """
    path = Path(path)
    name = name or str(path)
    if not path.is_file():
        raise MissingFileError(f"{name}: no such file (check the path)")
    with gdal_environment():
        try:
            with allow_plain():
                dataset = rasterio.open(path)
        except RasterioError as error:
            raise RasterError(
                f"{name}: not a raster GDAL can read ({gdal_reason(error)}) (give a GeoTIFF, PNG, JPEG or another "
                "GDAL raster format)"
            ) from error
        with dataset:
            if set(dataset.dtypes) != {"uint8"}:
                raise RasterError(
                    f"{name}: has {'/'.join(sorted(set(dataset.dtypes)))} bands, but aerialseg reads 8-bit ones "
                    "(convert it first, e.g. `gdal_translate -ot Byte -scale IN OUT`)"
                )
            yield dataset


@contextlib.contextmanager
def reading(name: str | Path, what: str = "it") -> Iterator[None]:
    """Pixels read inside: GDAL failing to read them (a truncated or corrupt file) is an error
    naming ``name`` and ``what`` of it was read. Only the reads: a failure elsewhere (writing a map
    beside) is not the file's."""
    try:
        yield
    except RasterioError as error:
        raise RasterError(
            f"{name}: cannot read {what}: {gdal_reason(error)} (the file is truncated or corrupt: check it with "
            "`gdalinfo -checksum`, or copy it again)"
        ) from error
