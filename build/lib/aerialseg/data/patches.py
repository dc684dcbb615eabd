"""The patches stage: split the tiles into train / val / test, cut train and val into patches.

Patches go into one memory-mappable .npy per split and kind, written in place with open_memmap so
the whole data set never needs to fit in memory (and DVC tracks a few large files, not thousands
of small ones). Test tiles stay whole for the predict stage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from patchify import patchify
from tqdm import tqdm

from aerialseg.data.manifest import read_manifest
from aerialseg.data.palette import Palette
from aerialseg.data.splits import SplitError, split_tiles, write_splits
from aerialseg.errors import InputError
from aerialseg.evaluate import figures
from aerialseg.pipeline.atomic import atomic_dir, write_json
from aerialseg.pipeline.params import Params, PatchParams
from aerialseg.pipeline.paths import Layout, PatchFolder, TileFolder
from aerialseg.raster.pictures import read_image, read_label


class BandsError(InputError, ValueError):
    """The photos of a split do not all have the same bands."""


def make_patches(layout: Layout, params: Params) -> dict[str, list[str]]:
    """Write data/patches and the class distribution (JSON and chart); return the split."""
    palette, cfg, split = params.palette, params.patches, params.patches.split
    ignore_unknown = params.data.ignore_unknown_colours
    manifest = read_manifest(layout.resized.manifest)
    splits = split_tiles(
        list(manifest["tile"]), split.train, split.val, split.test, split.val_fraction, split.test_fraction, split.seed
    )
    counts = {}
    with atomic_dir(layout.patches.path) as staging:
        out = PatchFolder(staging)
        for name in ("train", "val"):
            tiles = manifest[manifest["tile"].isin(splits[name])]
            counts[name] = write_split_patches(out, name, tiles, layout.resized, cfg, palette, ignore_unknown)
        counts["test"] = tile_class_counts(layout.resized, splits["test"], palette, ignore_unknown)
        write_splits(out.splits, splits)
    distribution = {name: dict(zip(palette.names, map(int, split_counts))) for name, split_counts in counts.items()}
    write_json(layout.class_distribution, distribution)
    figures.class_distribution_chart(distribution, layout.class_distribution_chart, palette)
    print(f"splits: {splits}")
    return splits


def write_split_patches(
    out: PatchFolder,
    split: str,
    manifest: pd.DataFrame,
    resized: TileFolder,
    cfg: PatchParams,
    palette: Palette,
    ignore_unknown: bool,
) -> np.ndarray:
    """Write the split's images and labels .npy; return its class pixel counts.

    The images array has as many channels as the photos have bands (3, or 4 for RGBIR), taken from
    the first photo; every photo must have as many.
    """
    sizes = manifest.set_index("tile").loc[:, ["height", "width"]]
    tiles = list(manifest["tile"])
    total = sum(count_patches(*sizes.loc[tile], cfg.patch_size, cfg.step, cfg.edge) for tile in tiles)
    side = cfg.patch_size
    images = None  # opened at the first photo, which gives the number of bands
    labels = np.lib.format.open_memmap(out.labels(split), "w+", np.uint8, (total, side, side))
    counts = np.zeros(palette.num_classes, dtype=np.int64)
    start = 0
    for tile in tqdm(tiles, desc=f"patches {split}", unit="tile"):
        photo = read_image(resized.photo(tile))
        if images is None:
            images = np.lib.format.open_memmap(out.images(split), "w+", np.uint8, (total, side, side, photo.shape[2]))
        if photo.shape[2] != images.shape[3]:
            raise BandsError(
                f"{resized.photo(tile)}: has {photo.shape[2]} band(s) but the photo of tile {tiles[0]} has "
                f"{images.shape[3]}; every photo of a data set must have the same bands"
            )
        label = read_label(resized.label(tile), palette, ignore_unknown)
        image_patches = extract_patches(photo, side, cfg.step, cfg.edge, source=f"tile {tile}")
        label_patches = extract_patches(label, side, cfg.step, cfg.edge, source=f"tile {tile}")
        images[start : start + len(image_patches)] = image_patches
        labels[start : start + len(label_patches)] = label_patches
        start += len(image_patches)
        counts += class_pixel_counts(label, palette.num_classes)
    images.flush()
    labels.flush()
    return counts


def tile_class_counts(resized: TileFolder, tiles: list[str], palette: Palette, ignore_unknown: bool) -> np.ndarray:
    """Class pixel counts of whole tiles (the test tiles, which are not cut into patches)."""
    counts = np.zeros(palette.num_classes, dtype=np.int64)
    for tile in tiles:
        counts += class_pixel_counts(read_label(resized.label(tile), palette, ignore_unknown), palette.num_classes)
    return counts


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
