"""ISPRS Vaihingen as downloaded: its file names, its three archives, and the tiles they make.

The download is three zips (:data:`ARCHIVES`). ``ISPRS_semantic_labeling_Vaihingen.zip`` holds the
photos as ``top/top_mosaic_09cm_area<N>.tif`` (IRRG: infrared, red, green; 8 bits, 9 cm, tiles of
different sizes, about 1900 x 2500 px), beside products no run reads (``dsm/``, and
``gts_for_participants/``: the labels of the 16 training areas as first released, under the
photos' very names). ``..._ground_truth_COMPLETE.zip`` holds the labels of all 33 areas at its
root, again under the photos' names (``top_mosaic_09cm_area<N>.tif``), and
``..._ground_truth_eroded_COMPLETE.zip`` the boundary-free ones the benchmark is scored on
(``top_mosaic_09cm_area<N>_noBoundary.tif``), plus one of ``area9``, which has no photo. The
colours and classes are Potsdam's. Since a photo and its label have the same name, a file is
told by the archive it came from (a zip, or the folder it was extracted to under the zip's
name), never by its name alone; in the photos' archive only ``top/`` holds photos. Tile ids are
the names' areas: ``area1`` ... ``area38``.

The photos and the labels are needed; the boundary-free labels only to score on them
(``evaluate.labels: no_boundary``, which the download stage refuses without them). Each tile is
then stored as a Potsdam one (aerialseg.data.potsdam_tiles.potsdam: labels checked against the palette).

Names, layout and split checked against two peers' code: mmsegmentation
``tools/dataset_converters/vaihingen.py`` (photos from ``top/``, eroded labels from the archive
root, ``area9``'s eroded label dropped as unused, the same 16 training and 17 test areas) and
torchgeo ``torchgeo/datasets/vaihingen.py`` (``Vaihingen2D``: the archives' names, photos at
``top/<name>`` and labels at ``<name>`` with the same name, the same split).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePath
from typing import NamedTuple

from aerialseg.data.archives import extract
from aerialseg.data.fetch import download
from aerialseg.data.palette import Palette
from aerialseg.data.potsdam import BOUNDARY_FREE, FULL, TILE_ID, label_name, photo_name, tile_order
from aerialseg.data.potsdam_tiles import Found, TileFiles, potsdam
from aerialseg.data.synthetic_vaihingen import write_vaihingen_zips
from aerialseg.data.tileset import DatasetError, Tiles, check_excluded, few
from aerialseg.errors import MissingFileError
from aerialseg.pipeline.params import DataParams
from aerialseg.pipeline.paths import Layout

PIXEL_SIZE_M = 0.09  # the photos' 9 cm, where their georeferencing does not give a resolution in metres
PHOTOS = "photos"  # the part of the download that holds the photos; the labels' parts are their variants
ARCHIVES = {  # part -> its archive, as ISPRS names it
    PHOTOS: "ISPRS_semantic_labeling_Vaihingen.zip",
    FULL: "ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE.zip",
    BOUNDARY_FREE: "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE.zip",
}
# The parts always needed, with what their archives hold (for the messages). The boundary-free labels
# are needed only to be scored on: sources.download_raw refuses evaluate.labels no_boundary without them.
REQUIRED = {PHOTOS: "the IRRG photos, top/top_mosaic_09cm_area<N>.tif", FULL: "the labels, top_mosaic_09cm_area<N>.tif"}
CALLED = {PHOTOS: "photos", FULL: "labels", BOUNDARY_FREE: "boundary-free labels"}  # part -> its files, in messages
PHOTO_FOLDER = "top"  # in the photos' archive; gts_for_participants/ beside it holds labels under the same names
KIND = "IRRG"  # the only band set Vaihingen has
AREAS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 20, 21, 22, 23, 24, 26, 27, 28, 29, 30, 31, 32, 33,
         34, 35, 37, 38)  # fmt: skip
SOURCE_KEYS = {"local": "data.local.paths", "url": "data.url.files", "synthetic": "data.synthetic"}  # for messages
STRAYS = frozenset({"area9"})  # the eroded archive's label without a photo (mmsegmentation drops it too)

# The id is matched lazily, so that _noBoundary is the variant's, not part of the id.
_NAME = re.compile(rf"^top_mosaic_09cm_(?P<tile>{TILE_ID}?)(?P<eroded>_noBoundary)?\.tiff?$", re.I)


class MemberName(NamedTuple):
    """What a Vaihingen file name says: its tile, and whether it is a boundary-free label (else it
    is a photo or a full label, which only its archive tells apart)."""

    tile: str
    boundary_free: bool


def parse_name(path: str | PurePath) -> MemberName | None:
    """(tile id, boundary-free?) of a Vaihingen file name, e.g. ('area1', False), or None."""
    match = _NAME.match(PurePath(path).name)
    return MemberName(match["tile"], bool(match["eroded"])) if match else None


def area_ids(count: int) -> list[str]:
    """The ids of the first ``count`` of Vaihingen's 33 areas: area1, area2, ... area8, area10, ..."""
    if count > len(AREAS):
        raise DatasetError(f"data.synthetic.tiles is {count}, but Vaihingen has {len(AREAS)} areas: set at most that")
    return [f"area{number}" for number in AREAS[:count]]


def vaihingen_tiles(data: DataParams, palette: Palette, layout: Layout, work: Path) -> Tiles:
    """ISPRS Vaihingen's three archives of the chosen source (listed, downloaded into the download
    cache, or generated into ``work``), read into ``work`` and stored as Potsdam tiles."""
    if data.source == "url":
        paths = [download(file.url, layout.downloads, file.sha256) for file in data.url.files]
    elif data.source == "local":
        paths = data.local.paths
    else:
        tiles = area_ids(data.synthetic.tiles)
        paths = write_vaihingen_zips(work / "synthetic", tiles, data.synthetic.size, palette, data.synthetic.seed)
    files = collect(paths, work, frozenset(data.exclude), SOURCE_KEYS[data.source])
    return potsdam(files, palette, data.ignore_unknown_colours, PIXEL_SIZE_M)


def collect(
    paths: Iterable[str | Path], work: Path, exclude: frozenset[str] = frozenset(), key: str = "data.local.paths"
) -> dict[str, TileFiles]:
    """The files of every tile in Vaihingen's archives or their folders, paired by archive and
    named as Potsdam's in ``work`` (which also receives the members unpacked); ``key`` is where
    the params list the paths, for the messages."""
    parts = _parts([Path(path) for path in paths], key)
    found = {part: _members(part, path, work / part) for part, path in parts.items()}
    check_excluded(exclude, found[PHOTOS])
    found = {part: {tile: file for tile, file in files.items() if tile not in exclude} for part, files in found.items()}
    _drop_strays(found)
    _check_pairs(found)
    return {tile: _as_potsdam(tile, found, work / "tiles") for tile in sorted(found[PHOTOS], key=tile_order)}


def _parts(paths: list[Path], key: str) -> dict[str, Path]:
    """Which archive each path is, by its name (a folder: the archive's name less ``.zip``)."""
    if not paths:
        raise DatasetError(f"{key}: no paths given; list Vaihingen's archives: {', '.join(ARCHIVES.values())}")
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise MissingFileError(f"no such file or folder: {', '.join(missing)}")
    parts = {}
    for path in paths:
        part = _part_of(path)
        if part is None:
            raise DatasetError(
                f"{path}: not one of Vaihingen's archives ({', '.join(ARCHIVES.values())}); list them as downloaded, "
                "or the folders they were extracted to, each named as its archive without .zip"
            )
        if part in parts:
            raise DatasetError(f"{parts[part]} and {path} are both {ARCHIVES[part]}: list it once")
        parts[part] = path
    for part, holds in REQUIRED.items():
        if part not in parts:
            raise DatasetError(
                f"{key}: {ARCHIVES[part]} is missing (it holds {holds}): add it, as downloaded or extracted to "
                f"a folder of that name less .zip"
            )
    return parts


def _part_of(path: Path) -> str | None:
    """The part a zip or folder is, by its name alone: its members' names cannot tell a photo from a label."""
    name = path.name.lower() if path.is_file() else f"{path.name}.zip".lower()
    return next((part for part, archive in ARCHIVES.items() if archive.lower() == name), None)


def _wanted(part: str, member: PurePath) -> str | None:
    """The tile of a member of ``part``'s archive (its path inside), or None if it is none of its files."""
    name = parse_name(member)
    if name is None or name.boundary_free != (part == BOUNDARY_FREE):
        return None
    if part == PHOTOS and member.parent.name.lower() != PHOTO_FOLDER:
        return None  # gts_for_participants/ holds labels under the photos' names
    return name.tile


def _members(part: str, path: Path, folder: Path) -> dict[str, Found]:
    """The files of ``part`` in ``path`` by tile: a folder's where they are, a zip's unpacked into ``folder``."""
    if path.is_dir():
        files = {file: str(file) for file in sorted(path.rglob("*")) if file.is_file()}
        files = {file: name for file, name in files.items() if _wanted(part, file.relative_to(path))}
    else:
        files = extract(path, folder, lambda member: _wanted(part, member) is not None, lambda _: False).written
    by_tile = {}
    for file, name in files.items():
        tile = parse_name(file).tile
        if tile in by_tile:
            raise DatasetError(f"tile {tile} found twice in {path}: {by_tile[tile].name} and {name}; keep one")
        by_tile[tile] = Found(file, name)
    print(f"{len(by_tile)} {CALLED[part]} of Vaihingen areas in {path}")
    return by_tile


def _drop_strays(found: dict[str, dict[str, Found]]) -> None:
    """Leave out the labels the download holds without a photo (area9's), saying so."""
    for files in found.values():
        for tile in sorted(STRAYS & (files.keys() - found[PHOTOS].keys())):
            print(f"{files.pop(tile).name}: left out, Vaihingen has no photo of {tile}")


def _check_pairs(found: dict[str, dict[str, Found]]) -> None:
    """Every photo with its label (and boundary-free label, if there are any), every label with its
    photo: refused in one line, a few of each listed, with the tiles to leave out."""
    photos = found[PHOTOS]
    unlabelled = [
        (tile, f"{photos[tile].name} (no {_member_name(part, tile)} in {ARCHIVES[part]})")
        for part in (FULL, BOUNDARY_FREE)
        if part in found
        for tile in sorted(photos.keys() - found[part].keys(), key=tile_order)
    ]
    lone = [
        (tile, f"{file.name} (no {_member_name(PHOTOS, tile)} in {ARCHIVES[PHOTOS]})")
        for part in (FULL, BOUNDARY_FREE)
        for tile, file in sorted(found.get(part, {}).items(), key=lambda item: tile_order(item[0]))
        if tile not in photos
    ]
    problems = [
        f"{kind}: {few([problem for _, problem in listed])}"
        for kind, listed in (("photo(s) without their label", unlabelled), ("label(s) without their photo", lone))
        if listed
    ]
    if problems:
        tiles = [f'"{tile}"' for tile in sorted({tile for tile, _ in unlabelled + lone}, key=tile_order)]
        raise DatasetError(
            f"Vaihingen's tiles do not pair up: {'; '.join(problems)}. Add the missing files, or leave the tiles out "
            f"with data.exclude: [{few(tiles)}]"
        )


def _member_name(part: str, tile: str) -> str:
    """Where a tile's file of ``part`` lies in its archive."""
    return {
        PHOTOS: f"{PHOTO_FOLDER}/top_mosaic_09cm_{tile}.tif",
        FULL: f"top_mosaic_09cm_{tile}.tif",
        BOUNDARY_FREE: f"top_mosaic_09cm_{tile}_noBoundary.tif",
    }[part]


def _as_potsdam(tile: str, found: dict[str, dict[str, Found]], folder: Path) -> TileFiles:
    """A tile's files under Potsdam's names (links in ``folder``), so that it is stored as a Potsdam
    tile; messages still name the files as found (``archive!member``)."""
    folder.mkdir(parents=True, exist_ok=True)

    def linked(file: Found, name: str) -> Found:
        link = folder / name
        os.symlink(file.path.absolute(), link)
        return Found(link, file.name)

    labels = {part: linked(files[tile], label_name(tile, part)) for part, files in found.items() if part != PHOTOS}
    return TileFiles(linked(found[PHOTOS][tile], photo_name(tile, KIND)), labels)
