"""Sharing and sweeping with DVC's own engines, for real: the data, patches and models pushed to a
DVC remote (a local folder here; S3 or SSH the same way) and pulled into a fresh clone, which
then has nothing to rebuild; and, in that clone, two queued experiments that train at the same
moment and log every epoch to the one SQLite MLflow store at its root."""

import json
import time

import pytest
from mlflow.tracking import MlflowClient
from pipeline_helpers import copy_repository, run

COMMIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm"]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("reproduced_project")]  # one worker builds it once
EPOCH_METRICS = ["loss", "accuracy", "jaccard", "val_loss", "val_accuracy", "val_jaccard", "patches_per_s"]


@pytest.fixture(scope="module")
def shared(reproduced_project, tmp_path_factory):
    """A project built by `dvc repro` and pushed to a folder remote, and a fresh git clone that pulled it."""
    root = tmp_path_factory.mktemp("shared")
    origin = copy_repository(reproduced_project, root / "origin")
    run(["dvc", "remote", "add", "-d", "storage", str(root / "remote")], origin)
    run(["git", "add", "-A"], origin)
    run([*COMMIT, "trained, with a remote"], origin)
    pushed = run(["dvc", "push"], origin).stdout
    run(["git", "clone", "-q", str(origin), str(root / "clone")], root)
    pulled = run(["dvc", "pull"], root / "clone").stdout
    return origin, root / "clone", pushed, pulled


def test_a_fresh_clone_pulls_everything_and_has_nothing_to_rebuild(shared):
    origin, clone, pushed, pulled = shared
    assert "pushed" in pushed and "added" in pulled, (pushed, pulled)
    for path in (
        "data/patches/train_images.npy",
        "models/model.keras",
        "models/snapshots/epoch_002.weights.h5",
        "metrics/report.md",
    ):
        assert (clone / path).read_bytes() == (origin / path).read_bytes(), path
    output = run(["dvc", "repro"], clone).stdout
    assert "Running stage" not in output and "up to date" in output, output


def test_a_remote_that_does_not_exist_fails_with_dvcs_error_and_loses_nothing(shared, tmp_path):
    origin, _, _, _ = shared
    before = (origin / "models/model.keras").read_bytes()
    unknown = run(["dvc", "push", "-r", "nosuch"], origin, check=False)
    assert unknown.returncode != 0 and "remote 'nosuch' doesn't exist" in unknown.stderr, unknown.stderr
    run(["git", "clone", "-q", str(origin), str(tmp_path / "clone")], tmp_path)
    run(["dvc", "remote", "add", "--local", "gone", str(tmp_path / "gone")], tmp_path / "clone")
    missing = run(["dvc", "pull", "-r", "gone"], tmp_path / "clone", check=False)
    assert missing.returncode != 0 and "failed to pull data from the cloud" in missing.stderr, missing.stderr
    assert (origin / "models/model.keras").read_bytes() == before
    assert json.loads(run(["dvc", "status", "--json"], origin).stdout) == {}
    assert run(["git", "status", "--porcelain"], tmp_path / "clone").stdout == ""


def wait_for_queue(project, timeout=900) -> str:
    """`dvc queue status` once no experiment is queued or running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], project).stdout
        if "Queued" not in status and "Running" not in status:
            return status
        time.sleep(3)
    raise TimeoutError(status)


def test_queued_experiments_train_at_once_and_log_every_epoch_to_one_store(shared):
    _, clone, _, _ = shared  # the baseline trained with learning rate 0.002: its experiment would be a no-op
    assert not (clone / "mlflow.db").exists()  # git does not carry it: the two trainings make it at once
    run(["dvc", "exp", "run", "--queue", "train", "-S", "train.learning_rate=0.001,0.003"], clone)
    run(["dvc", "queue", "start", "-j", "2"], clone)
    status = wait_for_queue(clone)
    assert status.count("Success") == 2, status

    client = MlflowClient(f"sqlite:///{clone / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("aerialseg").experiment_id])
    assert sorted(r.data.params["train.learning_rate"] for r in runs) == ["0.001", "0.003"]
    first, second = sorted(runs, key=lambda r: r.info.start_time)
    assert second.info.start_time < first.info.end_time  # the two trainings ran at the same time
    for training in runs:
        for metric in EPOCH_METRICS:
            steps = [m.step for m in client.get_metric_history(training.info.run_id, metric)]
            assert sorted(steps) == [1, 2], (training.data.params["train.learning_rate"], metric)
    table = run(["dvc", "exp", "show", "--csv", "--no-pager"], clone).stdout
    assert "0.001" in table and "0.003" in table
