"""Any folder of photo/label pairs (``data.layout: pairs``): train on anyone's labelled imagery.

The photos are the files a glob matches (``data.pairs.photos``, e.g. ``images/*.tif``); each one's
label is named from the photo's stem by a template (``data.pairs.labels``, e.g.
``masks/{stem}.png``), and the stem is the tile id. Both are relative to the repository root, or
absolute. Pictures are anything GDAL reads (GeoTIFF of any compression, PNG, JPEG, JPEG 2000);
labels are class values or class colours (aerialseg.data.labels).

Everything is checked here, before anything trains, each problem in one line that names the
files or keys and what to do: a glob matching nothing (with what the folder holds instead), photos
and labels that do not pair up, two photos of one stem, a label off its photo's grid (size, or
CRS and transform where both are georeferenced: never silently misaligned), a photo without the
bands of ``data.bands`` (an alpha band is no photo band: it marks the pixels left out, as a
nodata value or mask does), and label values that are no class. Each pair is stored in data/raw as
the Potsdam layout stores a tile (aerialseg.pipeline.paths.TileFolder): the photo as a GeoTIFF
keeping its position, the label in the palette's colours with unlabelled pixels black, so every
later stage reads them as it reads Potsdam. One tile is in memory at a time.
"""

from __future__ import annotations

import dataclasses
import glob
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp

from aerialseg.data.labels import VECTOR_SUFFIXES, LabelDecoding
from aerialseg.data.palette import IGNORE_INDEX, Palette
from aerialseg.data.polygons import rasterise_polygons
from aerialseg.data.potsdam import BAND_COUNTS, BAND_ORDER, BANDS, TILE_ID, tile_order
from aerialseg.data.tileset import Tiles, check_excluded, few
from aerialseg.errors import InputError
from aerialseg.pipeline.params import DataParams, PairsSource
from aerialseg.pipeline.paths import Layout, TileFolder
from aerialseg.raster.bands import ALIASES, canonical
from aerialseg.raster.georef import Grid, allow_plain, read_georef
from aerialseg.raster.pictures import read_image, read_photo, write_image

_MAGIC = re.compile(r"[*?[]")
_TILE_ID = re.compile(TILE_ID)


class PairsError(InputError, ValueError):
    """The photos and labels of data.pairs do not form a usable data set."""


@dataclass(frozen=True)
class Pair:
    """A tile's photo and its label file."""

    photo: Path
    label: Path


def find_pairs(pairs: PairsSource, root: Path, exclude: frozenset[str] = frozenset()) -> dict[str, Pair]:
    """Every photo of ``pairs.photos`` (below ``root``) with its label, by tile id (the photo's
    stem) in natural order, less the ``exclude`` tiles; refused unless they pair up one to one."""
    labels = _label_files(root, pairs.labels)
    label_paths = set(labels.values())
    photos = [path for path in _matches(root, pairs.photos) if path not in label_paths]
    if not photos:
        raise PairsError(_no_photos(root, pairs.photos))
    by_stem = defaultdict(list)
    for photo in photos:
        by_stem[photo.stem].append(photo)
    _check_ids(by_stem)
    check_excluded(exclude, by_stem, source="data.pairs.photos (a photo's stem is its tile id)")
    tiles = {
        stem: Pair(files[0], _label_path(root, pairs.labels, stem))
        for stem, files in sorted(by_stem.items(), key=lambda item: tile_order(item[0]))
        if stem not in exclude
    }
    _check_partners(tiles, labels.keys() - by_stem.keys(), labels, pairs)
    return tiles


def _matches(root: Path, pattern: str) -> list[Path]:
    """The files a glob matches, relative to ``root`` unless absolute; ``**`` spans folders."""
    return [Path(root, match) for match in sorted(glob.glob(pattern, root_dir=root, recursive=True))]


def _label_path(root: Path, template: str, stem: str) -> Path:
    return Path(root, template.format(stem=stem))


def _label_files(root: Path, template: str) -> dict[str, Path]:
    """Every file the label template could name, by the stem it names it for: so that a label
    without a photo is seen, and a photo glob that also matches the labels skips them. A template
    without ``{stem}`` is one vector file for every photo: it labels no photo in particular."""
    if "{stem}" not in template:
        return {}
    before, after = template.split("{stem}", 1)
    name = re.compile(re.escape(before) + r"(?P<stem>[^/]+)" + re.escape(after))
    found = glob.glob(glob.escape(before) + "*" + glob.escape(after), root_dir=root)
    return {match["stem"]: Path(root, path) for path in sorted(found) if (match := name.fullmatch(path))}


def _check_ids(by_stem: dict[str, list[Path]]) -> None:
    """One photo per stem, and stems that can be tile ids (they become file names in data/raw)."""
    bad = [str(files[0]) for stem, files in by_stem.items() if not _TILE_ID.fullmatch(stem)]
    if bad:
        raise PairsError(
            f"photo(s) whose name is no tile id (letters, digits, '_', '.', '-', starting with a letter or digit): "
            f"{few(bad)}; rename them and their labels"
        )
    twice = [f"{stem} ({', '.join(map(str, files))})" for stem, files in by_stem.items() if len(files) > 1]
    if twice:
        raise PairsError(
            f"photos with the same stem, which is the tile id: {few(twice)}; rename one of each, or narrow "
            "data.pairs.photos to one of them"
        )


def _check_partners(tiles: dict[str, Pair], orphans: set[str], labels: dict[str, Path], pairs: PairsSource) -> None:
    """Every photo has its label file and every label file its photo: a missing one is a folder
    put together wrong, which training on the rest would hide."""
    unlabelled = [f"{pair.photo} (no {pair.label})" for pair in tiles.values() if not pair.label.is_file()]
    lone = [str(labels[stem]) for stem in sorted(orphans, key=tile_order)]
    problems = ([f"photo(s) without a label: {few(unlabelled)}"] if unlabelled else []) + (
        [f"label(s) without a photo: {few(lone)}"] if lone else []
    )
    if problems:
        raise PairsError(
            f"the photos (data.pairs.photos {pairs.photos!r}) and labels (data.pairs.labels {pairs.labels!r}) do not "
            f"pair up: {'; '.join(problems)}. Add the missing files, remove the extra ones, or correct the two keys"
        )


def _no_photos(root: Path, pattern: str) -> str:
    """The message when the photo glob matches nothing: what the folder it looks in holds instead."""
    folder = _fixed_folder(root, pattern)
    where = f"there is no folder {folder}" if not folder.is_dir() else f"{folder} holds {inventory(folder)}"
    example = f"'{Path(pattern).parent / ('*' + _common_suffix(folder))}'" if folder.is_dir() else "'images/*.tif'"
    return (
        f"data.pairs.photos {pattern!r} matches no photo below {root}: {where}. Set data.pairs.photos to a glob of "
        f"the photos (e.g. {example}) and data.pairs.labels to their labels' names, or data.layout to potsdam for "
        "ISPRS Potsdam's files"
    )


def _fixed_folder(root: Path, pattern: str) -> Path:
    """The folder a glob looks in: its leading parts without a wildcard."""
    parts = Path(pattern).parent.parts
    fixed = next((number for number, part in enumerate(parts) if _MAGIC.search(part)), len(parts))
    return Path(root, *parts[:fixed])


def _common_suffix(folder: Path) -> str:
    counts = Counter(path.suffix.lower() for path in folder.iterdir() if path.is_file())
    return counts.most_common(1)[0][0] if counts else ".tif"


def inventory(folder: Path) -> str:
    """What a folder holds, for a message: files counted by suffix, subfolders, a few names."""
    entries = sorted(folder.iterdir())
    counts = Counter(path.suffix.lower() or "no suffix" for path in entries if path.is_file())
    folders = sum(path.is_dir() for path in entries)
    held = [f"{count} {suffix}" for suffix, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
    held += [f"{folders} folder(s)"] if folders else []
    names = ", ".join(path.name for path in entries[:5]) + (", ..." if len(entries) > 5 else "")
    return f"{', '.join(held)} ({names})" if entries else "nothing"


def store_pair(tile: str, pair: Pair, out: TileFolder, kind: str, decoding: LabelDecoding) -> tuple[int, int]:
    """Check one pair and store it in ``out`` as a tile: the photo as ``images/top_potsdam_<tile>_<kind>.tif``
    (with its position, world file and mask of valid pixels, without an alpha band), the decoded
    label in palette colours, unlabelled black, and so are the pixels where the photo holds nothing.

    The photo is written and dropped before the label is read: one picture in memory at a time.
    """
    photo, valid = read_photo(pair.photo)
    order = _described_order(pair.photo, kind)
    if order is not None:
        photo = photo[..., list(order)]
    _check_bands(pair.photo, photo, kind)
    grid = Grid(photo.shape[0], photo.shape[1], read_georef(pair.photo))
    write_image(out.photo(tile, kind), photo, grid.georef, valid)
    del photo
    index = read_pair_label(pair.label, pair.photo, grid, decoding)
    index[~valid] = IGNORE_INDEX
    plain = dataclasses.replace(grid.georef, world_file=False)  # the label lies where the photo does
    write_image(out.label(tile), decoding.palette.index_to_rgb(index), plain)
    return grid.height, grid.width


def read_pair_label(label: Path, photo: Path, grid: Grid, decoding: LabelDecoding) -> np.ndarray:
    """The class-index map (IGNORE_INDEX where unlabelled) of ``photo``'s label, on the photo's ``grid``.

    Every kind of label file ends here as the same map; which kind is told by the file's suffix:
    a vector file's polygons are burnt onto the photo's grid (aerialseg.data.polygons), a raster is
    any picture GDAL reads.
    """
    if label.suffix.lower() in VECTOR_SUFFIXES:
        return _read_polygon_label(label, photo, grid, decoding)
    return _read_raster_label(label, photo, grid, decoding)


def _read_polygon_label(label: Path, photo: Path, grid: Grid, decoding: LabelDecoding) -> np.ndarray:
    """The polygons of ``label`` that lie on ``photo``, burnt onto its grid in its CRS."""
    if grid.georef.crs is None:
        raise PairsError(
            f"photo {photo} has no CRS, so the polygons of {label} cannot be laid on it: give the photo its "
            "georeferencing (a GeoTIFF with a CRS, or a world file with a .prj / .aux.xml), or paint its labels "
            "as a picture"
        )
    return rasterise_polygons(
        label,
        photo,
        grid.georef,
        (grid.height, grid.width),
        decoding.palette.names,
        decoding.class_field,
        decoding.background,
        decoding.label_values,
        name=str(label),
    )


def _read_raster_label(label: Path, photo: Path, grid: Grid, decoding: LabelDecoding) -> np.ndarray:
    """A label picture, refused unless it lies on its photo's grid pixel for pixel."""
    pixels = read_image(label)
    differences = grid.differences(Grid(pixels.shape[0], pixels.shape[1], read_georef(label)))
    if differences:
        raise PairsError(
            f"label {label} does not lie on its photo {photo}: {'; '.join(differences)} (label against photo). "
            "A label must cover its photo pixel for pixel: resample or reproject it onto the photo's grid "
            "(e.g. gdalwarp with the photo's CRS, extent and size)"
        )
    return decoding.decode(pixels, str(label))


def _described_order(path: Path, kind: str) -> tuple[int, ...] | None:
    """Where the photo's file names every band (GDAL band descriptions such as "blue" or "NIR"),
    the positions of data.bands' bands among them, in data.bands' order: a photo stored B, G, R
    trains as R, G, B, as aerialseg-predict will read it by name. None where the bands are not all
    described: their file order is then data.bands', as the parameter says. (Colour
    interpretation is not trusted here: GDAL calls the bands of any 3-band 8-bit TIFF red, green,
    blue, IRRG ones too.)"""
    with allow_plain(), rasterio.open(path) as dataset:
        kinds = zip(dataset.descriptions, dataset.colorinterp)
        names = [canonical(text) if text else None for text, colour in kinds if colour != ColorInterp.alpha]
    if not all(name in ALIASES for name in names):
        return None
    wanted = BAND_ORDER[kind]
    missing = [band for band in wanted if band not in names]
    if missing:
        asked = next(name for name, band_kind in BANDS.items() if band_kind == kind)
        raise PairsError(
            f"photo {path}: its bands are described as {', '.join(names)}, but data.bands {asked} takes "
            f"{', '.join(wanted)} (no {', '.join(missing)}): set data.bands to the photos' bands"
        )
    return tuple(names.index(band) for band in wanted)


def _check_bands(path: Path, photo: np.ndarray, kind: str) -> None:
    """The photo has the bands data.bands asks for: no more (which ones would be meant?), no fewer."""
    bands = photo.shape[2]
    if bands != BAND_COUNTS[kind]:
        asked = next(name for name, band_kind in BANDS.items() if band_kind == kind)
        fitting = [name for name, band_kind in BANDS.items() if BAND_COUNTS[band_kind] == bands]
        raise PairsError(
            f"photo {path} has {bands} band(s), but data.bands {asked} is {BAND_COUNTS[kind]} ({kind}): "
            + (f"set data.bands to {' or '.join(fitting)}" if fitting else "give photos of 3 bands (RGB) or 4 (RGBIR)")
        )


def pairs_tiles(data: DataParams, palette: Palette, layout: Layout, work: Path) -> Tiles:
    """The pairs layout's tiles (:data:`aerialseg.data.sources.LAYOUTS`): the pairs of ``data.pairs``,
    relative to the repository root; ``work`` is not needed: nothing is unpacked."""
    pairs = data.pairs
    background = None if pairs.background is None else palette.names.index(pairs.background)
    values = pairs.class_values(palette.num_classes)
    decoding = LabelDecoding(pairs.label_encoding, palette, values, pairs.ignore_value, pairs.class_field, background)
    files = find_pairs(pairs, layout.root, frozenset(data.exclude))
    store = partial(store_pair, kind=BANDS[data.bands], decoding=decoding)
    return Tiles(files, store, boundary_free=False, pixel_size_m=None)
