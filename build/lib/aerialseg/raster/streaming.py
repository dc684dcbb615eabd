"""Raster files read and written a band of rows at a time: any GDAL raster in, Cloud-Optimized GeoTIFF out.

rasterio (GDAL) reads GeoTIFF, PNG, JPEG, JPEG 2000 and GDAL's other formats, with their
georeferencing from GeoTIFF tags or from a world file beside the picture (.tfw, .pgw, .jgw,
.wld). A raster is never read whole: :class:`RasterRows` hands blending the rows it asks for,
one window's height at a time, so a raster larger than memory can be mapped.

Maps are written the same way, rows top to bottom, into a tiled staging GeoTIFF, which GDAL's
COG driver then copies into a Cloud-Optimized GeoTIFF (tiled, compressed, with overviews and the
image directories before the pixels, so a GIS or a web map reads any part at any zoom with few
reads). Both are written under temporary names beside the target and the COG is renamed into
place only when complete (aerialseg.pipeline.atomic): a failure leaves no half map under the final name.
GDAL's block cache is capped, so memory stays bounded whatever the raster's size.

Nothing here knows Keras; aerialseg.predict.mapping joins these files to a model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import RasterioError
from rasterio.windows import Window

from aerialseg.errors import InputError, MissingFileError
from aerialseg.pipeline.atomic import atomic_file
from aerialseg.raster.georef import Georeference, allow_plain
from aerialseg.raster.pictures import gdal_reason

RASTER_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jp2", ".img", ".vrt")  # looked for in folders
BLOCK_SIZE = 512  # COG tile side (GDAL's default), also the staging tile side
GDAL_CACHE_MB = 256  # GDAL's block cache; its default, 5 % of the machine's memory, would grow with the raster
COG_OPTIONS = dict(driver="COG", compress="DEFLATE", bigtiff="IF_SAFER", num_threads="ALL_CPUS")
STAGING_OPTIONS = dict(driver="GTiff", tiled=True, compress="ZSTD", zstd_level=1, bigtiff="IF_SAFER")


class RasterError(InputError, ValueError):
    """A raster cannot be read or written; the message names the file, what is wrong and what to do."""


def gdal_environment() -> rasterio.Env:
    """GDAL settings for every read and write here: a capped block cache, so memory stays bounded."""
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20)  # rasterio passes this one to GDAL in bytes


@dataclass
class RasterRows:
    """An open raster's first ``bands`` bands as an H x W x bands uint8 image that is read only by
    rows (aerialseg.predict.blending.Rows): each request reads the rows' window from the file."""

    path: Path
    dataset: rasterio.DatasetReader
    bands: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.dataset.height, self.dataset.width, self.bands

    @property
    def dropped_bands(self) -> int:
        """Bands of the file beyond those read."""
        return self.dataset.count - self.bands

    @property
    def georeference(self) -> Georeference:
        with allow_plain():
            return Georeference(self.dataset.crs, self.dataset.transform)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        first, last = int(rows[0]), int(rows[-1])
        window = Window(0, first, self.dataset.width, last - first + 1)
        try:
            pixels = self.dataset.read(list(range(1, self.bands + 1)), window=window)
        except RasterioError as error:
            raise RasterError(
                f"{self.path}: cannot read rows {first} to {last} of {self.dataset.height}: {gdal_reason(error)} "
                "(the file is truncated or corrupt: check it with `gdalinfo -checksum`, or copy it again)"
            ) from error
        return np.moveaxis(pixels, 0, -1)[rows - first]


@contextlib.contextmanager
def open_raster(path: str | Path) -> Iterator[rasterio.DatasetReader]:
    """Open an 8-bit raster for reading; an error names the file, what is wrong and what to do."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file (check the path)")
    with gdal_environment():
        try:
            with allow_plain():
                dataset = rasterio.open(path)
        except RasterioError as error:
            raise RasterError(
                f"{path}: not a raster GDAL can read ({gdal_reason(error)}) (give a GeoTIFF, PNG, JPEG or another "
                "GDAL raster format)"
            ) from error
        with dataset:
            if set(dataset.dtypes) != {"uint8"}:
                raise RasterError(
                    f"{path}: has {'/'.join(sorted(set(dataset.dtypes)))} bands, but the model takes 8-bit ones "
                    "(convert it first, e.g. `gdal_translate -ot Byte -scale IN OUT`)"
                )
            yield dataset


@contextlib.contextmanager
def cog_writer(
    path: str | Path,
    height: int,
    width: int,
    bands: int,
    georeference: Georeference,
    colours: Sequence[tuple[int, int, int]] = (),
    descriptions: Sequence[str] = (),
    tags: dict[str, str] | None = None,
    scales: Sequence[float] = (),
    resampling: str = "nearest",
    block_size: int = BLOCK_SIZE,
) -> Iterator[Callable[[np.ndarray], None]]:
    """Yield ``write(rows)``, which takes the raster's next rows, top to bottom, as (n, W, bands)
    uint8; when the block ends with every row written, ``path`` becomes a Cloud-Optimized GeoTIFF.

    ``colours`` is band 1's colour table (class index -> RGB), ``descriptions`` name the bands,
    ``tags`` are dataset metadata, ``scales`` turn stored bytes into values (GDAL applies them
    on request), and ``resampling`` makes the overviews ("nearest" for classes, "average" for
    probabilities). If anything fails, nothing is left under ``path`` (an older file stays).
    """
    path = Path(path)
    with atomic_file(path) as final, gdal_environment():
        staging = final.with_name(f"{final.stem}.staging{final.suffix}")  # removed as a stale temporary if killed
        profile = dict(STAGING_OPTIONS, height=height, width=width, count=bands, dtype="uint8")
        profile.update(blockxsize=block_size, blockysize=block_size, **georeference.profile())
        try:
            with _writing(path), allow_plain():
                dataset = rasterio.open(staging, "w", **profile)
            with dataset:
                _describe(dataset, colours, descriptions, tags or {}, scales)
                blocks = _RowBlocks(dataset, path, block_size)
                yield blocks.write
                blocks.close()
            with _writing(path):
                rasterio.shutil.copy(
                    staging, final, blocksize=block_size, overview_resampling=resampling, **COG_OPTIONS
                )
        finally:
            staging.unlink(missing_ok=True)


def _describe(dataset, colours, descriptions, tags: dict[str, str], scales) -> None:
    if colours:
        dataset.write_colormap(1, {index: (*colour, 255) for index, colour in enumerate(colours)})
    for band, description in enumerate(descriptions, start=1):
        dataset.set_band_description(band, description)
    if scales:
        dataset.scales = tuple(scales)
    dataset.update_tags(**tags)


@contextlib.contextmanager
def _writing(path: Path):
    """GDAL's write errors (disk full, folder gone) as one line naming the output."""
    try:
        yield
    except RasterioError as error:
        raise RasterError(
            f"{path}: cannot write it: {gdal_reason(error)} (check the free space and permissions of {path.parent})"
        ) from error


class _RowBlocks:
    """Rows arriving top to bottom in pieces of any height, gathered and written to the staging
    file a whole row of tiles at a time, so each compressed tile is written once."""

    def __init__(self, dataset, target: Path, block_size: int):
        self.dataset, self.target, self.block_size = dataset, target, block_size
        self.shape = (dataset.height, dataset.width, dataset.count)
        self.pending: list[np.ndarray] = []
        self.written = 0

    def write(self, rows: np.ndarray) -> None:
        if rows.shape[1:] != self.shape[1:] or rows.dtype != np.uint8:
            raise ValueError(
                f"{self.target}: expected uint8 rows of shape (n, {self.shape[1]}, {self.shape[2]}), "
                f"got {rows.dtype} {rows.shape}"
            )
        self.pending.append(rows)
        if sum(len(piece) for piece in self.pending) >= self.block_size:
            self._flush(whole_blocks=True)

    def close(self) -> None:
        """Write what is left and close the file; every row must have come."""
        self._flush(whole_blocks=False)
        if self.written != self.shape[0]:
            raise RuntimeError(f"{self.target}: {self.written} of {self.shape[0]} rows were written")
        with _writing(self.target):
            self.dataset.close()

    def _flush(self, whole_blocks: bool) -> None:
        if not self.pending:
            return
        rows = np.concatenate(self.pending)
        count = len(rows) - len(rows) % self.block_size if whole_blocks else len(rows)
        self.pending = [rows[count:]] if count < len(rows) else []
        if count:
            window = Window(0, self.written, self.shape[1], count)
            with _writing(self.target):
                self.dataset.write(np.moveaxis(rows[:count], -1, 0), window=window)
            self.written += count
