"""What every layout gives the download stage: its tiles (:class:`Tiles`), or a :class:`DatasetError`.

Each layout (``data.layout``: aerialseg.data.potsdam_tiles, aerialseg.data.vaihingen,
aerialseg.data.pairs) finds its tiles' files and says how each tile is checked and stored; the
download stage (aerialseg.data.sources) stores them all alike. The type they share lives here,
apart from all of them, so that no layout imports the stage or another layout for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from aerialseg.data.potsdam import tile_order
from aerialseg.errors import InputError
from aerialseg.pipeline.paths import TileFolder

SHOWN = 10  # files or tiles listed in a message; the rest are counted


class DatasetError(InputError, ValueError):
    """The tiles found do not form a usable data set (missing partners, sizes that differ...)."""


class Tiles(NamedTuple):
    """What a layout found: each tile's files, in tile order; how one tile is read, checked and
    stored into data/raw (``store(tile, files, out)`` returns its height and width); whether the
    tiles have boundary-free labels; and the metres per pixel the layout's photos are known to
    have (None: not known), for photos whose CRS does not tell (aerialseg.data.resolution)."""

    files: dict[str, Any]
    store: Callable[[str, Any, TileFolder], tuple[int, int]]
    boundary_free: bool
    pixel_size_m: float | None


def check_excluded(exclude: Iterable[str], present: Iterable[str], source: str = "the source") -> None:
    """``data.exclude`` names only tiles the source has: an id that matches nothing is a typo, which
    would otherwise train on the very tile meant to be left out."""
    present = sorted(set(present), key=tile_order)
    absent = sorted(set(exclude) - set(present), key=tile_order)
    if absent:
        raise DatasetError(
            f"data.exclude names tile(s) {absent} that {source} does not have (its tiles: {few(present) or 'none'}): "
            "a typo? Correct or remove them"
        )


def few(items: list[str]) -> str:
    """The first SHOWN of ``items``, comma-separated, and how many more: a message stays one line
    whatever the number of files or tiles it is about."""
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more
