"""The evaluate and report stages run for real in a small project folder built by the tests."""

import json
import re
from pathlib import Path

import imageio.v2 as imageio_v2
import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import accuracy_score, f1_score, jaccard_score

from aerialseg.blending import prediction_name
from aerialseg.config import load_params
from aerialseg.tiles import label_name, photo_name, write_image
from stages import evaluate, report

REPO = Path(__file__).parents[1]
TEST_TILES = ["2_10", "2_11"]
VAL_TILE = "3_10"
SHAPE = (32, 48)
HISTORY_EPOCHS = range(1, 5)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """Resized tiles, predictions with known errors and a training history, in the working folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["patches"]["patch_size"] = 16
    raw["predict"] = {"subdivisions": 2, "window_function": "spline", "tta": "none", "batch_size": 8}
    Path("params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    palette = load_params().palette
    write_splits({"train": ["1_1"], "val": [VAL_TILE], "test": TEST_TILES})
    rng = np.random.default_rng(0)
    labels = {}
    for tile in TEST_TILES + [VAL_TILE]:
        labels[tile] = rng.integers(0, palette.num_classes, SHAPE).astype(np.uint8)
        write_image(Path("data/resized/labels") / label_name(tile), palette.index_to_rgb(labels[tile]))
        write_image(Path("data/resized/images") / photo_name(tile), palette.index_to_rgb(labels[tile]))
    predictions = {mode: {tile: with_errors(labels[tile], share, rng) for tile in TEST_TILES}
                   for mode, share in (("plain", 0.4), ("smooth", 0.2))}
    for mode, maps in predictions.items():
        for tile, index in maps.items():
            write_prediction(mode, tile, index, palette)
    history = pd.DataFrame({"epoch": HISTORY_EPOCHS, "loss": [1.0, 0.8, 0.6, 0.5], "accuracy": [0.3, 0.5, 0.6, 0.7],
                            "jaccard": [0.1, 0.3, 0.4, 0.5], "val_loss": [1.1, 0.9, 0.7, 0.6],
                            "val_accuracy": [0.3, 0.4, 0.5, 0.6], "val_jaccard": [0.1, 0.2, 0.3, 0.4],
                            "patches_per_s": [100.0] * 4})
    Path("metrics").mkdir()
    history.to_csv("metrics/train_history.csv", index=False)
    return {"palette": palette, "labels": labels, "predictions": predictions}


def write_splits(splits: dict) -> None:
    Path("data/patches").mkdir(parents=True, exist_ok=True)
    Path("data/patches/splits.json").write_text(json.dumps(splits))


def with_errors(label: np.ndarray, share: float, rng) -> np.ndarray:
    wrong = rng.random(label.shape) < share
    return np.where(wrong, (label + 1) % 6, label).astype(np.uint8)


def write_prediction(mode: str, tile: str, index: np.ndarray, palette) -> None:
    folder = Path("data/predictions") / mode
    write_image(folder / prediction_name(tile, ".tif"), index)
    write_image(folder / prediction_name(tile, ".png"), palette.index_to_rgb(index))


def nearest_colour_model(palette) -> keras.Model:
    """A 1x1 convolution whose logits are minus the squared distance to each class colour.

    On photos painted in the class colours it predicts every pixel right: a snapshot of known skill.
    """
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Conv2D(palette.num_classes, 1, activation="softmax")(inputs)
    model = keras.Model(inputs, outputs)
    colours = np.asarray(palette.colours, np.float32)
    sharpness = 10 / 255 ** 2
    model.layers[-1].set_weights([(2 * colours.T * sharpness)[None, None], -(colours ** 2).sum(axis=1) * sharpness])
    return model


def write_snapshots(palette) -> keras.Model:
    """models/model.keras plus snapshots: epoch 2 predicts perfectly, epoch 4 has all-zero weights."""
    model = nearest_colour_model(palette)
    Path("models/snapshots").mkdir(parents=True)
    model.save("models/model.keras")
    model.save_weights("models/snapshots/epoch_002.weights.h5")
    model.layers[-1].set_weights([np.zeros_like(w) for w in model.layers[-1].get_weights()])
    model.save_weights("models/snapshots/epoch_004.weights.h5")
    return model


def write_snapshot_maps(labels: dict, palette) -> None:
    for epoch in (2, 4):
        for mode in ("plain", "smooth"):
            write_image(Path(f"models/snapshots/epoch_{epoch:03d}_{mode}.png"),
                        palette.index_to_rgb(np.roll(labels[VAL_TILE], epoch, axis=1)))


def pooled(maps: dict) -> np.ndarray:
    return np.concatenate([maps[tile].ravel() for tile in TEST_TILES])


def test_evaluate_scores_the_test_tiles_like_sklearn(project, capsys):
    evaluate.main()

    results = json.loads(Path("metrics/evaluate.json").read_text())
    truth = pooled(project["labels"])
    for mode in ("plain", "smooth"):
        predicted = pooled(project["predictions"][mode])
        assert results[mode]["miou"] == pytest.approx(jaccard_score(truth, predicted, average="macro"))
        assert results[mode]["mf1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
        assert results[mode]["oa"] == pytest.approx(accuracy_score(truth, predicted))
        assert results[mode]["per_class"]["car"]["iou"] == pytest.approx(
            jaccard_score(truth, predicted, labels=[project["palette"].names.index("car")], average=None)[0])
        confusion = pd.read_csv(f"metrics/confusion_{mode}.csv")
        assert list(confusion.columns) == ["actual", "predicted"]
        assert len(confusion) == pytest.approx(truth.size, abs=36)  # fewer pixels than 20000: kept 1:1
    assert results["smooth"]["miou"] > results["plain"]["miou"]
    assert "No snapshots were found" in Path("metrics/snapshots.md").read_text()
    assert pd.read_csv("metrics/snapshots.csv").empty
    assert "not logged to MLflow" in capsys.readouterr().out


def test_erode_radius_leaves_boundary_pixels_out(project):
    evaluate.main()
    full = json.loads(Path("metrics/evaluate.json").read_text())
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["evaluate"] = {"erode_radius": 1}
    Path("params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    evaluate.main()

    eroded = json.loads(Path("metrics/evaluate.json").read_text())
    counted = lambda result: sum(c["support"] for c in result["plain"]["per_class"].values())  # noqa: E731
    assert 0 < counted(eroded) < counted(full)


def test_a_test_tile_without_label_is_named_and_nothing_is_written(project):
    Path("data/resized/labels", label_name("2_11")).unlink()
    with pytest.raises(FileNotFoundError, match=r"test tile 2_11: no label .*top_potsdam_2_11_label\.tif"):
        evaluate.main()
    assert not Path("metrics/evaluate.json").exists()
    assert not Path("metrics/snapshots.md").exists()


def test_a_prediction_of_another_size_names_both_files_and_keeps_old_metrics(project):
    Path("metrics/evaluate.json").write_text('{"previous": 1}')
    write_prediction("smooth", "2_11", np.zeros((SHAPE[0], SHAPE[1] + 1), np.uint8), project["palette"])

    with pytest.raises(ValueError, match=r"smooth/top_potsdam_2_11_pred\.tif vs .*top_potsdam_2_11_label\.tif: "
                                         r"label shape \(32, 48\) and prediction shape \(32, 49\) differ"):
        evaluate.main()
    assert Path("metrics/evaluate.json").read_text() == '{"previous": 1}'


def test_snapshot_table_and_mlflow_logging(project, tmp_path):
    write_snapshots(project["palette"])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("training")  # not whichever experiment an earlier test left active
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 0.5)
    Path("models/mlflow_run.json").write_text(json.dumps({"tracking_uri": uri, "run_id": run.info.run_id}))

    evaluate.main()

    table = pd.read_csv("metrics/snapshots.csv")
    assert list(table.columns) == evaluate.HISTORY_COLUMNS + ["test_miou_plain", "test_miou_smooth"]
    assert table["epoch"].tolist() == [2, 4]
    assert table["val_jaccard"].tolist() == [0.2, 0.4]  # joined with the history of the same epochs
    assert table.loc[0, ["test_miou_plain", "test_miou_smooth"]].tolist() == [1.0, 1.0]  # the perfect weights
    # all-zero weights: uniform probabilities, class 0 everywhere; its IoU is its share of the pixels
    share = (pooled(project["labels"]) == 0).mean()
    assert table.loc[1, "test_miou_smooth"] == pytest.approx(share / 6)
    markdown = Path("metrics/snapshots.md").read_text()
    assert re.search(r"^\|\s+2 \|.*\|\s+1\.0000 \|\s+1\.0000 \|$", markdown, re.M)

    logged = mlflow.get_run(run.info.run_id).data.metrics
    results = json.loads(Path("metrics/evaluate.json").read_text())
    assert logged["test_smooth_miou"] == pytest.approx(results["smooth"]["miou"])
    assert logged["test_plain_iou_car"] == pytest.approx(results["plain"]["per_class"]["car"]["iou"])
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "evaluate")}
    assert {"evaluate/confusion_plain.png", "evaluate/confusion_smooth.png", "evaluate/snapshots.csv"} <= artifacts


def test_report_draws_every_figure_and_links_them(project):
    write_snapshots(project["palette"])
    write_snapshot_maps(project["labels"], project["palette"])
    evaluate.main()

    report.main()

    figures = Path("metrics/figures")
    expected = {"curves.png", "confusion_plain.png", "confusion_smooth.png", "snapshot_grid.png",
                "progress.mp4", "progress.gif", *(f"{tile}_comparison.png" for tile in TEST_TILES)}
    assert {path.name for path in figures.iterdir()} == expected
    assert all((figures / name).stat().st_size > 1000 for name in expected)
    with imageio_v2.get_reader(figures / "progress.mp4") as video:
        assert video.count_frames() == 2
    assert len(imageio_v2.mimread(figures / "progress.gif")) == 2
    markdown = Path("metrics/report.md").read_text()
    linked = set(re.findall(r"\(figures/([^)]+)\)", markdown))
    assert linked == expected
    assert "| smooth |" in markdown and "## Snapshots" in markdown


def test_report_without_snapshots_says_so_and_skips_their_pictures(project):
    evaluate.main()

    report.main()

    names = {path.name for path in Path("metrics/figures").iterdir()}
    assert "snapshot_grid.png" not in names and "progress.gif" not in names
    assert {"curves.png", "confusion_smooth.png", "2_10_comparison.png"} <= names
    assert "No snapshots were found" in Path("metrics/report.md").read_text()
