"""The train stage for real: a process killed mid-training resumes, MLflow keeps one run."""

import io
import json
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from pipeline_helpers import TINY, altered, deep_update, environment, make_project, run_stage, run_stages

import aerialseg.train.model  # noqa: F401  registers the encoder preprocessing layer of saved models
from aerialseg.train.card import read_card

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(__name__)]  # one worker trains the fixture once

EPOCHS = 4
CHANGES = deep_update(
    json.loads(json.dumps(TINY)),
    {
        "data": {"synthetic": {"size": 512}},
        "train": {"epochs": EPOCHS, "snapshot_every": 2},
    },
)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = make_project(tmp_path_factory.mktemp("train"), CHANGES, git=False)
    run_stages(["download", "resize", "patches"], folder)
    return folder


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def wait_for_first_epoch(process, state_path, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state_path.is_file() and json.loads(state_path.read_text())["epoch"] >= 1:
            return json.loads(state_path.read_text())
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.05)
    raise TimeoutError("no epoch finished")


@pytest.fixture(scope="module")
def resumed(project):
    """The train stage killed in its second epoch, then run again to the end: (project, what the
    second run printed, the checkpoint state at the kill)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "stages.train"],
        cwd=project,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    state_before_kill = wait_for_first_epoch(process, project / "models/checkpoint/state.json")
    time.sleep(0.3)  # well inside the next epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (project / "models/model.keras").exists()  # only a finished training writes the model

    return project, run_stage("train", project).stdout, state_before_kill


def test_killed_training_resumes_without_losing_or_repeating_epochs(resumed):
    project, output, state_before_kill = resumed
    assert "resuming after epoch" in output
    assert not (project / "models/checkpoint").exists()  # finished: nothing left to resume

    history = pd.read_csv(project / "metrics/train_history.csv")
    assert history["epoch"].tolist() == list(range(1, EPOCHS + 1))
    assert {"loss", "accuracy", "jaccard", "val_loss", "val_accuracy", "val_jaccard"} <= set(history.columns)
    run_info = json.loads((project / "models/mlflow_run.json").read_text())
    assert run_info["run_id"] == state_before_kill["run_id"]  # the same MLflow run went on
    client = MlflowClient(run_info["tracking_uri"])
    for metric in ("loss", "val_jaccard"):
        steps = sorted(m.step for m in client.get_metric_history(run_info["run_id"], metric))
        assert steps == list(range(1, EPOCHS + 1)), metric
    artifacts = {a.path for a in client.list_artifacts(run_info["run_id"])}
    assert "images" in artifacts
    assert len(client.search_runs([client.get_run(run_info["run_id"]).info.experiment_id])) == 1

    snapshots = sorted(p.name for p in (project / "models/snapshots").iterdir())
    assert snapshots == [
        "epoch_002.weights.h5",
        "epoch_002_plain.png",
        "epoch_004.weights.h5",
        "epoch_004_plain.png",
    ]  # train.snapshot_modes: [plain]
    model = keras.saving.load_model(project / "models/model.keras")
    probabilities = model.predict(np.zeros((1, 32, 32, 3), np.float32), verbose=0)
    assert probabilities.shape == (1, 32, 32, 6)
    summary = json.loads((project / "metrics/train.json").read_text())
    assert summary["epochs"] == EPOCHS and summary["patches_per_s"] > 0
    assert summary["pixel_size_m"] == 0.1  # Potsdam's 5 cm, resized by half
    card = read_card(project / "models/model.keras")
    assert card.pixel_size_m == 0.1 and card.window == 32
    assert all(read_card(project / f"models/snapshots/{name}") == card for name in snapshots if name.endswith(".h5"))


def test_failed_run_keeps_the_last_good_model(resumed):
    project = resumed[0]
    model_path = project / "models/model.keras"
    before = model_path.read_bytes()
    labels = project / "data/patches/train_labels.npy"
    bad = np.load(labels)
    bad[0, 0, 0] = 9  # class 9, while params name 6 classes
    with altered(labels, npy_bytes(bad)):
        result = run_stage("train", project, check=False)
    assert result.returncode != 0
    assert "train_labels.npy: holds class indices [9]" in result.stderr
    assert model_path.read_bytes() == before


def test_training_is_reproducible_and_a_resumed_run_matches_an_uninterrupted_one(resumed, tmp_path):
    project = resumed[0]
    copy = shutil.copytree(project, tmp_path / "copy", ignore=shutil.ignore_patterns("models", "mlflow.db", "metrics"))
    run_stage("train", copy)
    metrics = ["loss", "accuracy", "jaccard", "val_loss", "val_accuracy", "val_jaccard"]
    pd.testing.assert_frame_equal(
        pd.read_csv(copy / "metrics/train_history.csv")[metrics],
        pd.read_csv(project / "metrics/train_history.csv")[metrics],
        rtol=1e-5,
    )
