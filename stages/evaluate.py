"""evaluate stage: score the test-tile maps (plain and smooth) and every training snapshot.

Outputs, all computed before the first one is written:
- metrics/evaluate.json: {"plain": {...}, "smooth": {...}} with oa, miou, mf1, the same without
  clutter, per-class IoU / F1 / precision / recall, and the exact confusion matrix (a list, which
  DVC leaves out of `dvc metrics show`; the report draws its heat maps from it);
- metrics/confusion_{plain,smooth}.csv: (actual, predicted) rows for DVC's confusion template,
  the pooled matrix scaled down to about 20000 rows (see metrics.confusion_rows);
- metrics/snapshots.csv and .md: test mIoU of each models/snapshots/epoch_XXX.weights.h5 beside
  that epoch's training history.
The scores are also logged to the training's MLflow run (models/mlflow_run.json), with the
confusion heat maps.
"""

import json
from pathlib import Path
from typing import Callable

import keras
import mlflow
import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from tqdm import tqdm

import aerialseg.model  # noqa: F401  registers the encoder preprocessing layer a saved model may use
from aerialseg import plots
from aerialseg.blending import MODES, predict_map, prediction_name
from aerialseg.config import load_params
from aerialseg.metrics import confusion_matrix, confusion_rows, erode_boundaries, scores
from aerialseg.tiles import atomic_file, label_name, photo_name, read_image, read_label, write_json
from aerialseg.tiling import read_split

RESIZED = Path("data/resized")
PREDICTIONS = Path("data/predictions")
SPLITS = Path("data/patches/splits.json")
MODEL_PATH = Path("models/model.keras")
SNAPSHOTS = Path("models/snapshots")
RUN_FILE = Path("models/mlflow_run.json")
HISTORY = Path("metrics/train_history.csv")
METRICS = Path("metrics/evaluate.json")
SNAPSHOT_TABLE = Path("metrics/snapshots.csv")
SNAPSHOT_MARKDOWN = Path("metrics/snapshots.md")
HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "jaccard", "val_loss", "val_accuracy", "val_jaccard"]

# (tile, mode) -> (class-index map, description of where it came from, for error messages)
MapSource = Callable[[str, str], tuple[np.ndarray, str]]


def load_test_labels(tiles: list[str], palette, ignore_unknown: bool,
                     erode_radius: int) -> dict[str, tuple[np.ndarray, Path]]:
    """Label map of every test tile (boundaries eroded if asked), with its file."""
    labels = {}
    for tile in tiles:
        path = RESIZED / "labels" / label_name(tile)
        if not path.is_file():
            raise FileNotFoundError(f"test tile {tile}: no label {path}")
        labels[tile] = erode_boundaries(read_label(path, palette, ignore_unknown), erode_radius), path
    return labels


def pooled_confusions(labels: dict, map_source: MapSource, num_classes: int, desc: str) -> dict[str, np.ndarray]:
    """One confusion matrix per mode, summed over the test tiles."""
    totals = {mode: np.zeros((num_classes, num_classes), np.int64) for mode in MODES}
    for tile, (label, label_path) in tqdm(labels.items(), desc=desc, unit="tile"):
        for mode in MODES:
            prediction, source = map_source(tile, mode)
            totals[mode] += confusion_matrix(label, prediction, num_classes, source=f"{source} vs {label_path}")
    return totals


def saved_prediction(tile: str, mode: str) -> tuple[np.ndarray, str]:
    path = PREDICTIONS / mode / prediction_name(tile, ".tif")
    return read_image(path)[..., 0], str(path)


def snapshot_scores(labels: dict, params) -> pd.DataFrame:
    """Test mIoU, plain and smooth, of each snapshot's weights: one row per snapshot epoch."""
    weights = sorted(SNAPSHOTS.glob("epoch_*.weights.h5"))
    model = keras.saving.load_model(MODEL_PATH, compile=False) if weights else None  # predicting only
    rows = []
    for path in weights:
        model.load_weights(path)
        totals = pooled_confusions(labels, snapshot_predictor(model, params, path.name),
                                   params.palette.num_classes, desc=path.name)
        rows.append({"epoch": int(path.name.split(".")[0].removeprefix("epoch_")),
                     **{f"test_miou_{mode}": scores(cm, params.palette.names)["miou"] for mode, cm in totals.items()}})
    return pd.DataFrame(rows, columns=["epoch", "test_miou_plain", "test_miou_smooth"])


def with_history(table: pd.DataFrame) -> pd.DataFrame:
    """Each snapshot row beside the training history of the same epoch."""
    history = pd.read_csv(HISTORY)[HISTORY_COLUMNS] if HISTORY.is_file() else pd.DataFrame(columns=HISTORY_COLUMNS)
    return history.astype({"epoch": int}).merge(table, on="epoch", how="right")


def snapshot_predictor(model, params, name: str) -> MapSource:
    def predict(tile: str, mode: str) -> tuple[np.ndarray, str]:
        photo = read_image(RESIZED / "images" / photo_name(tile))
        index = predict_map(model, photo, params.patches.patch_size, params.palette.num_classes, mode,
                            **params.predict.model_dump())
        return index, f"snapshot {name}, {mode} map of tile {tile}"
    return predict


def snapshots_markdown(table: pd.DataFrame) -> str:
    """The snapshot table as Markdown, or a sentence saying why there is none."""
    if table.empty:
        return (f"# Snapshots\n\nNo snapshots were found in {SNAPSHOTS}/ (the train stage writes one every "
                "`train.snapshot_every` epochs), so there is no table of test scores per epoch.\n")
    return ("# Snapshots\n\nTest-set mean IoU of the weights saved during training, beside that epoch's "
            "training and validation scores.\n\n" + plots.markdown_table(table) + "\n")


def write_outputs(results: dict, confusions: dict, table: pd.DataFrame, class_names) -> None:
    write_json(METRICS, results)
    for mode, cm in confusions.items():
        with atomic_file(METRICS.parent / f"confusion_{mode}.csv") as tmp:
            confusion_rows(cm, class_names).to_csv(tmp, index=False)
    with atomic_file(SNAPSHOT_TABLE) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_file(SNAPSHOT_MARKDOWN) as tmp:
        tmp.write_text(snapshots_markdown(table))


def mlflow_metrics(results: dict) -> dict[str, float]:
    """Flat MLflow keys: test_smooth_miou, ..., test_smooth_iou_car (undefined scores left out)."""
    flat = {}
    for mode, summary in results.items():
        flat.update({f"test_{mode}_{key}": value for key, value in summary.items() if isinstance(value, float)})
        flat.update({f"test_{mode}_iou_{name}": values["iou"] for name, values in summary["per_class"].items()
                     if values["iou"] is not None})
    return flat


def log_to_training_run(results: dict, confusions: dict, class_names) -> None:
    """Add the test scores and confusion heat maps to the MLflow run of the training."""
    if not RUN_FILE.is_file():
        print(f"note: {RUN_FILE} not found, so the scores are not logged to MLflow")
        return
    run = json.loads(RUN_FILE.read_text())
    mlflow.set_tracking_uri(run["tracking_uri"])
    try:
        with mlflow.start_run(run_id=run["run_id"]):
            mlflow.log_metrics(mlflow_metrics(results))
            for mode, cm in confusions.items():
                figure = plots.confusion_figure(cm, class_names, f"Test confusion, {mode}")
                mlflow.log_figure(figure, f"evaluate/confusion_{mode}.png")
                plt.close(figure)
            mlflow.log_artifact(str(SNAPSHOT_TABLE), "evaluate")
    except mlflow.exceptions.MlflowException as error:
        print(f"warning: {RUN_FILE}: cannot log to MLflow run {run['run_id']} at {run['tracking_uri']}: {error}")


def main() -> None:
    params = load_params()
    names = params.palette.names
    tiles = read_split(SPLITS, "test")
    labels = load_test_labels(tiles, params.palette, params.data.ignore_unknown_colours, params.evaluate.erode_radius)
    confusions = pooled_confusions(labels, saved_prediction, params.palette.num_classes, desc="test maps")
    results = {mode: {**scores(cm, names), "confusion_matrix": cm.tolist()} for mode, cm in confusions.items()}
    table = with_history(snapshot_scores(labels, params))
    write_outputs(results, confusions, table, names)
    log_to_training_run(results, confusions, names)
    for mode in MODES:
        print(f"{mode}: mIoU {results[mode]['miou']:.4f}, OA {results[mode]['oa']:.4f}, mF1 {results[mode]['mf1']:.4f}")


if __name__ == "__main__":
    main()
