"""The download stage: the raw data set's tiles, checked, into data/raw, whatever layout they come in.

``data.layout`` picks how the files are named (:data:`LAYOUTS`, the one place a layout is chosen):
``potsdam``, ISPRS Potsdam's archives or folders (aerialseg.data.potsdam_tiles), ``vaihingen``,
ISPRS Vaihingen's three archives (aerialseg.data.vaihingen), or ``pairs``, any folder of
photo/label pairs (aerialseg.data.pairs). Each layout finds its tiles' files and says how each is
checked and stored (aerialseg.data.tileset.Tiles); this module stores them all alike, under
Potsdam's names, with the manifest every later stage reads. The stage fails before anything
changes: a layout that cannot give what the params ask for (boundary-free labels to be scored on,
a tile's resolution) is refused before data/raw is touched, and data/raw is replaced only once
every tile has passed its checks.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from aerialseg.data.manifest import write_manifest
from aerialseg.data.pairs import pairs_tiles
from aerialseg.data.palette import Palette
from aerialseg.data.potsdam import BOUNDARY_FREE, archive_of
from aerialseg.data.potsdam_tiles import potsdam_tiles
from aerialseg.data.resolution import KnownSizes, tile_pixel_size
from aerialseg.data.tileset import DatasetError, Tiles
from aerialseg.data.vaihingen import vaihingen_tiles
from aerialseg.pipeline.atomic import atomic_dir
from aerialseg.pipeline.params import DataParams
from aerialseg.pipeline.paths import Layout, TileFolder

# data.layout -> the function that finds its tiles: the one place a layout is chosen. A layout is a
# module with one such function, listed here, returning Tiles (its files and how each tile is checked
# and stored).
LAYOUTS: dict[str, Callable[[DataParams, Palette, Layout, Path], Tiles]] = {
    "potsdam": potsdam_tiles,
    "pairs": pairs_tiles,
    "vaihingen": vaihingen_tiles,
}


def download_raw(
    layout: Layout, data: DataParams, palette: Palette, scored: str, resolution_required: bool = False
) -> pd.DataFrame:
    """The download stage: the tiles of ``data.layout`` and ``data.source``, checked, into data/raw
    with its manifest; ``scored`` (evaluate.labels) is the label variant the test tiles are scored on;
    ``resolution_required`` (resize.pixel_size is set): a tile of unknown resolution is refused here,
    not half-way through the resize stage.

    Archive members are unpacked into a temporary folder beside data/raw; data/raw is built aside
    and swapped in only when every tile has passed its checks, so a failure leaves the previous one.
    """
    raw = layout.raw.path
    raw.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=raw.parent) as work, atomic_dir(raw) as staging:
        tiles = LAYOUTS[data.layout](data, palette, layout, Path(work))
        _check_scored_labels(tiles, scored, data.layout)
        return prepare_raw(tiles, TileFolder(staging), data.source, data.pixel_size, resolution_required)


def _check_scored_labels(tiles: Tiles, scored: str, layout: str) -> None:
    """Boundary-free scores need boundary-free labels: refused here, not after the training."""
    if scored == BOUNDARY_FREE and not tiles.boundary_free:
        where = {
            "pairs": "the pairs layout never has them",
            "vaihingen": "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE.zip holds Vaihingen's, "
            "top_mosaic_09cm_area<N>_noBoundary.tif: add it to the source",
        }.get(layout, f"add {archive_of('label_noBoundary')} to the source for Potsdam's")
        raise DatasetError(
            f"evaluate.labels is {BOUNDARY_FREE}, but the data have no boundary-free labels ({where}): set "
            "evaluate.labels: full to score on the full labels"
        )


def prepare_raw(
    tiles: Tiles,
    out: TileFolder,
    source: str = "",
    pixel_size: float | None = None,
    resolution_required: bool = False,
) -> pd.DataFrame:
    """Check every tile and store it under ``out`` (``images/top_potsdam_<tile>_<bands>.tif``, with its
    world file, ``labels/`` and ``labels_no_boundary/``) with ``manifest.csv``, which gives each
    tile's metres per pixel (aerialseg.data.resolution; ``pixel_size``: data.pixel_size).

    Each picture is decoded in full (so truncated files are caught here), one tile at a time (a
    6000 x 6000 tile is 144 MB a picture).
    """
    rows, known = [], KnownSizes(tiles.pixel_size_m, pixel_size, resolution_required)
    for tile, files in tqdm(tiles.files.items(), desc="check tiles", unit="tile"):
        height, width = tiles.store(tile, files, out)
        size = tile_pixel_size(tile, out.photo(tile), (height, width), known)
        rows.append({"tile": tile, "height": height, "width": width, "source": source, "pixel_size_m": size})
    return write_manifest(out.manifest, rows)
