"""The report stage: the pictures of a run and metrics/report.md, which ties them to the scores.

metrics/figures/ (rebuilt as a whole): curves.png, <tile>_comparison.png per test tile,
confusion_plain.png and confusion_smooth.png, and, when training took snapshots,
snapshot_grid.png, progress.mp4 and progress.gif (the first validation tile's map per snapshot).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from aerialseg.data.palette import Palette
from aerialseg.data.potsdam import BOUNDARY_FREE
from aerialseg.data.splits import read_split
from aerialseg.evaluate import figures
from aerialseg.evaluate.metrics import without_suffix
from aerialseg.pipeline.atomic import atomic_dir, read_json, write_text
from aerialseg.pipeline.params import Params
from aerialseg.pipeline.paths import Layout
from aerialseg.predict.blending import MODES
from aerialseg.raster.pictures import read_image, read_label
from aerialseg.train.history import read_history

SUMMARY_LABELS = {"oa": "OA", "miou": "mIoU", "mf1": "mF1"}

Snapshot = tuple[int, dict[str, np.ndarray]]  # (epoch, {mode: map of the validation tile})


def write_report(layout: Layout, params: Params) -> Path:
    """Draw the figures and write metrics/report.md; return the report's path."""
    tiles = {name: read_split(layout.patches.splits, name) for name in ("test", "val")}
    evaluation = read_json(layout.evaluation, written_by="evaluate")
    snapshots = snapshot_maps(layout, params.train.snapshot_modes)
    report = report_markdown(evaluation, params, tiles, snapshots, layout.snapshot_markdown.read_text())
    with atomic_dir(layout.figures) as out:
        draw_figures(out, layout, params, tiles, evaluation, snapshots)
    write_text(layout.report, report)
    print(f"report: {layout.report} with {len(list(layout.figures.iterdir()))} figures in {layout.figures}")
    return layout.report


def snapshot_maps(layout: Layout, modes: tuple[str, ...]) -> list[Snapshot]:
    """(epoch, {mode: map}) of each snapshot, in epoch order, for the ``train.snapshot_modes``."""
    snapshots = layout.snapshots
    return [(epoch, {mode: read_image(snapshots.map(epoch, mode)) for mode in modes}) for epoch in snapshots.epochs()]


def truth_colours(layout: Layout, tile: str, params: Params, variant: str) -> np.ndarray:
    """The labels of ``tile`` that were scored, coloured; ignored pixels (boundaries, unlabelled) black."""
    path = layout.resized.label(tile, variant)
    return params.palette.index_to_rgb(read_label(path, params.palette, params.data.ignore_unknown_colours))


def tile_comparison(layout: Layout, tile: str, params: Params, variant: str):
    """Photo (its first three bands: RGB, or IRRG's false colours), truth, plain and smooth map."""
    photo = read_image(layout.resized.photo(tile))[..., :3]
    plain, smooth = (read_image(layout.predictions.map(mode, tile, ".png")) for mode in MODES)
    return figures.comparison_figure(
        photo, truth_colours(layout, tile, params, variant), plain, smooth, params.palette, f"test tile {tile}"
    )


def draw_figures(
    out: Path, layout: Layout, params: Params, tiles: dict, evaluation: dict, snapshots: list[Snapshot]
) -> None:
    palette: Palette = params.palette
    variant = evaluation["protocol"]["labels"]
    figures.save_figure(figures.training_curves_figure(read_history(layout.train_history)), out / "curves.png")
    for mode in MODES:
        cm = np.asarray(evaluation[mode]["confusion_matrix"])
        figures.save_figure(
            figures.confusion_figure(cm, palette.names, f"Test confusion, {mode}"), out / f"confusion_{mode}.png"
        )
    for tile in tqdm(tiles["test"], desc="comparisons", unit="tile"):
        figures.save_figure(tile_comparison(layout, tile, params, variant), out / f"{tile}_comparison.png")
    if snapshots:
        val_tile = tiles["val"][0]
        truth = truth_colours(layout, val_tile, params, variant)
        figures.save_figure(
            figures.snapshot_grid_figure(truth, snapshots, palette, f"Validation tile {val_tile}"),
            out / "snapshot_grid.png",
        )
        video_mode = "smooth" if "smooth" in snapshots[0][1] else "plain"
        frames = figures.progress_frames(truth, [(epoch, maps[video_mode]) for epoch, maps in snapshots])
        for name in ("progress.mp4", "progress.gif"):
            figures.write_animation(frames, out / name, params.report.video_fps)


def summary_labels(without_classes: tuple[str, ...]) -> dict[str, str]:
    """evaluate.json keys of the summary table and their column titles."""
    labels = dict(SUMMARY_LABELS)
    if without_classes:
        suffix, words = without_suffix(without_classes), " w/o " + ", ".join(without_classes)
        labels.update({key + suffix: label + words for key, label in SUMMARY_LABELS.items()})
    return labels


def report_markdown(
    evaluation: dict, params: Params, tiles: dict, snapshots: list[Snapshot], snapshot_markdown: str
) -> str:
    """metrics/report.md: scores with what they are of, then pictures, linked relative to metrics/."""
    names = params.palette.names
    labels = summary_labels(tuple(evaluation["protocol"]["without_classes"]))
    summary = pd.DataFrame(
        [{"mode": mode, **{label: evaluation[mode][key] for key, label in labels.items()}} for mode in MODES]
    )
    per_class = pd.DataFrame(
        {
            "class": names,
            **{f"IoU {mode}": [evaluation[mode]["per_class"][name]["iou"] for name in names] for mode in MODES},
        }
    )
    snapshot_part = snapshot_markdown.replace("# Snapshots", "## Snapshots", 1)
    if snapshots:
        snapshot_part += (
            "\n![Snapshot maps](figures/snapshot_grid.png)\n\n![Progress](figures/progress.gif)\n\n"
            "The same as a video: [progress.mp4](figures/progress.mp4)\n"
        )
    comparisons = "\n".join(f"![Test tile {tile}](figures/{tile}_comparison.png)\n" for tile in tiles["test"])
    return f"""# aerialseg report

## Test scores

Plain = windows side by side, smooth = overlapping windows blended (with the test-time
augmentation set in `predict.tta`).

{figures.markdown_table(summary)}

{protocol_text(evaluation["protocol"])}

{figures.markdown_table(per_class)}

![Confusion, plain](figures/confusion_plain.png) ![Confusion, smooth](figures/confusion_smooth.png)

## Training

![Training curves](figures/curves.png)

{snapshot_part}
## Test tiles

{comparisons}"""


def protocol_text(protocol: dict) -> str:
    """What the scores above are of, in words, and which of them the published tables give."""
    if protocol["labels"] == BOUNDARY_FREE:
        labels = "the boundary-free labels (a band around every class boundary, black in them, is not scored)"
    else:
        labels = "the full labels (every pixel scored, boundaries included)"
    if protocol["erode_radius"]:
        labels += f", class boundaries further eroded by {protocol['erode_radius']} px"
    classes, left_out = protocol["classes"], protocol["without_classes"]
    without = (
        f' "w/o {", ".join(left_out)}": over the other {len(classes) - len(left_out)} classes, the pixels of '
        f"{', '.join(left_out)} left out of OA too."
        if left_out
        else ""
    )
    return (
        f"**Protocol.** Scored on {labels}; the pixels of the {len(protocol['tiles'])} test tile(s) "
        f"{', '.join(protocol['tiles'])} pooled into one confusion matrix per mode, at the working resolution "
        f"({' and '.join(protocol['tile_sizes'])} px a tile): {protocol['pixels_scored']:,} pixels scored, "
        f"{protocol['pixels_ignored']:,} ignored. OA, mIoU and mF1: over all {len(classes)} classes "
        f"({', '.join(classes)}).{without} The published Potsdam tables (ISPRS benchmark, GeoSeg / UNetFormer) "
        "give mIoU and mF1 over the 5 classes without clutter and OA over all classes, on the boundary-free labels "
        "of the 14 official test tiles at full resolution (5 cm); mmsegmentation gives the mIoU over all 6 classes."
    )
