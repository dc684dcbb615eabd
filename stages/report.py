"""report stage: the pictures of a run and metrics/report.md, which ties them to the scores.

metrics/figures/ (rebuilt as a whole): curves.png, <tile>_comparison.png per test tile,
confusion_plain.png and confusion_smooth.png, and, when training took snapshots,
snapshot_grid.png, progress.mp4 and progress.gif (the first validation tile's map per snapshot).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from aerialseg import plots
from aerialseg.blending import MODES, prediction_name
from aerialseg.config import load_params
from aerialseg.tiles import atomic_dir, atomic_file, label_name, photo_name, read_image, read_label
from aerialseg.tiling import read_split

RESIZED = Path("data/resized")
PREDICTIONS = Path("data/predictions")
SPLITS = Path("data/patches/splits.json")
SNAPSHOTS = Path("models/snapshots")
HISTORY = Path("metrics/train_history.csv")
EVALUATION = Path("metrics/evaluate.json")
SNAPSHOT_MARKDOWN = Path("metrics/snapshots.md")
FIGURES = Path("metrics/figures")
REPORT = Path("metrics/report.md")
SUMMARY_KEYS = {"oa": "OA", "miou": "mIoU", "mf1": "mF1",
                "oa_no_clutter": "OA w/o clutter", "miou_no_clutter": "mIoU w/o clutter",
                "mf1_no_clutter": "mF1 w/o clutter"}


def tile_comparison(tile: str, palette, ignore_unknown: bool):
    photo = read_image(RESIZED / "images" / photo_name(tile))[..., :3]
    truth = palette.index_to_rgb(read_label(RESIZED / "labels" / label_name(tile), palette, ignore_unknown))
    plain, smooth = (read_image(PREDICTIONS / mode / prediction_name(tile, ".png")) for mode in MODES)
    return plots.comparison_figure(photo, truth, plain, smooth, palette, f"test tile {tile}")


def snapshot_maps() -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(epoch, plain map, smooth map) of each snapshot, in epoch order."""
    maps = []
    for plain_path in sorted(SNAPSHOTS.glob("epoch_*_plain.png")):
        epoch = int(plain_path.name.split("_")[1])
        maps.append((epoch, read_image(plain_path), read_image(SNAPSHOTS / f"epoch_{epoch:03d}_smooth.png")))
    return maps


def draw_figures(out: Path, params, tiles: dict, evaluation: dict, snapshots: list) -> None:
    palette, names = params.palette, params.palette.names
    plots.save_figure(plots.training_curves_figure(pd.read_csv(HISTORY)), out / "curves.png")
    for mode in MODES:
        cm = np.asarray(evaluation[mode]["confusion_matrix"])
        plots.save_figure(plots.confusion_figure(cm, names, f"Test confusion, {mode}"), out / f"confusion_{mode}.png")
    for tile in tqdm(tiles["test"], desc="comparisons", unit="tile"):
        plots.save_figure(tile_comparison(tile, palette, params.data.ignore_unknown_colours),
                          out / f"{tile}_comparison.png")
    if snapshots:
        val_tile = tiles["val"][0]
        truth = palette.index_to_rgb(read_label(RESIZED / "labels" / label_name(val_tile), palette,
                                                params.data.ignore_unknown_colours))
        plots.save_figure(plots.snapshot_grid_figure(truth, snapshots, palette, f"Validation tile {val_tile}"),
                          out / "snapshot_grid.png")
        frames = plots.progress_frames(truth, [(epoch, smooth) for epoch, _, smooth in snapshots])
        for name in ("progress.mp4", "progress.gif"):
            plots.write_animation(frames, out / name, params.report.video_fps)


def report_markdown(evaluation: dict, names, tiles: dict, snapshots: list) -> str:
    """metrics/report.md: scores, then pictures, linked relative to metrics/."""
    summary = pd.DataFrame([{"mode": mode, **{label: evaluation[mode][key] for key, label in SUMMARY_KEYS.items()}}
                            for mode in MODES])
    per_class = pd.DataFrame({"class": names, **{f"IoU {mode}": [evaluation[mode]["per_class"][name]["iou"]
                                                                 for name in names] for mode in MODES}})
    snapshot_part = SNAPSHOT_MARKDOWN.read_text().replace("# Snapshots", "## Snapshots", 1)
    if snapshots:
        snapshot_part += ("\n![Snapshot maps](figures/snapshot_grid.png)\n\n![Progress](figures/progress.gif)\n\n"
                          "The same as a video: [progress.mp4](figures/progress.mp4)\n")
    comparisons = "\n".join(f"![Test tile {tile}](figures/{tile}_comparison.png)\n" for tile in tiles["test"])
    return f"""# aerialseg report

## Test scores

Pooled over the test tiles {", ".join(tiles["test"])}: plain = windows side by side, smooth =
overlapping windows blended (with the test-time augmentation set in `predict.tta`).

{plots.markdown_table(summary)}

{plots.markdown_table(per_class)}

![Confusion, plain](figures/confusion_plain.png) ![Confusion, smooth](figures/confusion_smooth.png)

## Training

![Training curves](figures/curves.png)

{snapshot_part}
## Test tiles

{comparisons}"""


def main() -> None:
    params = load_params()
    tiles = {name: read_split(SPLITS, name) for name in ("test", "val")}
    evaluation = json.loads(EVALUATION.read_text())
    snapshots = snapshot_maps()
    report = report_markdown(evaluation, params.palette.names, tiles, snapshots)
    with atomic_dir(FIGURES) as out:
        draw_figures(out, params, tiles, evaluation, snapshots)
    with atomic_file(REPORT) as tmp:
        tmp.write_text(report)
    print(f"report: {REPORT} with {len(list(FIGURES.iterdir()))} figures in {FIGURES}")


if __name__ == "__main__":
    main()
