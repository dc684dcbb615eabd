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
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioError
from rasterio.windows import Window

from aerialseg.pipeline.atomic import atomic_file
from aerialseg.raster.georef import Georeference, allow_plain
from aerialseg.raster.opening import RasterError, gdal_environment, gdal_reason, reading

RASTER_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jp2", ".img", ".vrt")  # looked for in folders
BLOCK_SIZE = 512  # COG tile side (GDAL's default), also the staging tile side
COG_OPTIONS = dict(driver="COG", compress="DEFLATE", bigtiff="IF_SAFER", num_threads="ALL_CPUS")
FILL_SAMPLE = 1024  # side of the decimated view that measures a raster's fill values
STAGING_OPTIONS = dict(driver="GTiff", tiled=True, compress="ZSTD", zstd_level=1, bigtiff="IF_SAFER")


@dataclass
class RasterRows:
    """An open raster's bands ``indexes`` (1-based, in the order wanted) as an H x W x bands uint8
    image that is read only by rows (aerialseg.predict.blending.Rows): each request reads the rows'
    window from the file. Pixels the raster marks empty (nodata, alpha, mask) are replaced by
    ``fill`` (one value per band), so a prediction sees plain ground there rather than a black
    hole whose edges it would map as objects; None where the raster has no empty pixels."""

    path: Path
    dataset: rasterio.DatasetReader
    indexes: tuple[int, ...]
    fill: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.dataset.height, self.dataset.width, len(self.indexes)

    @property
    def georeference(self) -> Georeference:
        with allow_plain():
            return Georeference(self.dataset.crs, self.dataset.transform)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        first, last = int(rows[0]), int(rows[-1])
        window = Window(0, first, self.dataset.width, last - first + 1)
        with self._reading(first, last):
            pixels = self.dataset.read(list(self.indexes), window=window)
            if self.fill is not None:
                empty = self.dataset.dataset_mask(window=window) == 0
                pixels[:, empty] = self.fill[:, None]
        return np.moveaxis(pixels, 0, -1)[rows - first]

    def valid(self, first: int, count: int) -> np.ndarray:
        """(count, W) bool: which pixels of rows ``first`` to ``first + count`` hold something."""
        if self.fill is None:
            return np.ones((count, self.dataset.width), dtype=bool)
        with self._reading(first, first + count - 1):
            return self.dataset.dataset_mask(window=Window(0, first, self.dataset.width, count)) > 0

    def _reading(self, first: int, last: int):
        return reading(self.path, f"rows {first} to {last} of {self.dataset.height}")


def fill_values(dataset: rasterio.DatasetReader, indexes: Sequence[int]) -> np.ndarray | None:
    """The mean of each of bands ``indexes`` over the raster's valid pixels (0 if none), to fill
    its empty ones with; None if it has none (every band's mask flags say all valid).

    Measured on a sample of at most FILL_SAMPLE x FILL_SAMPLE pixels (GDAL reads a decimated
    view, a block at a time), so it costs one pass over the file and no memory to speak of, and is
    the same whichever rows are read later: every window fills alike.
    """
    if all(flags == [MaskFlags.all_valid] for flags in dataset.mask_flag_enums):
        return None
    shape = (min(dataset.height, FILL_SAMPLE), min(dataset.width, FILL_SAMPLE))
    with reading(dataset.name):
        pixels = dataset.read(list(indexes), out_shape=(len(indexes), *shape))
        valid = dataset.dataset_mask(out_shape=shape) > 0
    if not valid.any():
        return np.zeros(len(indexes), dtype=np.uint8)
    return np.rint(pixels[:, valid].mean(axis=1)).astype(np.uint8)


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
    nodata: int | None = None,
) -> Iterator[Callable[[np.ndarray], None]]:
    """Yield ``write(rows)``, which takes the raster's next rows, top to bottom, as (n, W, bands)
    uint8; when the block ends with every row written, ``path`` becomes a Cloud-Optimized GeoTIFF.

    ``colours`` is band 1's colour table (class index -> RGB), ``descriptions`` name the bands,
    ``tags`` are dataset metadata, ``scales`` turn stored bytes into values (GDAL applies them
    on request), ``resampling`` makes the overviews ("nearest" for classes, "average" for
    probabilities), and ``nodata`` is the value declared empty (a GIS shows it transparent, and
    overviews leave it out). If anything fails, nothing is left under ``path`` (an older file stays).
    """
    path = Path(path)
    with atomic_file(path) as final, gdal_environment():
        staging = final.with_name(f"{final.stem}.staging{final.suffix}")  # removed as a stale temporary if killed
        profile = dict(STAGING_OPTIONS, height=height, width=width, count=bands, dtype="uint8", nodata=nodata)
        profile.update(blockxsize=block_size, blockysize=block_size, **georeference.profile())
        try:
            with _writing(path), allow_plain():
                dataset = rasterio.open(staging, "w", **profile)
            try:
                _describe(dataset, colours, descriptions, tags or {}, scales)
                blocks = _RowBlocks(dataset, path, block_size)
                yield blocks.write
                blocks.close()
            finally:
                _close_quietly(dataset)
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
    """GDAL's write errors (disk full, folder gone) as one line naming the output.

    libtiff reports a failed write(2) in the OS's words ("No space left on device") on the
    process's stderr, not in GDAL's error: it is taken while GDAL writes and put into the message,
    where aerialseg.pipeline.atomic recognises a full disk, instead of lines printed beside it.
    """
    with _c_stderr() as printed:
        try:
            yield
        except RasterioError as error:
            said = " ".join(printed().split())
            raise RasterError(
                f"{path}: cannot write it: {gdal_reason(error)}{f' ({said})' if said else ''} (check the free space "
                f"and permissions of {path.parent})"
            ) from error


@contextlib.contextmanager
def _c_stderr(pass_on: bool = True):
    """Yield a function that returns what was written to file descriptor 2 (C libraries' stderr)
    so far; on success, if ``pass_on``, it is written there after all, as it would have been."""
    sys.stderr.flush()
    kept = os.dup(2)
    with tempfile.TemporaryFile() as taken:
        os.dup2(taken.fileno(), 2)
        failed = True
        try:
            yield lambda: (sys.stderr.flush(), taken.seek(0), taken.read().decode(errors="replace"))[-1]
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(kept, 2)
            os.close(kept)
            if pass_on and not failed:
                taken.seek(0)
                os.write(2, taken.read())


def _close_quietly(dataset) -> None:
    """Close the staging file (a no-op once _RowBlocks closed it); after a failed write libtiff
    would print that write's error on stderr once more."""
    with _c_stderr(pass_on=False):
        dataset.close()


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
