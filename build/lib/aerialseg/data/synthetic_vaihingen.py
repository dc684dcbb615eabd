"""Synthetic tiles packed as ISPRS packs Vaihingen: its three zips, laid out as the real ones.

``ISPRS_semantic_labeling_Vaihingen.zip`` holds the IRRG photos as ``top/top_mosaic_09cm_<area>.tif``
beside what no run reads: ``dsm/dsm_09cm_matching_<area>.tif`` and
``gts_for_participants/top_mosaic_09cm_<area>.tif`` (labels under the photos' very names); the
ground-truth zips hold the labels at their root, ``..._COMPLETE.zip`` under the photos' names,
``..._eroded_COMPLETE.zip`` as ``top_mosaic_09cm_<area>_noBoundary.tif`` with one more, of
``area9``, which has no photo. Tiles differ in size and none is square, as Vaihingen's.

The names are spelt out here, not taken from aerialseg.data.vaihingen, so that the reader is
tested against the layout rather than against itself. Besides tests, ``data.source: synthetic``
with ``data.layout: vaihingen`` reads these zips, so that a synthetic run takes the real path.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from aerialseg.data.palette import Palette
from aerialseg.data.synthetic import boundary_free, generate_tile
from aerialseg.raster.pictures import write_image

PHOTOS_ZIP = "ISPRS_semantic_labeling_Vaihingen.zip"
LABELS_ZIP = "ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE.zip"
ERODED_ZIP = "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE.zip"
STRAY = "area9"  # the eroded labels' tile without a photo


def tile_size(number: int, size: int) -> tuple[int, int]:
    """(height, width) of the ``number``-th tile: ``size`` on its long side, 60 to 90 % of it on the
    other, standing and lying in turn (Vaihingen's tiles are cut to the town, not to a grid)."""
    short = round(size * (0.6 + 0.1 * (number % 4)))
    return (size, short) if number % 2 == 0 else (short, size)


def write_vaihingen_zips(
    folder: str | Path, tiles: Sequence[str], size: int, palette: Palette, seed: int = 0
) -> list[Path]:
    """Write the three zips of ``tiles`` (area ids) into ``folder``: photos, labels, boundary-free labels.

    Each tile has its own seed derived from (``seed``, tile number), as synthetic.write_dataset's.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    zips = [folder / name for name in (PHOTOS_ZIP, LABELS_ZIP, ERODED_ZIP)]
    with tempfile.TemporaryDirectory(dir=folder) as work:

        def pictures(pixels: np.ndarray) -> Path:  # one file, rewritten for each member
            write_image(Path(work) / "picture.tif", pixels)
            return Path(work) / "picture.tif"

        photos, labels, eroded = (zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) for path in zips)
        with photos, labels, eroded:
            for number, tile in enumerate(tqdm(tiles, desc="Vaihingen zips", unit="tile")):
                tile_seed = int(np.random.SeedSequence([seed, number]).generate_state(1)[0])
                photo, label = generate_tile(tile_seed, tile_size(number, size), palette, "IRRG")
                name = f"top_mosaic_09cm_{tile}"
                photos.write(pictures(photo), f"top/{name}.tif")
                photos.write(pictures(photo[..., :1]), f"dsm/dsm_09cm_matching_{tile}.tif")
                photos.write(pictures(label), f"gts_for_participants/{name}.tif")
                labels.write(pictures(label), f"{name}.tif")
                eroded.write(pictures(boundary_free(label, palette)), f"{name}_noBoundary.tif")
            _, stray = generate_tile(seed, (64, 80), palette, "IRRG")
            eroded.write(pictures(boundary_free(stray, palette)), f"top_mosaic_09cm_{STRAY}_noBoundary.tif")
    return zips
