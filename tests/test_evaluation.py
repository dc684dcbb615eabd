"""aerialseg.evaluate.evaluation on a small scored project: scores like sklearn's, snapshots, MLflow."""

import json
import re

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import repo_params
from scored_project import (
    BOUNDARY_RADIUS,
    SCORING_PARAMS,
    SHAPE,
    pooled,
    scored_project,
    write_prediction,
    write_snapshots,
)
from sklearn.metrics import accuracy_score, f1_score, jaccard_score

from aerialseg.data.boundaries import erode_boundaries
from aerialseg.data.palette import IGNORE_INDEX
from aerialseg.evaluate.evaluation import evaluate
from aerialseg.train.history import HISTORY_COLUMNS


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return scored_project(tmp_path)


def test_evaluate_scores_the_test_tiles_like_sklearn(project, capsys):
    layout = project["layout"]
    evaluate(layout, project["params"])

    results = json.loads(layout.evaluation.read_text())
    truth = pooled(project["labels"])
    for mode in ("plain", "smooth"):
        predicted = pooled(project["predictions"][mode])
        assert results[mode]["miou"] == pytest.approx(jaccard_score(truth, predicted, average="macro"))
        assert results[mode]["mf1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
        assert results[mode]["oa"] == pytest.approx(accuracy_score(truth, predicted))
        assert results[mode]["per_class"]["car"]["iou"] == pytest.approx(
            jaccard_score(truth, predicted, labels=[project["palette"].names.index("car")], average=None)[0]
        )
        kept = [k for k, name in enumerate(project["palette"].names) if name != "clutter"]
        assert results[mode]["miou_no_clutter"] == pytest.approx(
            jaccard_score(truth, predicted, labels=kept, average=None).mean()
        )
        confusion = pd.read_csv(layout.confusion_rows(mode))
        assert list(confusion.columns) == ["actual", "predicted"]
        assert len(confusion) == pytest.approx(truth.size, abs=36)  # fewer pixels than 20000: kept 1:1
    assert results["smooth"]["miou"] > results["plain"]["miou"]
    assert "No snapshots were found" in layout.snapshot_markdown.read_text()
    assert pd.read_csv(layout.snapshot_table).empty
    assert "not logged to MLflow" in capsys.readouterr().out


def test_erode_radius_leaves_boundary_pixels_out(project):
    layout = project["layout"]
    evaluate(layout, project["params"])
    full = json.loads(layout.evaluation.read_text())

    evaluate(layout, repo_params({**SCORING_PARAMS, "evaluate": {**SCORING_PARAMS["evaluate"], "erode_radius": 1}}))

    eroded = json.loads(layout.evaluation.read_text())
    counted = lambda result: sum(c["support"] for c in result["plain"]["per_class"].values())  # noqa: E731
    assert 0 < counted(eroded) < counted(full)


def test_boundary_free_labels_leave_the_boundaries_out_and_the_protocol_says_so(project):
    layout, palette = project["layout"], project["palette"]
    evaluate(
        layout, repo_params({**SCORING_PARAMS, "evaluate": {**SCORING_PARAMS["evaluate"], "labels": "no_boundary"}})
    )

    results = json.loads(layout.evaluation.read_text())
    labels = {tile: erode_boundaries(label, BOUNDARY_RADIUS) for tile, label in project["labels"].items()}
    truth, kept = pooled(labels), pooled(labels) != IGNORE_INDEX
    assert 0 < kept.sum() < truth.size  # the boundary bands are left out, the rest is scored
    for mode in ("plain", "smooth"):
        predicted = pooled(project["predictions"][mode])
        assert results[mode]["miou"] == pytest.approx(jaccard_score(truth[kept], predicted[kept], average="macro"))
        assert results[mode]["oa"] == pytest.approx(accuracy_score(truth[kept], predicted[kept]))
    assert results["protocol"] == {
        "labels": "no_boundary",
        "erode_radius": 0,
        "tiles": ["2_10", "2_11"],
        "tile_sizes": [f"{SHAPE[1]} x {SHAPE[0]}"],
        "pixels_scored": int(kept.sum()),
        "pixels_ignored": int((~kept).sum()),
        "classes": list(palette.names),
        "without_classes": ["clutter"],
    }


def test_boundary_free_labels_missing_from_the_data_are_named_with_the_ways_out(project):
    layout = project["layout"]
    layout.resized.label("2_11", "no_boundary").unlink()
    with pytest.raises(FileNotFoundError) as error:
        evaluate(
            layout, repo_params({**SCORING_PARAMS, "evaluate": {**SCORING_PARAMS["evaluate"], "labels": "no_boundary"}})
        )
    message = str(error.value)
    assert message.startswith(f"test tile 2_11: no boundary-free label {layout.resized.label('2_11', 'no_boundary')}")
    assert "5_Labels_all_noBoundary.zip" in message and "set evaluate.labels to 'full'" in message
    assert not layout.evaluation.exists()


def test_a_test_tile_without_label_is_named_and_nothing_is_written(project):
    layout = project["layout"]
    layout.resized.label("2_11").unlink()
    with pytest.raises(FileNotFoundError, match=r"test tile 2_11: no label .*top_potsdam_2_11_label\.tif"):
        evaluate(layout, project["params"])
    assert not layout.evaluation.exists()
    assert not layout.snapshot_markdown.exists()


def test_a_prediction_of_another_size_names_both_files_and_keeps_old_metrics(project):
    layout = project["layout"]
    layout.evaluation.write_text('{"previous": 1}')
    write_prediction(layout, "smooth", "2_11", np.zeros((SHAPE[0], SHAPE[1] + 1), np.uint8), project["palette"])

    with pytest.raises(
        ValueError,
        match=r"smooth/top_potsdam_2_11_pred\.tif vs .*top_potsdam_2_11_label\.tif: "
        r"label shape \(32, 48\) and prediction shape \(32, 49\) differ",
    ):
        evaluate(layout, project["params"])
    assert layout.evaluation.read_text() == '{"previous": 1}'


def test_snapshot_table_and_mlflow_logging(project, tmp_path):
    layout = project["layout"]
    write_snapshots(layout, project["palette"])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("training")  # not whichever experiment an earlier test left active
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 0.5)
    layout.mlflow_run.write_text(json.dumps({"tracking_uri": uri, "run_id": run.info.run_id}))

    evaluate(layout, project["params"])

    table = pd.read_csv(layout.snapshot_table)
    assert list(table.columns) == HISTORY_COLUMNS + ["test_miou_plain", "test_miou_smooth"]
    assert table["epoch"].tolist() == [2, 4]
    assert table["val_jaccard"].tolist() == [0.2, 0.4]  # joined with the history of the same epochs
    assert table.loc[0, ["test_miou_plain", "test_miou_smooth"]].tolist() == [1.0, 1.0]  # the perfect weights
    # all-zero weights: uniform probabilities, class 0 everywhere; its IoU is its share of the pixels
    share = (pooled(project["labels"]) == 0).mean()
    assert table.loc[1, "test_miou_smooth"] == pytest.approx(share / 6)
    markdown = layout.snapshot_markdown.read_text()
    assert re.search(r"^\|\s+2 \|.*\|\s+1\.0000 \|\s+1\.0000 \|$", markdown, re.M)

    logged = mlflow.get_run(run.info.run_id).data.metrics
    results = json.loads(layout.evaluation.read_text())
    assert logged["test_smooth_miou"] == pytest.approx(results["smooth"]["miou"])
    assert logged["test_plain_iou_car"] == pytest.approx(results["plain"]["per_class"]["car"]["iou"])
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "evaluate")}
    assert {"evaluate/confusion_plain.png", "evaluate/confusion_smooth.png", "evaluate/snapshots.csv"} <= artifacts


@pytest.mark.parametrize(
    "settings, epochs, columns, sentence",
    [
        ({"snapshots": "last", "snapshot_modes": ["plain"]}, [4], ["test_miou_plain"], "the last snapshot"),
        ({"snapshots": "all", "snapshot_modes": ["smooth"]}, [2, 4], ["test_miou_smooth"], "every snapshot"),
        (
            {"snapshots": "none", "snapshot_modes": ["plain", "smooth"]},
            [],
            ["test_miou_plain", "test_miou_smooth"],
            "not scored",
        ),
    ],
)
def test_snapshot_scoring_is_bounded_as_asked(project, settings, epochs, columns, sentence):
    layout = project["layout"]
    write_snapshots(layout, project["palette"])

    evaluate(layout, repo_params({**SCORING_PARAMS, "evaluate": {**SCORING_PARAMS["evaluate"], **settings}}))

    table = pd.read_csv(layout.snapshot_table)
    assert table["epoch"].tolist() == epochs
    assert list(table.columns) == HISTORY_COLUMNS + columns
    assert sentence in layout.snapshot_markdown.read_text()
