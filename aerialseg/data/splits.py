"""Cutting tiles into training patches, and splitting tiles into train / val / test.

The split is by tile, never by patch: overlapping patches of one tile on both sides of the split
would leak the test area into training and flatter every metric.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from patchify import patchify

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


def extract_patches(image: np.ndarray, patch_size: int, step: int, edge: str, source: str = "tile") -> np.ndarray:
    """Cut an H x W (x C) array into (n, patch_size, patch_size[, C]) patches with patchify.

    ``edge="crop"`` drops the strip at the right and bottom that no full patch covers;
    ``edge="reflect"`` mirror-pads the tile so that the last patch ends exactly at the padded edge
    and no pixel is lost.
    """
    height, width = image.shape[:2]
    if patch_size > height or patch_size > width:
        raise SplitError(f"{source}: patch size {patch_size} is larger than the tile ({height}x{width})")
    if edge == "reflect":
        image = _reflect_pad_to_grid(image, patch_size, step)
    elif edge != "crop":
        raise ValueError(f"unknown edge mode {edge!r}: use 'crop' or 'reflect'")
    window = (patch_size, patch_size) + image.shape[2:]
    patches = patchify(image, window, step=step)
    return patches.reshape((-1,) + window)


def count_patches(height: int, width: int, patch_size: int, step: int, edge: str) -> int:
    """How many patches extract_patches returns for a tile of this size, without cutting it."""
    rounding = np.ceil if edge == "reflect" else np.floor
    rows = int(rounding((height - patch_size) / step)) + 1
    cols = int(rounding((width - patch_size) / step)) + 1
    return rows * cols


def _reflect_pad_to_grid(image: np.ndarray, patch_size: int, step: int) -> np.ndarray:
    height, width = image.shape[:2]
    pad_bottom = -(height - patch_size) % step
    pad_right = -(width - patch_size) % step
    padding = [(0, pad_bottom), (0, pad_right)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, padding, mode="symmetric")


def class_pixel_counts(label: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixels per class of a class-index map (ignored pixels are not counted)."""
    return np.bincount(label.ravel(), minlength=256)[:num_classes]
