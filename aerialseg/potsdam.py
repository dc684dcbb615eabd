"""ISPRS Potsdam's file names: the one place that knows how tiles and their maps are named.

Potsdam ships ``top_potsdam_<tile id>_RGB.tif`` photos and ``top_potsdam_<tile id>_label.tif``
label pictures (tile ids such as ``2_10``); every stage keeps these names, and predicted maps
follow them as ``top_potsdam_<tile id>_pred.<png|tif>``.
"""

from __future__ import annotations

import re
from pathlib import Path

_TILE_NAME = re.compile(r"^top_potsdam_(?P<tile>\d+_\d+)_(?P<kind>RGB|RGBIR|IRRG|label)\.(tif|tiff|png)$", re.I)


def parse_tile_name(path: str | Path) -> tuple[str, str] | None:
    """Return (tile id, kind) of a Potsdam file name, e.g. ('2_10', 'RGB'), or None."""
    match = _TILE_NAME.match(Path(path).name)
    return (match["tile"], match["kind"]) if match else None


def photo_name(tile: str) -> str:
    return f"top_potsdam_{tile}_RGB.tif"


def label_name(tile: str) -> str:
    return f"top_potsdam_{tile}_label.tif"


def prediction_name(tile: str, suffix: str) -> str:
    """File name of a tile's predicted map: ``top_potsdam_<tile>_pred<suffix>``."""
    return f"top_potsdam_{tile}_pred{suffix}"


def tile_order(tile: str) -> tuple[int, ...]:
    """Sort key that puts 2_9 before 2_10."""
    return tuple(int(part) for part in tile.split("_"))
