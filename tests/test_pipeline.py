"""End to end: `dvc repro` of the whole pipeline in a fresh git repo, failures that cost nothing,
then `dvc exp run`."""

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from pipeline_helpers import altered, copy_repository, deep_update, run
from test_dvc_yaml import read_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("reproduced_project")]  # one worker builds it once


@pytest.fixture(scope="module")
def project(reproduced_project, tmp_path_factory):
    return copy_repository(reproduced_project, tmp_path_factory.mktemp("pipeline") / "project")


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
    assert snapshots["test_miou_plain"].between(0, 1).all()  # evaluate.snapshot_modes: [plain] by default


def test_the_registered_model_carries_its_card_and_test_scores(project):
    """The train stage registers the model with its card's tags; the evaluate stage adds the test scores."""
    run_id = json.loads((project / "models/mlflow_run.json").read_text())["run_id"]
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    (version,) = client.search_model_versions(f"run_id = '{run_id}'")
    scores = json.loads((project / "metrics/evaluate.json").read_text())
    assert version.tags["aerialseg.window"] == str(
        yaml.safe_load((project / "params.yaml").read_text())["patches"]["patch_size"]
    )
    for mode in ("plain", "smooth"):
        assert float(version.tags[f"test.{mode}.miou"]) == pytest.approx(scores[mode]["miou"])


def test_second_repro_does_nothing(project):
    output = run(["dvc", "repro"], project).stdout
    assert "Data and pipelines are up to date" in output, output
    assert "Running stage" not in output


def test_editing_a_shared_module_makes_every_stage_that_imports_it_stale(project):
    module = project / "aerialseg" / "data" / "splits.py"
    with altered(module, module.read_bytes() + b"\n# edited\n"):
        stale = json.loads(run(["dvc", "status", "--json"], project).stdout)
    users = {name for name, stage in read_pipeline()["stages"].items() if "aerialseg/data/splits.py" in stage["deps"]}
    assert users == {"patches", "train", "predict", "evaluate", "report"}
    assert set(stale) == users
    assert all({"changed deps": {"aerialseg/data/splits.py": "modified"}} in stale[name] for name in users)
    assert json.loads(run(["dvc", "status", "--json"], project).stdout) == {}  # the old bytes are up to date again


def test_metrics_and_plots_are_shown(project):
    metrics = run(["dvc", "metrics", "show", "--json"], project).stdout
    assert "smooth" in metrics and "val_jaccard" in metrics
    run(["dvc", "plots", "show", "-o", "plots"], project)
    assert (project / "plots" / "index.html").is_file()


def output_checksums(project: Path) -> dict[str, str]:
    """SHA-256 of every file the stages write (data/, models/, metrics/)."""
    files = (path for folder in ("data", "models", "metrics") for path in sorted((project / folder).rglob("*")))
    return {
        str(path.relative_to(project)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in files
        if path.is_file()
    }


def params_with(project: Path, changes: dict) -> bytes:
    return yaml.safe_dump(deep_update(yaml.safe_load((project / "params.yaml").read_text()), changes)).encode()


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"train": {"epoch": 3}}, "train.epoch"),  # a change the train stage would rerun for
        ({"trian": {"epochs": 3}}, "trian"),  # test_config names the typo of every section
    ],
)
def test_a_typo_stops_the_pipeline_before_any_stage_runs(project, changes, key):
    before = output_checksums(project)
    params = project / "params.yaml"
    with altered(params, params_with(project, changes)):
        result = run(["dvc", "repro"], project, check=False)
    assert result.returncode != 0
    assert f"error: params.yaml: {key}:" in result.stderr
    assert "Traceback" not in result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("Running stage")] == [
        "Running stage 'validate':"
    ]
    assert output_checksums(project) == before


def test_a_failing_stage_keeps_the_outputs_of_its_last_successful_run(project, tmp_path):
    """Each stage fails in turn, on bad params or bad input; every output stays byte-identical."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    params = project / "params.yaml"
    evaluation = project / "metrics/evaluate.json"
    prediction = project / "data/predictions/smooth/top_potsdam_2_13_pred.tif"
    failures = [  # (stage, file to alter, its content, dvc repro arguments, expected message)
        (
            "download",
            params,
            params_with(project, {"data": {"source": "local", "local": {"paths": [str(tmp_path)]}}}),
            [],
            "no Potsdam tiles",
        ),
        ("patches", params, params_with(project, {"patches": {"patch_size": 256}}), [], "larger than the tile"),
        (
            "train",
            params,
            params_with(project, {"mlflow": {"tracking_uri": f"sqlite:///{a_file}/mlflow.db"}}),
            ["-f", "-s", "train"],  # mlflow settings alone never rerun the training
            "cannot be used",
        ),
        ("evaluate", prediction, prediction.read_bytes()[:300], ["-s", "evaluate"], "cannot read it"),
        ("report", evaluation, b"{}", ["-s", "report"], "KeyError"),
    ]
    before = output_checksums(project)
    for stage, path, content, arguments, message in failures:
        with altered(path, content):
            result = run(["dvc", "repro", *arguments], project, check=False)
        assert result.returncode != 0, stage
        assert f"Running stage '{stage}'" in result.stdout, stage
        assert message in result.stderr, (stage, result.stderr[-2000:])
        assert "outputs of the last successful run are back in place" in result.stderr, stage
        assert output_checksums(project) == before, stage
    # as before the failed attempts, but for the params check, which passed with the params tried
    assert set(json.loads(run(["dvc", "status", "--json"], project).stdout)) <= {"validate"}


def test_experiment_reruns_only_training_onwards_and_logs_to_the_main_store(project):
    """`dvc exp run --temp` trains in a copy under .dvc/tmp/exps (as queued experiments do); the
    relative tracking URI must still name the project's own store, which gets one more run."""
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("aerialseg")
    runs_before = len(client.search_runs([experiment.experiment_id]))
    # three epochs, one snapshot (the third) with both its maps
    changes = ["train.epochs=3", "train.snapshot_every=3", "train.snapshot_modes=[plain,smooth]"]
    output = run(
        ["dvc", "exp", "run", "--temp", *(arg for change in changes for arg in ("-S", change))], project
    ).stdout
    assert "Running stage 'train'" in output
    for upstream in ("download", "resize", "patches"):
        assert f"Running stage '{upstream}'" not in output
    assert "train.epochs" in run(["dvc", "exp", "show", "--no-pager", "--csv"], project).stdout

    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    assert len(runs) == runs_before + 1
    newest = runs[0]
    assert newest.data.params["train.epochs"] == "3"
    assert sorted(m.step for m in client.get_metric_history(newest.info.run_id, "val_jaccard")) == [1, 2, 3]
    images = [a.path for a in client.list_artifacts(newest.info.run_id, "images")]
    assert all(any(f"val_map_{mode}" in path for path in images) for mode in ("plain", "smooth")), images
