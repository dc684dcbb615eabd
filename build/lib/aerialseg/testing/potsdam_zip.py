"""Synthetic tiles packed as the ISPRS download packs them: a ``Potsdam.zip`` of the real layout.

The real-data path (one archive in, only the needed members read) is tested and measured on
this, without the 50 GB download; it also lets ``source: local`` be tried on any machine. The
layout is the download's: ``Potsdam/2_Ortho_RGB.zip`` (``2_Ortho_RGB/top_potsdam_2_10_RGB.tif`` and
``.tfw``), ``3_Ortho_IRRG.zip``, ``4_Ortho_RGBIR.zip``, ``5_Labels_all.zip`` and
``5_Labels_all_noBoundary.zip`` (labels at the archive root), the participants' label archives,
and products no run reads (``1_DSM.zip``, ``1_DSM_normalisation.zip``, a reference implementation
``.tgz``), each holding ``filler`` incompressible bytes, so that reading them would show.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rasterio.io import MemoryFile
from tqdm import tqdm

from aerialseg.data.palette import Palette
from aerialseg.data.potsdam import BAND_ORDER, BOUNDARY_FREE, FULL, label_name, photo_name
from aerialseg.data.synthetic import boundary_free, generate_tile, tile_transform
from aerialseg.raster.georef import allow_plain, world_file_text
from aerialseg.raster.pictures import image_profile

DECOYS = {  # the products no run reads, and the file each holds
    "1_DSM.zip": "1_DSM/dsm_potsdam_02_10.tif",
    "1_DSM_normalisation.zip": "1_DSM_normalisation/dsm_potsdam_02_10_normalized_lastools.jpg",
    "ISPRS_semantic_labeling_reference_implementation.tgz": None,
}
_ORTHO = {"RGB": "2_Ortho_RGB", "IRRG": "3_Ortho_IRRG", "RGBIR": "4_Ortho_RGBIR"}
_LABELS = {FULL: "5_Labels_all", BOUNDARY_FREE: "5_Labels_all_noBoundary"}
_PARTICIPANTS = {FULL: "5_Labels_for_participants", BOUNDARY_FREE: "5_Labels_for_participants_no_Boundary"}


def write_potsdam_zip(
    path: str | Path,
    tiles: Sequence[str],
    size: int,
    palette: Palette,
    seed: int = 0,
    filler: int = 0,
    compress_nested: bool = False,
    defective: Sequence[str] = (),
    participants: Sequence[str] = (),
) -> Path:
    """Write ``path`` holding ``tiles`` of ``size`` px in every band set, with world files and both labels.

    ``compress_nested``: deflate the nested zips inside the outer one (zip tools usually store
    them as they are). ``defective``: tiles whose 5_Labels_all labels are the label blended over the
    photo, like the download's 4_12; ``participants``: tiles in the participants' label archives
    (right labels, defective or not).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as work:
        nested = _nested_zips(Path(work), tiles, size, palette, seed, defective, participants)
        method = zipfile.ZIP_DEFLATED if compress_nested else zipfile.ZIP_STORED
        with zipfile.ZipFile(path, "w", method) as outer:
            for name, member in DECOYS.items():
                outer.write(_decoy(Path(work) / name, member, filler), f"Potsdam/{name}")
            for name, file in nested.items():
                outer.write(file, f"Potsdam/{name}.zip")
    return path


def _nested_zips(work: Path, tiles, size, palette, seed, defective, participants) -> dict[str, Path]:
    """Each product's zip, written in ``work``, by name; a tile is generated once for all of them."""
    zips = {name: work / f"{name}.zip" for name in (*_ORTHO.values(), *_LABELS.values(), *_PARTICIPANTS.values())}
    opened = {name: zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED) for name, file in zips.items()}
    try:
        for number, tile in enumerate(tqdm(tiles, desc="Potsdam.zip tiles", unit="tile")):
            rgbir, label = generate_tile(seed + number, size, palette, "RGBIR")
            world = world_file_text(tile_transform(tile, size))
            for kind, folder in _ORTHO.items():
                bands = [BAND_ORDER["RGBIR"].index(band) for band in BAND_ORDER[kind]]
                opened[folder].writestr(f"{folder}/{photo_name(tile, kind)}", _tiff(rgbir[..., bands]))
                opened[folder].writestr(f"{folder}/{photo_name(tile, kind)[:-4]}.tfw", world)
            for variant, picture in ((FULL, label), (BOUNDARY_FREE, boundary_free(label, palette))):
                shown = _over_photo(picture, rgbir) if tile in defective else picture
                opened[_LABELS[variant]].writestr(label_name(tile, variant), _tiff(shown))
                if tile in participants:
                    opened[_PARTICIPANTS[variant]].writestr(label_name(tile, variant), _tiff(picture))
    finally:
        for zipped in opened.values():
            zipped.close()
    return zips


def _tiff(pixels: np.ndarray) -> bytes:
    """An 8-bit TIFF, bands interleaved (RGBIR: the infrared as a fourth sample, as Potsdam's)."""
    with allow_plain(), MemoryFile() as memory:
        with memory.open(**image_profile(pixels, "GTiff")) as dataset:
            dataset.write(np.moveaxis(pixels, -1, 0))
        return bytes(memory.getbuffer())


def _over_photo(label: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """A label blended half and half over the photo's RGB: colours of no class, as in the download's 4_12."""
    return ((label.astype(np.uint16) + photo[..., :3]) // 2).astype(np.uint8)


def _decoy(path: Path, member: str | None, size: int) -> Path:
    """A product no run reads: ``size`` incompressible bytes, as ``member`` of a zip, or bare."""
    if member:
        with zipfile.ZipFile(path, "w") as zipped, zipped.open(member, "w", force_zip64=True) as out:
            _random_bytes(out, size)
    else:
        with open(path, "wb") as out:
            _random_bytes(out, size)
    return path


def _random_bytes(out, size: int, chunk: int = 1 << 24) -> None:
    for start in range(0, size, chunk):
        out.write(os.urandom(min(chunk, size - start)))
