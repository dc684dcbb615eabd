import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import pydantic
import pytest
from mlflow.tracking import MlflowClient

from aerialseg.pipeline import tracking


def test_relative_sqlite_uri_resolves_to_the_main_workspace(tmp_path, monkeypatch):
    monkeypatch.delenv(tracking.ENV_URI, raising=False)
    exp_workspace = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpabc"
    exp_workspace.mkdir(parents=True)
    assert tracking.repo_root(exp_workspace) == tmp_path / "repo"
    main_store = f"sqlite:///{tmp_path / 'repo' / 'mlflow.db'}"
    assert tracking.resolve_tracking_uri("sqlite:///mlflow.db", exp_workspace) == main_store
    assert tracking.resolve_tracking_uri("sqlite:////abs/m.db", exp_workspace) == "sqlite:////abs/m.db"
    assert tracking.resolve_tracking_uri("http://host:5000", exp_workspace) == "http://host:5000"


def test_environment_variable_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(tracking.ENV_URI, "http://127.0.0.1:5001")
    assert tracking.resolve_tracking_uri("sqlite:///mlflow.db", tmp_path) == "http://127.0.0.1:5001"


def test_the_origin_of_the_uri_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv(tracking.ENV_URI, raising=False)
    params = tracking.tracking_uri_and_origin("sqlite:///mlflow.db", tmp_path)
    assert params == (f"sqlite:///{tmp_path / 'mlflow.db'}", "params.yaml mlflow.tracking_uri")
    monkeypatch.setenv(tracking.ENV_URI, "sqlite:///env.db")
    environment = tracking.tracking_uri_and_origin("sqlite:///mlflow.db", tmp_path)
    assert environment == (f"sqlite:///{tmp_path / 'env.db'}", "the MLFLOW_TRACKING_URI environment variable")


def test_flatten_nested_params():
    assert tracking.flatten({"train": {"epochs": 5, "lr": 0.1}, "seed": 1}) == {
        "train.epochs": "5",
        "train.lr": "0.1",
        "seed": "1",
    }


class Local(pydantic.BaseModel):
    paths: list[Path]
    weights: Path | None = None
    colour: tuple[int, int, int] = (255, 255, 0)
    augment: bool = True


def test_paths_are_logged_as_plain_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = {"data": {"local": Local(paths=[Path("/a/b.zip"), Path("/c")]).model_dump()}, "root": Path("/d")}
    flat = tracking.flatten(params)
    assert flat == {
        "data.local.paths": "['/a/b.zip', '/c']",
        "data.local.weights": "None",
        "data.local.colour": "(255, 255, 0)",
        "data.local.augment": "True",
        "root": "/d",
    }
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with tracking.start_run(uri, "exp") as run:
        mlflow.log_params(flat)
    logged = MlflowClient(uri).get_run(run.info.run_id).data.params
    assert logged == flat
    assert "PosixPath" not in str(logged)


def test_run_is_continued_not_restarted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(tracking.ENV_URI, raising=False)
    uri = tracking.resolve_tracking_uri("sqlite:///mlflow.db")
    with tracking.start_run(uri, "exp") as run:
        mlflow.log_metric("loss", 1.0, step=1)
    with tracking.start_run(uri, "exp", run.info.run_id) as resumed:
        mlflow.log_metric("loss", 0.5, step=2)
    assert resumed.info.run_id == run.info.run_id
    assert tracking.logged_steps(run.info.run_id, "loss") == {1, 2}
    assert (tmp_path / "mlflow.db").is_file()
    with tracking.start_run(uri, "exp", "0" * 32) as fresh:  # a run id the store does not know
        pass
    assert fresh.info.run_id != run.info.run_id
    artifact_uri = mlflow.get_experiment_by_name("exp").artifact_location
    assert artifact_uri == (tmp_path / "mlartifacts").as_uri()


def test_scores_go_to_the_existing_training_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with tracking.start_run(uri, "exp") as training:
        pass
    with tracking.existing_run(uri, training.info.run_id):
        mlflow.log_metric("test_miou", 0.5)
    assert MlflowClient(uri).get_run(training.info.run_id).data.metrics == {"test_miou": 0.5}
    with pytest.raises(tracking.TrackingStoreError, match=f"MLflow run {'0' * 32} not found in {uri}"):
        tracking.existing_run(uri, "0" * 32)


def test_a_vanished_store_is_not_recreated_empty(tmp_path, monkeypatch):
    """Someone deleted mlflow.db between train and evaluate."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with tracking.start_run(uri, "exp") as training:
        pass
    (tmp_path / "mlflow.db").unlink()
    with pytest.raises(tracking.TrackingStoreError) as error:
        tracking.existing_run(uri, training.info.run_id)
    assert str(error.value).startswith(f"MLflow tracking store {uri} is missing")
    assert training.info.run_id in str(error.value)
    assert not (tmp_path / "mlflow.db").exists()


def test_a_vanished_run_is_replaced_and_said(tmp_path, monkeypatch, capsys):
    """A run missing from the store, or deleted in the UI: a new run, and one line naming both."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    deleted = MlflowClient(uri).create_run(MlflowClient(uri).create_experiment("exp")).info.run_id
    MlflowClient(uri).delete_run(deleted)
    for vanished in ("0" * 32, deleted):
        capsys.readouterr()
        with tracking.start_run(uri, "exp", vanished) as fresh:
            pass
        assert fresh.info.run_id != vanished
        assert capsys.readouterr().out.splitlines() == [
            f"MLflow run {vanished} not found in {uri} (or deleted): started a new run {fresh.info.run_id}"
        ]


def test_experiments_are_marked_as_model_development(tmp_path, monkeypatch):
    """New experiments, old ones without the tag and the experiment of a resumed run; a kind set by hand stays."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    old = client.create_experiment("old")
    client.create_experiment("chosen", tags={tracking.KIND_TAG: "genai_development"})
    resumed = client.create_run(client.create_experiment("resumed")).info.run_id
    assert tracking.KIND_TAG not in client.get_experiment(old).tags
    for name, run_id in (("new", None), ("old", None), ("chosen", None), ("new", resumed)):
        with tracking.start_run(uri, name, run_id):
            pass
    names = ("new", "old", "chosen", "resumed")
    kinds = {name: client.get_experiment_by_name(name).tags.get(tracking.KIND_TAG) for name in names}
    assert kinds == {
        "new": "custom_model_development",
        "old": "custom_model_development",
        "chosen": "genai_development",
        "resumed": "custom_model_development",
    }


def assert_store_error(message: str, uri: str, origin: str, problem: str) -> None:
    """One line that names the store, where its URI came from, what is wrong and what to do."""
    assert message.startswith(f"MLflow tracking store {uri} (from {origin}) cannot be used: ")
    assert problem in message
    assert "to a writable location" in message
    assert "\n" not in message.strip()


def test_a_usable_store_passes_the_check(tmp_path):
    tracking.check_store(f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}", tracking.PARAMS_ORIGIN)
    assert (tmp_path / "new" / "mlflow.db").is_file()


def test_store_under_a_file_is_refused(tmp_path):
    """Refused for root too, unlike a read-only folder."""
    (tmp_path / "afile").write_text("")
    uri = f"sqlite:///{tmp_path / 'afile' / 'mlflow.db'}"
    with pytest.raises(tracking.TrackingStoreError) as error:
        tracking.check_store(uri, tracking.PARAMS_ORIGIN)
    assert_store_error(str(error.value), uri, "params.yaml mlflow.tracking_uri", "afile is a file, not a folder")


def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    (tmp_path / "mlflow.db").write_text("not a database")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(tracking.TrackingStoreError) as error:
        tracking.check_store(uri, tracking.PARAMS_ORIGIN)
    assert_store_error(str(error.value), uri, tracking.PARAMS_ORIGIN, "file is not a database")


def unprivileged(command: list[str]) -> list[str]:
    """``command`` run so that folder permissions apply: root passes them (CAP_DAC_OVERRIDE) unless
    setpriv takes that capability away."""
    if os.geteuid() != 0:
        return command
    if not shutil.which("setpriv"):
        pytest.skip("running as root, which ignores folder permissions, and setpriv is missing")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", *command]


def test_read_only_folder_is_refused(tmp_path):
    """A new store, and an existing one (which MLflow would open, then fail on the first write)."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    new, existing = f"sqlite:///{folder / 'new.db'}", f"sqlite:///{folder / 'existing.db'}"
    MlflowClient(existing).search_experiments()
    check = (
        "import sys\nfrom aerialseg.pipeline import tracking\nfor uri in sys.argv[1:]:\n"
        "    try:\n        tracking.check_store(uri, tracking.ENV_ORIGIN)\n"
        "    except tracking.TrackingStoreError as error:\n        print(error)\n"
    )
    folder.chmod(0o555)
    try:
        result = subprocess.run(
            unprivileged([sys.executable, "-c", check, new, existing]),
            cwd=Path(__file__).parents[1],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        folder.chmod(0o755)
    assert result.returncode == 0, result.stderr
    messages = result.stdout.splitlines()
    assert len(messages) == 2, result.stdout
    for message, uri in zip(messages, (new, existing)):
        assert_store_error(
            message, uri, "the MLFLOW_TRACKING_URI environment variable", f"folder {folder} is not writable"
        )
    assert not (folder / "new.db").exists()


def test_unreachable_server_is_refused_within_seconds(monkeypatch):
    with socket.socket() as free:  # a port that nothing listens on once closed
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    monkeypatch.setenv(tracking.ENV_URI, f"http://127.0.0.1:{port}")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    uri, origin = tracking.tracking_uri_and_origin("sqlite:///mlflow.db")
    with pytest.raises(tracking.TrackingStoreError) as error:
        tracking.check_store(uri, origin)
    assert_store_error(str(error.value), uri, "the MLFLOW_TRACKING_URI environment variable", "Connection refused")
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ


FIRST_TRAINING = """
import sys
from mlflow.tracking import MlflowClient
from aerialseg.pipeline import tracking
uri = sys.argv[1]
print("ready", flush=True)
sys.stdin.readline()  # go: both processes start at the same moment
tracking.check_store(uri, "test")
with tracking.start_run(uri, "aerialseg") as run:
    MlflowClient().log_metric(run.info.run_id, "loss", 1.0, step=1)
assert "tensorflow" not in sys.modules  # tracking loads Keras only to log a model
"""


@pytest.mark.slow
def test_two_trainings_can_make_a_fresh_store_at_once(tmp_path):
    """`dvc queue start -j 2` on a fresh clone: two trainings find no mlflow.db and make it at
    the same moment. MLflow building one file's tables from two processes fails in one of them
    (each runs the migrations), so the store is built aside and linked into place once."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_TRAINING, uri],
            cwd=Path(__file__).parents[1],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    for process in processes:  # past what the imports log
        assert "ready\n" in iter(process.stdout.readline, ""), "the process ended before it was ready"
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("aerialseg").experiment_id])
    assert len(runs) == 2
    assert all(client.get_metric_history(run.info.run_id, "loss")[0].value == 1.0 for run in runs)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mlflow.db"]  # nothing left beside it
