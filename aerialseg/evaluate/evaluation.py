"""The evaluate stage: score the test-tile maps (plain and smooth) and every training snapshot.

Outputs, all computed before the first one is written:
- metrics/evaluate.json: {"plain": {...}, "smooth": {...}, "protocol": {...}} with oa, miou, mf1,
  the same without ``evaluate.without_classes`` (clutter), per-class IoU / F1 / precision /
  recall, and the exact confusion matrix (a list, which DVC leaves out of `dvc metrics show`; the
  report draws its heat maps from it); "protocol" says what was scored (which labels,
  ``evaluate.labels``: full or boundary-free; which tiles, pooled; which classes), so a number
  can be set against a published one;
- metrics/confusion_{plain,smooth}.csv: (actual, predicted) rows for DVC's confusion template,
  the pooled matrix scaled down to about 20000 rows (see metrics.confusion_rows);
- metrics/snapshots.csv and .md: test mIoU of each snapshot's weights beside that epoch's
  training history.
The scores are also logged to the training's MLflow run, with the confusion heat maps, and set as
tags of the model version that run registered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from tqdm import tqdm

from aerialseg.data.boundaries import erode_boundaries
from aerialseg.data.palette import IGNORE_INDEX
from aerialseg.data.potsdam import BOUNDARY_FREE, archive_of
from aerialseg.data.splits import read_split
from aerialseg.errors import MissingFileError
from aerialseg.evaluate import figures
from aerialseg.evaluate.metrics import confusion_matrix, confusion_rows, scores
from aerialseg.pipeline import tracking
from aerialseg.pipeline.atomic import atomic_file, write_json, write_text
from aerialseg.pipeline.params import EvaluateParams, Params
from aerialseg.pipeline.paths import Layout
from aerialseg.predict.blending import MODES, Blending
from aerialseg.predict.inference import predict_map
from aerialseg.predict.keras_predictor import KerasPredictor
from aerialseg.raster.pictures import read_image, read_label
from aerialseg.train.history import HISTORY_COLUMNS, read_history

# (tile, mode) -> (class-index map, description of where it came from, for error messages)
MapSource = Callable[[str, str], tuple[np.ndarray, str]]
Labels = dict[str, tuple[np.ndarray, Path]]  # tile -> (class-index label, its file)


def evaluate(layout: Layout, params: Params) -> dict:
    """Score the saved test maps and the snapshots, write the metrics, log them to MLflow."""
    names = params.palette.names
    labels = load_test_labels(layout, params)
    confusions = pooled_confusions(labels, saved_maps(layout), params.palette.num_classes, desc="test maps")
    results = {
        mode: {**scores(cm, names, params.evaluate.without_classes), "confusion_matrix": cm.tolist()}
        for mode, cm in confusions.items()
    }
    table = with_history(snapshot_scores(layout, labels, params), read_history(layout.train_history))
    write_outputs(layout, {**results, "protocol": protocol(labels, params)}, confusions, table, names, params.evaluate)
    log_to_training_run(layout, results, confusions, names)
    print(f"scored on the {params.evaluate.labels} labels of test tiles {', '.join(labels)}, pooled")
    for mode in MODES:
        print(f"{mode}: mIoU {results[mode]['miou']:.4f}, OA {results[mode]['oa']:.4f}, mF1 {results[mode]['mf1']:.4f}")
    return results


def load_test_labels(layout: Layout, params: Params) -> Labels:
    """Label map of every test tile, of the variant ``evaluate.labels`` (boundaries eroded further
    if asked), with its file."""
    variant, labels = params.evaluate.labels, {}
    for tile in read_split(layout.patches.splits, "test"):
        path = layout.resized.label(tile, variant)
        if not path.is_file():
            raise MissingFileError(_no_label(tile, path, variant))
        label = read_label(path, params.palette, params.data.ignore_unknown_colours)
        labels[tile] = erode_boundaries(label, params.evaluate.erode_radius), path
    return labels


def _no_label(tile: str, path: Path, variant: str) -> str:
    if variant != BOUNDARY_FREE:
        return f"test tile {tile}: no label {path}"
    return (
        f"test tile {tile}: no boundary-free label {path}. evaluate.labels is {BOUNDARY_FREE!r}, so the source "
        f"must have them (top_potsdam_<tile>_label_noBoundary.tif, in {archive_of('label_noBoundary')}): add "
        "them to the source and rerun from the download stage, or set evaluate.labels to 'full'"
    )


def protocol(labels: Labels, params: Params) -> dict:
    """What the scores are of: labels, tiles (pooled), size, pixels scored and ignored, classes."""
    scored = sum(int((label != IGNORE_INDEX).sum()) for label, _ in labels.values())
    return {
        "labels": params.evaluate.labels,
        "erode_radius": params.evaluate.erode_radius,
        "tiles": list(labels),
        "tile_sizes": sorted({f"{label.shape[1]} x {label.shape[0]}" for label, _ in labels.values()}),
        "pixels_scored": scored,
        "pixels_ignored": sum(label.size for label, _ in labels.values()) - scored,
        "classes": list(params.palette.names),
        "without_classes": list(params.evaluate.without_classes),
    }


def pooled_confusions(
    labels: Labels, map_source: MapSource, num_classes: int, desc: str, modes: tuple[str, ...] = MODES
) -> dict[str, np.ndarray]:
    """One confusion matrix per mode, summed over the test tiles."""
    totals = {mode: np.zeros((num_classes, num_classes), np.int64) for mode in modes}
    for tile, (label, label_path) in tqdm(labels.items(), desc=desc, unit="tile"):
        for mode in modes:
            prediction, source = map_source(tile, mode)
            totals[mode] += confusion_matrix(label, prediction, num_classes, source=f"{source} vs {label_path}")
    return totals


def saved_maps(layout: Layout) -> MapSource:
    """The class-index maps the predict stage wrote."""

    def read(tile: str, mode: str) -> tuple[np.ndarray, str]:
        path = layout.predictions.map(mode, tile, ".tif")
        return read_image(path)[..., 0], str(path)

    return read


def snapshot_maps(layout: Layout, predictor: KerasPredictor, params: Params, epoch: int) -> MapSource:
    """Maps predicted by the model as it stands (a snapshot's weights loaded into it)."""

    def predict(tile: str, mode: str) -> tuple[np.ndarray, str]:
        photo = read_image(layout.resized.photo(tile))
        index = predict_map(predictor, photo, Blending.from_params(params.predict, params.patches.patch_size, mode))
        return index, f"snapshot of epoch {epoch}, {mode} map of tile {tile}"

    return predict


def snapshot_scores(layout: Layout, labels: Labels, params: Params) -> pd.DataFrame:
    """Test mIoU of the snapshots' weights that ``evaluate.snapshots`` asks for, in the modes of
    ``evaluate.snapshot_modes``: one row per snapshot epoch. Each is a whole-tile prediction of
    every test tile, so with many tiles and snapshots this is the costly part of the stage."""
    modes = params.evaluate.snapshot_modes
    columns = ["epoch", *(f"test_miou_{mode}" for mode in modes)]
    epochs = scored_epochs(layout.snapshots.epochs(), params.evaluate.snapshots)
    if not epochs:
        return pd.DataFrame(columns=columns)
    model = keras.saving.load_model(layout.model, compile=False)  # predicting only
    predictor = KerasPredictor(model, params.palette.num_classes)
    rows = []
    for epoch in epochs:
        model.load_weights(layout.snapshots.weights(epoch))
        maps = snapshot_maps(layout, predictor, params, epoch)
        totals = pooled_confusions(labels, maps, params.palette.num_classes, desc=f"snapshot {epoch}", modes=modes)
        rows.append([epoch, *(scores(totals[mode], params.palette.names)["miou"] for mode in modes)])
    return pd.DataFrame(rows, columns=columns)


def scored_epochs(epochs: list[int], which: str) -> list[int]:
    """The snapshot epochs ``evaluate.snapshots`` (all, last or none) asks to score."""
    return {"all": epochs, "last": epochs[-1:], "none": []}[which]


def with_history(table: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Each snapshot row beside the training history of the same epoch."""
    return history[HISTORY_COLUMNS].astype({"epoch": int}).merge(table, on="epoch", how="right")


def snapshots_markdown(table: pd.DataFrame, snapshots: Path, settings: EvaluateParams) -> str:
    """The snapshot table as Markdown, saying what was scored, or a sentence saying why there is none."""
    if settings.snapshots == "none":
        return "# Snapshots\n\nSnapshots are not scored (`evaluate.snapshots: none`).\n"
    if table.empty:
        return (
            f"# Snapshots\n\nNo snapshots were found in {snapshots}/ (the train stage writes one every "
            "`train.snapshot_every` epochs), so there is no table of test scores per epoch.\n"
        )
    which = "every snapshot" if settings.snapshots == "all" else "the last snapshot"
    return (
        f"# Snapshots\n\nTest-set mean IoU of {which} saved during training ({' and '.join(settings.snapshot_modes)} "
        "maps of the whole test tiles), beside that epoch's training and validation scores.\n\n"
        + figures.markdown_table(table)
        + "\n"
    )


def write_outputs(
    layout: Layout, results: dict, confusions: dict, table: pd.DataFrame, class_names, settings: EvaluateParams
) -> None:
    write_json(layout.evaluation, results)
    for mode, cm in confusions.items():
        with atomic_file(layout.confusion_rows(mode)) as tmp:
            confusion_rows(cm, class_names).to_csv(tmp, index=False)
    with atomic_file(layout.snapshot_table) as tmp:
        table.to_csv(tmp, index=False)
    write_text(layout.snapshot_markdown, snapshots_markdown(table, layout.snapshots.path, settings))


def version_tags(results: dict) -> dict[str, float]:
    """The overall test scores as tags of the registered model version: test.smooth.miou, ...,
    so that the registry shows how good each version is without opening its run."""
    return {
        f"test.{mode}.{key}": value
        for mode, summary in results.items()
        for key, value in summary.items()
        if isinstance(value, float)
    }


def mlflow_metrics(results: dict) -> dict[str, float]:
    """Flat MLflow keys: test_smooth_miou, ..., test_smooth_iou_car (undefined scores left out)."""
    flat = {}
    for mode, summary in results.items():
        flat.update({f"test_{mode}_{key}": value for key, value in summary.items() if isinstance(value, float)})
        flat.update(
            {
                f"test_{mode}_iou_{name}": values["iou"]
                for name, values in summary["per_class"].items()
                if values["iou"] is not None
            }
        )
    return flat


def log_to_training_run(layout: Layout, results: dict, confusions: dict, class_names) -> None:
    """Add the test scores and confusion heat maps to the MLflow run of the training."""
    if not layout.mlflow_run.is_file():
        print(f"note: {layout.mlflow_run} not found, so the scores are not logged to MLflow")
        return
    run = json.loads(layout.mlflow_run.read_text())
    try:
        with tracking.existing_run(run["tracking_uri"], run["run_id"]):
            mlflow.log_metrics(mlflow_metrics(results))
            tracking.tag_registered_versions(run["run_id"], version_tags(results))
            for mode, cm in confusions.items():
                figure = figures.confusion_figure(cm, class_names, f"Test confusion, {mode}")
                mlflow.log_figure(figure, f"evaluate/confusion_{mode}.png")
                plt.close(figure)
            mlflow.log_artifact(str(layout.snapshot_table), "evaluate")
    except (mlflow.exceptions.MlflowException, tracking.TrackingStoreError) as error:
        print(f"warning: {layout.mlflow_run}: the scores are not logged to MLflow: {error}")
