from pathlib import Path

import mlflow
import pydantic
from mlflow.tracking import MlflowClient

from aerialseg import tracking


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


def test_flatten_nested_params():
    assert tracking.flatten({"train": {"epochs": 5, "lr": 0.1}, "seed": 1}) == {
        "train.epochs": "5", "train.lr": "0.1", "seed": "1"}


class Local(pydantic.BaseModel):
    paths: list[Path]
    weights: Path | None = None
    colour: tuple[int, int, int] = (255, 255, 0)
    augment: bool = True


def test_paths_are_logged_as_plain_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = {"data": {"local": Local(paths=[Path("/a/b.zip"), Path("/c")]).model_dump()}, "root": Path("/d")}
    flat = tracking.flatten(params)
    assert flat == {"data.local.paths": "['/a/b.zip', '/c']", "data.local.weights": "None",
                    "data.local.colour": "(255, 255, 0)", "data.local.augment": "True", "root": "/d"}
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
    assert kinds == {"new": "custom_model_development", "old": "custom_model_development",
                     "chosen": "genai_development", "resumed": "custom_model_development"}
