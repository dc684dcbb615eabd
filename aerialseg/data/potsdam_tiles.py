"""ISPRS Potsdam as downloaded (``data.layout: potsdam``): its files found, paired by tile, checked and stored.

The names of Potsdam's files are aerialseg.data.potsdam; this module reads the files themselves,
from any ``data.source``: downloaded (aerialseg.data.fetch), local archives and folders, or
generated (aerialseg.data.synthetic).

ISPRS Potsdam comes as one ``Potsdam.zip`` holding a zip per product (``2_Ortho_RGB.zip`` with
``2_Ortho_RGB/top_potsdam_2_10_RGB.tif`` and its ``.tfw`` world file, ``5_Labels_all.zip`` with
``top_potsdam_2_10_label.tif``, ...: see aerialseg.data.potsdam), as those zips alone, or unpacked.
Only the files the params need are read (:class:`Wanted`: the photos of ``data.bands`` with their
world files, the labels and boundary-free labels, of the tiles not in ``data.exclude``); the
other products' archives (surface models, other band sets: most of the 50 GB) are not opened
(aerialseg.data.archives). Every tile is read once here: a corrupt file, a photo without its
label, a label with a colour outside the palette or a picture that is no label at all stops the
pipeline at its first stage, naming the file. Vaihingen's tiles are stored the same way
(:func:`potsdam`), once aerialseg.data.vaihingen has found them.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePath

import numpy as np

from aerialseg.data.archives import extract
from aerialseg.data.fetch import download
from aerialseg.data.pairs import inventory
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
from aerialseg.data.synthetic import write_dataset
from aerialseg.data.tileset import DatasetError, Tiles, check_excluded
from aerialseg.errors import MissingFileError
from aerialseg.pipeline.params import DataParams
from aerialseg.pipeline.paths import Layout, TileFolder
from aerialseg.raster.georef import check_world_file, read_georef, world_file_path
from aerialseg.raster.pictures import TIFF_SUFFIXES, read_image, read_photo, write_image

DEFECT_SHARE = 0.01  # a label with more pixels than this outside the palette is no label picture at all
VARIANT_OF_KIND = {kind: variant for variant, kind in LABEL_KINDS.items()}


class DefectiveLabelError(DatasetError):
    """A label picture is mostly not class colours: a broken file, not a few stray pixels."""


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
    check_excluded(wanted.exclude, {parse_tile_name(_member(name)).tile for scan in scans for name in scan.seen})
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
