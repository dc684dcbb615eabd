import mlflow
import pytest

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
