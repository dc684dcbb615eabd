"""Splitting tiles into train / val / test, and the split files the later stages read.

The split is by tile, never by patch: overlapping patches of one tile on both sides of the split
would leak the test area into training and flatter every metric.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from aerialseg.errors import InputError, MissingFileError
from aerialseg.pipeline.atomic import write_json

SPLITS = ("train", "val", "test")


class SplitError(InputError, ValueError):
    """The tiles cannot be split or cut as asked: unknown, repeated or missing tiles, an empty
    split, or patches larger than a tile."""


def split_tiles(
    tiles: list[str],
    train: list[str],
    val: list[str],
    test: list[str],
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, list[str]]:
    """Assign whole tiles to splits: the listed ids if any list is given, else seeded fractions."""
    tiles = sorted(tiles)
    if train or val or test:
        splits = {"train": list(train), "val": list(val), "test": list(test)}
        _check_listed_split(tiles, splits)
    else:
        order = list(np.random.default_rng(seed).permutation(tiles))
        n_test = round(test_fraction * len(tiles))
        n_val = round(val_fraction * len(tiles))
        splits = {
            "test": sorted(order[:n_test]),
            "val": sorted(order[n_test : n_test + n_val]),
            "train": sorted(order[n_test + n_val :]),
        }
    empty = [name for name in SPLITS if not splits[name]]
    if empty:
        raise SplitError(
            f"patches.split: split(s) {empty} would be empty with {len(tiles)} tile(s) "
            f"{tiles}; list tile ids or raise the fractions / tile count"
        )
    return {name: splits[name] for name in SPLITS}


def write_splits(path: str | Path, splits: dict[str, list[str]]) -> None:
    """splits.json: which tile went to which split, for the stages after patches."""
    write_json(path, splits)


def read_split(path: str | Path, name: str) -> list[str]:
    """The tile ids of split ``name`` in the splits.json of the patches stage (must not be empty)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file; run the patches stage first")
    tiles = json.loads(path.read_text()).get(name)
    if not tiles:
        raise SplitError(f'{path}: no {name} tiles listed under "{name}"')
    return tiles


def _check_listed_split(tiles: list[str], splits: dict[str, list[str]]) -> None:
    listed = [tile for name in SPLITS for tile in splits[name]]
    unknown = sorted(set(listed) - set(tiles))
    if unknown:
        raise SplitError(f"patches.split: tile id(s) {unknown} are not in the data set (it has {tiles})")
    repeated = sorted({tile for tile in listed if listed.count(tile) > 1})
    if repeated:
        raise SplitError(f"patches.split: tile id(s) {repeated} are listed in more than one split")
