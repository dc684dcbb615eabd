"""patches stage: split tiles into train / val / test and cut train and val tiles into patches.

Patches go into one memory-mappable .npy per split and kind, written in place with open_memmap so
the whole data set never needs to fit in memory. Test tiles stay whole for the predict stage.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from aerialseg import plots
from aerialseg.config import load_params
from aerialseg.tiles import atomic_dir, label_name, photo_name, read_image, read_label, read_manifest, write_json
from aerialseg.tiling import class_pixel_counts, count_patches, extract_patches, split_tiles

RESIZED = Path("data/resized")
OUT = Path("data/patches")
DISTRIBUTION = Path("metrics/class_distribution.json")
DISTRIBUTION_CHART = Path("metrics/class_distribution.png")


def write_split_patches(out_dir: Path, split: str, manifest: pd.DataFrame, patch_cfg, palette,
                        ignore_unknown: bool) -> np.ndarray:
    """Write <split>_images.npy and <split>_labels.npy; return the split's class pixel counts."""
    sizes = manifest.set_index("tile").loc[:, ["height", "width"]]
    tiles = list(manifest["tile"])
    total = sum(count_patches(*sizes.loc[tile], patch_cfg.patch_size, patch_cfg.step, patch_cfg.edge) for tile in tiles)
    side = patch_cfg.patch_size
    images = np.lib.format.open_memmap(out_dir / f"{split}_images.npy", "w+", np.uint8, (total, side, side, 3))
    labels = np.lib.format.open_memmap(out_dir / f"{split}_labels.npy", "w+", np.uint8, (total, side, side))
    counts = np.zeros(palette.num_classes, dtype=np.int64)
    start = 0
    for tile in tqdm(tiles, desc=f"patches {split}", unit="tile"):
        photo = read_image(RESIZED / "images" / photo_name(tile))[..., :3]
        label = read_label(RESIZED / "labels" / label_name(tile), palette, ignore_unknown)
        image_patches = extract_patches(photo, side, patch_cfg.step, patch_cfg.edge, source=f"tile {tile}")
        label_patches = extract_patches(label, side, patch_cfg.step, patch_cfg.edge, source=f"tile {tile}")
        images[start:start + len(image_patches)] = image_patches
        labels[start:start + len(label_patches)] = label_patches
        start += len(image_patches)
        counts += class_pixel_counts(label, palette.num_classes)
    images.flush()
    labels.flush()
    return counts


def tile_class_counts(manifest: pd.DataFrame, palette, ignore_unknown: bool) -> np.ndarray:
    counts = np.zeros(palette.num_classes, dtype=np.int64)
    for tile in manifest["tile"]:
        counts += class_pixel_counts(read_label(RESIZED / "labels" / label_name(tile), palette, ignore_unknown),
                                     palette.num_classes)
    return counts


def main() -> None:
    params = load_params()
    palette, patch_cfg, split_cfg = params.palette, params.patches, params.patches.split
    manifest = read_manifest(RESIZED / "manifest.csv")
    splits = split_tiles(list(manifest["tile"]), split_cfg.train, split_cfg.val, split_cfg.test,
                         split_cfg.val_fraction, split_cfg.test_fraction, split_cfg.seed)
    counts = {}
    with atomic_dir(OUT) as out_dir:
        for split in ("train", "val"):
            rows = manifest[manifest["tile"].isin(splits[split])]
            counts[split] = write_split_patches(out_dir, split, rows, patch_cfg, palette,
                                                params.data.ignore_unknown_colours)
        counts["test"] = tile_class_counts(manifest[manifest["tile"].isin(splits["test"])], palette,
                                           params.data.ignore_unknown_colours)
        (out_dir / "splits.json").write_text(json.dumps(splits, indent=2))
    distribution = {split: dict(zip(palette.names, map(int, split_counts))) for split, split_counts in counts.items()}
    write_json(DISTRIBUTION, distribution)
    plots.class_distribution_chart(distribution, DISTRIBUTION_CHART, palette)
    print(f"splits: {splits}")


if __name__ == "__main__":
    main()
