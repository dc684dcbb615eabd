"""End to end: `dvc repro` of the whole pipeline in a fresh git repo, then `dvc exp run`."""

import json

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from pipeline_helpers import altered, make_project, run
from test_dvc_yaml import read_pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = make_project(tmp_path_factory.mktemp("pipeline"))
    run(["dvc", "repro"], folder)
    return folder


def test_repro_writes_every_output(project):
    for path in (
        "data/raw/manifest.csv",
        "data/resized/manifest.csv",
        "data/patches/train_images.npy",
        "data/patches/splits.json",
        "models/model.keras",
        "metrics/train_history.csv",
        "data/predictions/plain/top_potsdam_2_13_pred.png",
        "data/predictions/smooth/top_potsdam_2_13_pred.tif",
        "metrics/evaluate.json",
        "metrics/snapshots.csv",
        "metrics/snapshots.md",
        "metrics/report.md",
        "metrics/figures/curves.png",
        "metrics/figures/progress.mp4",
        "metrics/figures/progress.gif",
        "metrics/class_distribution.json",
        "metrics/class_distribution.png",
    ):
        assert (project / path).is_file(), path
    evaluation = json.loads((project / "metrics/evaluate.json").read_text())
    for mode in ("plain", "smooth"):
        assert 0 <= evaluation[mode]["miou"] <= 1 and 0 < evaluation[mode]["oa"] <= 1
    snapshots = pd.read_csv(project / "metrics/snapshots.csv")
    assert snapshots["epoch"].tolist() == [1, 2]
    assert snapshots["test_miou_smooth"].between(0, 1).all()


def test_second_repro_does_nothing(project):
    output = run(["dvc", "repro"], project).stdout
    assert "Data and pipelines are up to date" in output, output
    assert "Running stage" not in output


def test_editing_a_shared_module_makes_every_stage_that_imports_it_stale(project):
    module = project / "aerialseg" / "tiling.py"
    with altered(module, module.read_bytes() + b"\n# edited\n"):
        stale = json.loads(run(["dvc", "status", "--json"], project).stdout)
    users = {name for name, stage in read_pipeline()["stages"].items() if "aerialseg/tiling.py" in stage["deps"]}
    assert users == {"patches", "train", "predict", "evaluate", "report"}
    assert set(stale) == users
    assert all({"changed deps": {"aerialseg/tiling.py": "modified"}} in stale[name] for name in users)
    assert json.loads(run(["dvc", "status", "--json"], project).stdout) == {}  # the old bytes are up to date again


def test_metrics_and_plots_are_shown(project):
    metrics = run(["dvc", "metrics", "show", "--json"], project).stdout
    assert "smooth" in metrics and "val_jaccard" in metrics
    run(["dvc", "plots", "show", "-o", "plots"], project)
    assert (project / "plots" / "index.html").is_file()


def test_experiment_reruns_only_training_onwards_and_logs_a_new_mlflow_run(project):
    run_file = project / "models/mlflow_run.json"
    first_run = json.loads(run_file.read_text())
    output = run(["dvc", "exp", "run", "-S", "train.epochs=3"], project).stdout
    assert "Running stage 'train'" in output
    for upstream in ("download", "resize", "patches"):
        assert f"Running stage '{upstream}'" not in output
    assert "train.epochs" in run(["dvc", "exp", "show", "--no-pager", "--csv"], project).stdout
    second_run = json.loads(run_file.read_text())
    assert second_run["run_id"] != first_run["run_id"]
    client = MlflowClient(second_run["tracking_uri"])
    history = client.get_metric_history(second_run["run_id"], "val_jaccard")
    assert sorted(m.step for m in history) == [1, 2, 3]
    images = [a.path for a in client.list_artifacts(second_run["run_id"], "images")]
    assert any("val_map_smooth" in path for path in images), images


def test_temporary_experiment_workspace_logs_to_the_main_store(project):
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("aerialseg")
    runs_before = len(client.search_runs([experiment.experiment_id]))
    run(["dvc", "exp", "run", "--temp", "-S", "train.epochs=2"], project)
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    assert len(runs) == runs_before + 1
    newest = runs[0]
    assert newest.data.params["train.epochs"] == "2"
    assert sorted(m.step for m in client.get_metric_history(newest.info.run_id, "loss")) == [1, 2]
