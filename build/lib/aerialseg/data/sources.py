"""Getting the raw data set: download, read and check the tiles before any stage uses them.

``data.layout`` picks how the files are named (:data:`LAYOUTS`, the one place a layout is chosen):
``potsdam``, below, ``vaihingen``, ISPRS Vaihingen's three archives (aerialseg.data.vaihingen), or
``pairs``, any folder of photo/label pairs (aerialseg.data.pairs). Either way the tiles land in
data/raw under Potsdam's names, which every later stage reads.

ISPRS Potsdam comes as one ``Potsdam.zip`` holding a zip per product (``2_Ortho_RGB.zip`` with
``2_Ortho_RGB/top_potsdam_2_10_RGB.tif`` and its ``.tfw`` world file, ``5_Labels_all.zip`` with
``top_potsdam_2_10_label.tif``, ...: see aerialseg.data.potsdam), as those zips alone, or unpacked.
Only the files the params need are read (:class:`Wanted`: the photos of ``data.bands`` with their
world files, the labels and boundary-free labels, of the tiles not in ``data.exclude``); the
other products' archives (surface models, other band sets: most of the 50 GB) are not opened
(aerialseg.data.archives). Downloads resume after an interruption and are checked against their
SHA-256, so a broken transfer is never mistaken for data. Every tile is read once here: a corrupt
file, a photo without its label, a label with a colour outside the palette or a picture that is no
label at all stops the pipeline at its first stage, naming the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePath
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd
import requests
from tqdm import tqdm

from aerialseg.data.archives import extract
from aerialseg.data.labels import LabelDecoding
from aerialseg.data.manifest import write_manifest
from aerialseg.data.pairs import find_pairs, inventory, store_pair
from aerialseg.data.palette import IGNORE_COLOUR, Palette, UnknownColourError
from aerialseg.data.potsdam import (
    BAND_COUNTS,
    BANDS,
    BOUNDARY_FREE,
    FULL,
    LABEL_KINDS,
    PIXEL_SIZE_M,
    archive_kinds,
    archive_of,
    from_participants,
    parse_tile_name,
    tile_order,
)
from aerialseg.data.resolution import KnownSizes, tile_pixel_size
from aerialseg.data.synthetic import write_dataset
from aerialseg.errors import InputError, MissingFileError
from aerialseg.pipeline.atomic import atomic_dir
from aerialseg.pipeline.params import DataParams
from aerialseg.pipeline.paths import Layout, TileFolder
from aerialseg.raster.georef import check_world_file, read_georef, world_file_path
from aerialseg.raster.pictures import TIFF_SUFFIXES, read_image, read_photo, write_image

TIMEOUT_S = 60  # seconds without a byte before a transfer counts as interrupted
DEFECT_SHARE = 0.01  # a label with more pixels than this outside the palette is no label picture at all
VARIANT_OF_KIND = {kind: variant for variant, kind in LABEL_KINDS.items()}


class DownloadError(InputError, RuntimeError):
    """A file could not be fetched completely; a partial file is kept for resuming."""


class ChecksumError(DownloadError):
    """A downloaded file does not have the expected SHA-256. The file is kept: the expected hash in
    the params may be the wrong one, and a Potsdam archive takes hours to fetch again."""


class DatasetError(InputError, ValueError):
    """The tiles found do not form a usable data set (missing partners, sizes that differ...)."""


class DefectiveLabelError(DatasetError):
    """A label picture is mostly not class colours: a broken file, not a few stray pixels."""


def download(url: str, dest_dir: str | Path, sha256: str, chunk: int = 1 << 20) -> Path:
    """Fetch ``url`` into ``dest_dir`` and return the verified file.

    Bytes go to ``<name>.part`` first; a later call resumes it with an HTTP Range request. Once
    complete it is renamed to ``<name>`` and never fetched again, so only ``.part`` is ever resumed
    or restarted. A complete file with another hash is kept and raises ChecksumError: fixing the
    expected hash then uses it as it is; deleting it fetches it again.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / _file_name(url)
    if not target.is_file():
        part = target.with_name(target.name + ".part")
        _fetch(url, part, chunk)
        os.replace(part, target)
    _verify(target, url, sha256)
    return target


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_name(url: str) -> str:
    name = Path(unquote(urlsplit(url).path)).name
    if not name:
        raise DownloadError(f"{url}: cannot tell a file name from this URL")
    return name


def _fetch(url: str, part: Path, chunk: int) -> None:
    """Append the missing bytes of ``url`` to ``part``, or start over if the server ignores Range."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}  # the hash is of the file, not of a compressed transfer
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        with requests.get(url, headers=headers, stream=True, timeout=TIMEOUT_S) as response:
            if response.status_code == 416:  # nothing left to send: the .part holds every byte
                return
            if response.status_code not in (200, 206):
                raise DownloadError(f"{url}: the server answered {response.status_code} {response.reason}")
            if response.status_code == 200:
                offset = 0
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            _stream_to(part, response, offset, total, chunk)
    except requests.RequestException as error:
        raise _interrupted(url, part, error) from error
    if total is not None and part.stat().st_size < total:
        raise _interrupted(url, part, f"got {part.stat().st_size} of {total} bytes")


def _stream_to(part: Path, response: requests.Response, offset: int, total: int | None, chunk: int) -> None:
    with (
        open(part, "ab" if offset else "wb") as out,
        tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=part.stem) as bar,
    ):
        for block in response.iter_content(chunk):
            out.write(block)
            bar.update(len(block))


def _interrupted(url: str, part: Path, reason) -> DownloadError:
    kept = part.stat().st_size if part.exists() else 0
    return DownloadError(
        f"{url}: download stopped before the end ({reason}); {kept} bytes are kept in {part}, run again to resume"
    )


def _verify(path: Path, url: str, sha256: str) -> None:
    actual = file_sha256(path)
    if actual != sha256.lower():
        raise ChecksumError(
            f"{path} (downloaded from {url}): SHA-256 mismatch, expected {sha256.lower()} but the file has "
            f"{actual}. The file is complete and is kept. If the params are wrong, fix the sha256 of this URL in "
            f"data.url.files and run again: the file is then used as it is, without a new download. If the file "
            f"is wrong, delete {path} and run again."
        )


@dataclass(frozen=True)
class Wanted:
    """Which Potsdam files a run reads: the photos of one band set (``kind``) with their world files,
    the labels and boundary-free labels; nothing of the tiles in ``exclude``. Labels of the tiles
    in ``participants`` come from the participants' archives only, all others never do."""

    kind: str = "RGB"
    exclude: frozenset[str] = frozenset()
    participants: frozenset[str] = frozenset()

    @classmethod
    def of(cls, data: DataParams) -> Wanted:
        return cls(BANDS[data.bands], frozenset(data.exclude), frozenset(data.participants_labels))

    def file(self, path: PurePath) -> bool:
        """Whether to read the file at ``path`` (relative to the folder or archive it is in)."""
        name = parse_tile_name(path)
        if name is None or name.tile in self.exclude:
            return False
        if name.kind in VARIANT_OF_KIND:
            return not name.world_file and from_participants(path) == (name.tile in self.participants)
        return name.kind == self.kind

    def archive(self, path: PurePath) -> bool:
        """Whether to open a zip inside an archive: not if Potsdam names it for files not wanted."""
        kinds = archive_kinds(path)
        if kinds is None:
            return True  # a zip of another name may hold anything
        if from_participants(path) and not self.participants:
            return False
        return any(kind == self.kind or kind in VARIANT_OF_KIND for kind in kinds)


EVERY_RGB_TILE = Wanted()  # the RGB photos, their world files and both labels of every tile


@dataclass(frozen=True)
class Found:
    """A file of the source: where it is now, and what messages call it (``archive!member`` for a
    file unpacked into the work folder, which is gone when the message is read)."""

    path: Path
    name: str


@dataclass(frozen=True)
class TileFiles:
    """The files of one tile: photo, its world file (if any), labels by variant (``full`` always)."""

    photo: Found
    labels: dict[str, Found]
    world: Found | None = None


@dataclass
class Scan:
    """What one listed path gave: the wanted files (unpacked if in an archive), the names of every
    Potsdam file seen there (wanted or not), and the zips inside it that were left shut."""

    given: Path
    files: dict[Path, str] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    unopened: list[str] = field(default_factory=list)


def scan_folder(folder: str | Path, wanted: Wanted) -> Scan:
    """The wanted files below ``folder``, through symlinked folders too; nothing is copied."""
    folder = Path(folder)
    files = [path for path in _files_below(folder) if parse_tile_name(path) and path.is_file()]
    return Scan(
        folder,
        {path: str(path) for path in files if wanted.file(path.relative_to(folder))},
        [str(path) for path in files],
    )


def scan_archive(archive: str | Path, work: str | Path, wanted: Wanted) -> Scan:
    """The wanted files of a zip (and of the zips in it) unpacked into ``work``, and nothing else."""
    done = extract(archive, work, wanted.file, wanted.archive)
    seen = [*done.written.values(), *(name for name in done.passed if parse_tile_name(_member(name)))]
    return Scan(Path(archive), done.written, seen, done.unopened)


def _member(name: str) -> PurePath:
    """The file name part of ``archive!inner!member``."""
    return PurePath(name.rsplit("!", 1)[-1])


def find_tiles(folders: Iterable[str | Path], wanted: Wanted = EVERY_RGB_TILE) -> dict[str, TileFiles]:
    """The files of every tile below ``folders`` (already unpacked), in tile order."""
    return pair_tiles([scan_folder(folder, wanted) for folder in folders], wanted)


def _files_below(folder: Path) -> list[Path]:
    """Every file below ``folder``, through symlinked folders too (Path.rglob does not enter them).

    A folder reached again through a link is not read again, so a link back up the tree ends there.
    """
    seen, files = set(), []
    for top, subfolders, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            subfolders.clear()
            continue
        seen.add(real)
        subfolders.sort()  # of two ways to one folder, the first by name is the one read, on every run
        files += [Path(top, name) for name in names]
    return sorted(files)


def pair_tiles(scans: list[Scan], wanted: Wanted) -> dict[str, TileFiles]:
    """Group the wanted files by tile and check they make a data set: every photo with its label,
    each file once, boundary-free labels for all tiles or none, every excluded tile present."""
    found = defaultdict(list)  # (tile, kind, world file) -> files
    for scan in scans:
        for path, name in scan.files.items():
            found[parse_tile_name(path)].append(Found(path, name))
    photos = {key.tile: files for key, files in found.items() if key.kind == wanted.kind and not key.world_file}
    labels = {
        variant: {key.tile: files for key, files in found.items() if key.kind == kind}
        for variant, kind in LABEL_KINDS.items()
    }
    _check_excluded(wanted, scans)
    if not photos:
        raise DatasetError(_no_photos(wanted, scans))
    _check_pairs(photos, labels[FULL], wanted, found)
    _check_boundary_free(photos, labels[BOUNDARY_FREE])
    worlds = {key.tile: files[0] for key, files in found.items() if key.kind == wanted.kind and key.world_file}
    return {
        tile: TileFiles(
            photos[tile][0],
            {variant: by_tile[tile][0] for variant, by_tile in labels.items() if tile in by_tile},
            worlds.get(tile),
        )
        for tile in sorted(photos, key=tile_order)
    }


def _check_excluded(wanted: Wanted, scans: list[Scan]) -> None:
    present = {parse_tile_name(_member(name)).tile for scan in scans for name in scan.seen}
    absent = sorted(wanted.exclude - present, key=tile_order)
    if absent:
        raise DatasetError(
            f"data.exclude names tile(s) {absent} that the source does not have (its tiles: "
            f"{', '.join(sorted(present, key=tile_order)) or 'none'}): a typo? Correct or remove them"
        )


def _no_photos(wanted: Wanted, scans: list[Scan]) -> str:
    """The message when no photo of the chosen band set was found: what each path holds instead."""
    if not any(scan.seen for scan in scans):
        held = "".join(f"; {scan.given} holds {inventory(scan.given)}" for scan in scans if scan.given.is_dir())
        return (
            f"no Potsdam tiles (top_potsdam_<tile>_{wanted.kind}.tif with top_potsdam_<tile>_label.tif) found in "
            f"{', '.join(str(scan.given) for scan in scans) or 'no folder'}{held}; zip archives must be listed "
            "themselves. For photos and labels named otherwise (image_001.tif with mask_001.png), set data.layout: "
            "pairs with data.pairs.photos (a glob of the photos, e.g. 'images/*.tif') and data.pairs.labels (each "
            "label's name from its photo's, e.g. 'masks/{stem}.png'): docs/your-own-data.md"
        )
    band = next(band for band, kind in BANDS.items() if kind == wanted.kind)
    held = [kind for scan in scans for kind in _kinds_held(scan)]
    other = [name for name, kind in BANDS.items() if kind in held]
    return (
        f"data.bands is {band}, but there is no {wanted.kind} photo (top_potsdam_<tile>_{wanted.kind}.tif, in "
        f"{archive_of(wanted.kind)}) in the source. What it holds:\n  "
        + "\n  ".join(_inventory(scan) for scan in scans)
        + f"\nAdd {archive_of(wanted.kind)} to the source"
        + (f", or set data.bands to {' or '.join(other)}" if other else "")
    )


def _kinds_held(scan: Scan) -> list[str]:
    """Kinds of the Potsdam files seen in a scan, and of the zips left shut (by their names)."""
    seen = [parse_tile_name(_member(name)).kind for name in scan.seen]
    return seen + [kind for name in scan.unopened for kind in archive_kinds(_member(name)) or ()]


def _inventory(scan: Scan) -> str:
    counts = Counter(
        name.kind + (" world file" if name.world_file else "")
        for name in (parse_tile_name(_member(seen)) for seen in scan.seen)
    )
    held = ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items())) or "no Potsdam tile files"
    shut = [f"{name} ({', '.join(archive_kinds(_member(name)) or ('?',))})" for name in scan.unopened]
    return f"{scan.given}: {held}" + (f"; not opened: {', '.join(shut)}" if shut else "")


def _check_pairs(photos: dict, labels: dict, wanted: Wanted, found: dict) -> None:
    def participants_note(tile: str) -> str:
        if tile not in wanted.participants:
            return ""
        return " (data.participants_labels lists it: its labels come only from 5_Labels_for_participants*)"

    problems = (
        [
            f"photo without a label: tile {tile} ({photos[tile][0].name}){participants_note(tile)}"
            for tile in sorted(photos.keys() - labels.keys(), key=tile_order)
        ]
        + [
            f"label without a photo: tile {tile} ({labels[tile][0].name})"
            for tile in sorted(labels.keys() - photos.keys(), key=tile_order)
        ]
        + [
            f"tile {key.tile} found more than once: {', '.join(file.name for file in files)}"
            for key, files in sorted(found.items())
            if len(files) > 1
        ]
    )
    if problems:
        raise DatasetError("the tiles do not pair up:\n  " + "\n  ".join(problems))


def _check_boundary_free(photos: dict, boundary_free: dict) -> None:
    """Boundary-free labels for every tile or for none: some missing is a source put together wrong."""
    missing = sorted(photos.keys() - boundary_free.keys(), key=tile_order)
    if boundary_free and missing:
        raise DatasetError(
            f"boundary-free labels (top_potsdam_<tile>_label_noBoundary.tif) were found for {len(boundary_free)} "
            f"tile(s) but not for {missing}. Add the missing ones ({archive_of('label_noBoundary')} holds all "
            f"tiles), or leave these tiles out with data.exclude"
        )


def collect_local(
    paths: Iterable[str | Path], work_dir: str | Path, wanted: Wanted = EVERY_RGB_TILE
) -> dict[str, TileFiles]:
    """The files of every tile in zip archives (the wanted members unpacked into ``work_dir``) and
    already-unpacked folders.

    A line per path says how many photos, world files and labels it gave, so that a path giving
    fewer than expected is seen before any training on them.
    """
    paths = [Path(path) for path in paths]
    if not paths:
        raise DatasetError("no local paths given (data.local.paths is empty)")
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise MissingFileError(f"no such file or folder: {', '.join(missing)}")
    scans = [
        scan_folder(path, wanted)
        if path.is_dir()
        else scan_archive(path, Path(work_dir) / f"{number:02d}_{path.stem}", wanted)
        for number, path in enumerate(paths)
    ]
    tiles = pair_tiles(scans, wanted)
    for scan in scans:
        print(_found_in(scan, tiles))
    return tiles


def _found_in(scan: Scan, tiles: dict[str, TileFiles]) -> str:
    def used(files) -> int:
        return sum(file is not None and file.path in scan.files for file in files)

    photos = used(files.photo for files in tiles.values())
    worlds = used(files.world for files in tiles.values())
    labels = used(files.labels.get(FULL) for files in tiles.values())
    boundary_free = used(files.labels.get(BOUNDARY_FREE) for files in tiles.values())
    return (
        f"{photos} photo(s) with {worlds} world file(s), {labels} label(s) and {boundary_free} boundary-free "
        f"label(s) of Potsdam tiles in {scan.given}"
    )


def collect_url(
    files: Iterable[tuple[str, str]], cache_dir: str | Path, work_dir: str | Path, wanted: Wanted = EVERY_RGB_TILE
) -> dict[str, TileFiles]:
    """Download each ``(url, sha256)`` archive into ``cache_dir`` (kept, so a rerun resumes) and read its tiles."""
    files = list(files)
    if not files:
        raise DatasetError("no files to download (data.url.files is empty)")
    return collect_local([download(url, cache_dir, sha256) for url, sha256 in files], work_dir, wanted)


class Tiles(NamedTuple):
    """What a layout found: each tile's files, in tile order; how one tile is read, checked and
    stored into data/raw (``store(tile, files, out)`` returns its height and width); whether the
    tiles have boundary-free labels; and the metres per pixel the layout's photos are known to
    have (None: not known), for photos whose CRS does not tell (aerialseg.data.resolution)."""

    files: dict[str, Any]
    store: Callable[[str, Any, TileFolder], tuple[int, int]]
    boundary_free: bool
    pixel_size_m: float | None


def potsdam_tiles(data: DataParams, palette: Palette, layout: Layout, work: Path) -> Tiles:
    """ISPRS Potsdam's files (``top_potsdam_<tile>_RGB.tif`` ...) of the chosen source, unpacked or
    generated into ``work``."""
    wanted = Wanted.of(data)
    if data.source == "url":
        files = collect_url([(file.url, file.sha256) for file in data.url.files], layout.downloads, work, wanted)
    elif data.source == "local":
        files = collect_local(data.local.paths, work, wanted)
    else:
        synthetic = data.synthetic
        write_dataset(TileFolder(work), synthetic.tiles, synthetic.size, synthetic.seed, palette, wanted.kind)
        files = find_tiles([work], wanted)
    return potsdam(files, palette, data.ignore_unknown_colours)


def potsdam(
    files: dict[str, TileFiles], palette: Palette, ignore_unknown: bool = False, pixel_size_m: float = PIXEL_SIZE_M
) -> Tiles:
    """Potsdam-named tiles, stored as they are once their labels pass the palette (see _store_tile),
    of ``pixel_size_m`` metres per pixel where the photos do not say (Potsdam's 5 cm by default)."""
    boundary_free = any(BOUNDARY_FREE in tile.labels for tile in files.values())
    store = partial(_store_tile, palette=palette, ignore_unknown=ignore_unknown)
    return Tiles(files, store, boundary_free, pixel_size_m)


def pairs_tiles(data: DataParams, palette: Palette, layout: Layout, work: Path) -> Tiles:
    """Any folder of photo/label pairs (aerialseg.data.pairs), relative to the repository root;
    ``work`` is not needed: nothing is unpacked."""
    pairs = data.pairs
    background = None if pairs.background is None else palette.names.index(pairs.background)
    values = pairs.class_values(palette.num_classes)
    decoding = LabelDecoding(pairs.label_encoding, palette, values, pairs.ignore_value, pairs.class_field, background)
    files = find_pairs(pairs, layout.root, frozenset(data.exclude))
    store = partial(store_pair, kind=BANDS[data.bands], decoding=decoding)
    return Tiles(files, store, boundary_free=False, pixel_size_m=None)


def vaihingen_tiles(data: DataParams, palette: Palette, layout: Layout, work: Path) -> Tiles:
    """ISPRS Vaihingen's three archives (aerialseg.data.vaihingen, imported when used: it builds on
    this module's Tiles and Potsdam storage)."""
    from aerialseg.data import vaihingen

    return vaihingen.vaihingen_tiles(data, palette, layout, work)


# data.layout -> the function that finds its tiles: the one place a layout is chosen. A layout is one
# more function here, returning Tiles (its files and how each tile is checked and stored).
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


def _store_tile(
    tile: str, files: TileFiles, out: TileFolder, palette: Palette, ignore_unknown: bool
) -> tuple[int, int]:
    """Check a Potsdam tile and store it as it is: sizes must agree, a photo must have its bands, a
    world file its six numbers, and labels palette colours only (black only in a boundary-free
    label; unknown colours let through with ``ignore_unknown``, never more than DEFECT_SHARE).
    Where the photo holds nothing (aerialseg.raster.pictures.read_photo), the labels are black."""
    kind = parse_tile_name(files.photo.path).kind
    pixels, valid = read_photo(files.photo.path, files.photo.name)
    bands = BAND_COUNTS[kind]
    if pixels.shape[2] < bands:
        raise DatasetError(f"{files.photo.name}: a {kind} photo has {bands} bands, this one {pixels.shape[2]}")
    size = pixels.shape[:2]
    photo = out.photo(tile, kind)
    photo.parent.mkdir(parents=True, exist_ok=True)
    if files.world:  # checked before the photo is read for its position, which reads the world file too
        check_world_file(files.world.path, files.world.name)  # six numbers, or an error naming it
        shutil.copyfile(files.world.path, world_file_path(photo))
    _store(files.photo, pixels, photo, bands, valid)
    del pixels
    for variant, label in files.labels.items():
        colours = read_image(label.path, label.name)
        if colours.shape[:2] != size:
            raise DatasetError(
                f"tile {tile}: photo {files.photo.name} is {size[1]}x{size[0]} px but label {label.name} is "
                f"{colours.shape[1]}x{colours.shape[0]} px"
            )
        _check_label(tile, label.name, colours, palette, ignore_unknown, variant)
        colours[~valid, :3] = IGNORE_COLOUR
        _store(label, colours, out.label(tile, variant), 3, valid)
    return size


def _check_label(tile: str, name: str, colours, palette: Palette, ignore_unknown: bool, variant: str) -> None:
    """Palette colours only (and black, in a boundary-free label); a few stray pixels may be let
    through with ``ignore_unknown``, but a picture that is mostly other colours is refused always."""
    try:
        palette.rgb_to_index(colours, source=name, with_ignored=variant == BOUNDARY_FREE)
    except UnknownColourError as error:
        if error.share > DEFECT_SHARE:
            raise DefectiveLabelError(
                f"{name}: {error.share:.1%} of its pixels are not class colours, so this is no label picture "
                f"({error}). Potsdam's 5_Labels_all.zip has one such file: top_potsdam_4_12_label.tif is the label "
                f'drawn over the photo. Either leave the tile out (data.exclude: ["{tile}"]), or take its labels '
                f'from the participants\' archives, which are right (data.participants_labels: ["{tile}"], with '
                "5_Labels_for_participants.zip in the source, as it is in Potsdam.zip)"
            ) from error
        if not ignore_unknown:
            raise


def _store(source: Found, pixels: np.ndarray, target: Path, bands: int, valid: np.ndarray) -> None:
    """Copy a TIFF of ``bands`` bands as it is, if its photo's pixels are all ``valid``; write
    anything else (PNG, RGBA, extra bands, a photo with empty pixels and the labels blacked out
    there) as a GeoTIFF of its first ``bands`` bands in the same place, with the photo's mask of
    valid pixels (its world file is copied by _store_tile)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.path.suffix.lower() in TIFF_SUFFIXES and pixels.shape[2] == bands and valid.all():
        shutil.copyfile(source.path, target)
    else:
        georef = dataclasses.replace(read_georef(source.path), world_file=False)
        write_image(target, pixels[..., :bands], georef, valid)
