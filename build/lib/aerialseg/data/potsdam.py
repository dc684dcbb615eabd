"""ISPRS Potsdam's file names: the one place that knows how tiles, their maps and archives are named.

Potsdam ships each tile (ids such as ``2_10``; other sources' ids, such as ``image_001``, are
stored under the same names) as photos of three band sets,
``top_potsdam_<tile>_RGB.tif``, ``_IRRG.tif`` (infrared, red, green) and ``_RGBIR.tif`` (four
bands, infrared last), each with a world file (``.tfw``), and as two label pictures:
``top_potsdam_<tile>_label.tif`` and ``top_potsdam_<tile>_label_noBoundary.tif`` (class boundaries
eroded and painted black, the labels the benchmark is scored on). The download is one
``Potsdam.zip`` holding a zip per product (:data:`ARCHIVES`). Every stage keeps these names, and
predicted maps follow them as ``top_potsdam_<tile>_pred.<png|tif>``.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import NamedTuple

# data.bands -> the photo file kind; the bands of each kind, in file order (IR: near infrared)
BANDS = {"rgb": "RGB", "irrg": "IRRG", "rgbir": "RGBIR"}
BAND_ORDER = {"RGB": ("R", "G", "B"), "IRRG": ("IR", "R", "G"), "RGBIR": ("R", "G", "B", "IR")}
BAND_COUNTS = {kind: len(order) for kind, order in BAND_ORDER.items()}
PIXEL_SIZE_M = 0.05  # ground sampling distance of the photos
# evaluate.labels (a label variant) -> the label file kind
LABEL_KINDS = {"full": "label", "no_boundary": "label_noBoundary"}
FULL, BOUNDARY_FREE = "full", "no_boundary"

# What each archive of the ISPRS download holds (file kinds), by its name.
ARCHIVES = {
    "1_DSM.zip": ("DSM",),
    "1_DSM_normalisation.zip": ("nDSM",),
    "2_Ortho_RGB.zip": ("RGB",),
    "3_Ortho_IRRG.zip": ("IRRG",),
    "4_Ortho_RGBIR.zip": ("RGBIR",),
    "5_Labels_all.zip": ("label",),
    "5_Labels_all_noBoundary.zip": ("label_noBoundary",),
    "5_Labels_for_participants.zip": ("label",),
    "5_Labels_for_participants_no_Boundary.zip": ("label_noBoundary",),
}
# The participants' label archives: the labels of the 24 training tiles as first released. Their
# 4_12 is right where 5_Labels_all's is the label drawn over the photo.
PARTICIPANTS_PREFIX = "5_labels_for_participants"
_ARCHIVES_BY_NAME = {name.lower(): kinds for name, kinds in ARCHIVES.items()}

# A tile id: Potsdam's 2_10, or the stem of any photo (image_001, area1) that fits in a file name.
TILE_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_KINDS = {kind.lower(): kind for kind in (*BAND_ORDER, *LABEL_KINDS.values())}
# The id is matched lazily, so an id that ends like a kind (x_label in top_potsdam_x_label_RGB.tif)
# is still read whole: the kind must be followed by the suffix.
_TILE_NAME = re.compile(
    rf"^top_potsdam_(?P<tile>{TILE_ID}?)_(?P<kind>RGBIR|RGB|IRRG|label_noBoundary|label)\.(?P<suffix>tiff?|png|tfw)$",
    re.I,
)
_NUMBERS = re.compile(r"(\d+)")


class TileName(NamedTuple):
    """What a Potsdam file name says: its tile, its kind (RGB ... label_noBoundary), and whether it is
    the world file (``.tfw``) of that picture rather than the picture."""

    tile: str
    kind: str
    world_file: bool = False


def parse_tile_name(path: str | PurePath) -> TileName | None:
    """(tile id, kind, world file?) of a Potsdam file name, e.g. ('2_10', 'RGB', False), or None."""
    match = _TILE_NAME.match(PurePath(path).name)
    if not match:
        return None
    return TileName(match["tile"], _KINDS[match["kind"].lower()], match["suffix"].lower() == "tfw")


def photo_name(tile: str, kind: str = "RGB") -> str:
    return f"top_potsdam_{tile}_{kind}.tif"


def label_name(tile: str, variant: str = FULL) -> str:
    return f"top_potsdam_{tile}_{LABEL_KINDS[variant]}.tif"


def prediction_name(tile: str, suffix: str) -> str:
    """File name of a tile's predicted map: ``top_potsdam_<tile>_pred<suffix>``."""
    return f"top_potsdam_{tile}_pred{suffix}"


def tile_order(tile: str) -> tuple:
    """Natural sort key of any tile id: 2_9 before 2_10, image_2 before image_10.

    Splitting on digit runs alternates text and number, so keys compare part for part; the id
    itself breaks ties between ids that differ only in case or leading zeros.
    """
    parts = _NUMBERS.split(tile)
    return (*(int(part) if number % 2 else part.casefold() for number, part in enumerate(parts)), tile)


def archive_kinds(path: str | PurePath) -> tuple[str, ...] | None:
    """The file kinds a Potsdam archive holds, known from its name; None for a name Potsdam does not use."""
    return _ARCHIVES_BY_NAME.get(PurePath(path).name.lower())


def archive_of(kind: str) -> str:
    """The archive of the ISPRS download that holds the files of ``kind`` (all tiles)."""
    return next(name for name, kinds in ARCHIVES.items() if kinds == (kind,) and not from_participants(name))


def from_participants(path: str | PurePath) -> bool:
    """Whether a file lies in (the folder or archive of) the participants' labels."""
    return any(part.lower().startswith(PARTICIPANTS_PREFIX) for part in PurePath(path).parts)
