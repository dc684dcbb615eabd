"""MLflow tracking: one run per training, resumed when the training resumes.

The default store is a SQLite file at the repository root, resolved to an absolute path so that
`dvc exp run --temp` workspaces (which live under .dvc/tmp/exps/) log into the same store as the
main workspace and every experiment shows up side by side in `mlflow ui`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import tempfile
from contextlib import closing, contextmanager, suppress
from importlib.metadata import version
from pathlib import Path

import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import Schema, TensorSpec

from aerialseg.errors import InputError, first_line
from aerialseg.train.card import CARD_FILE, ModelCard

ENV_URI = "MLFLOW_TRACKING_URI"
KIND_TAG, MODEL_DEVELOPMENT = "mlflow.experimentKind", "custom_model_development"
PARAMS_ORIGIN, ENV_ORIGIN = "params.yaml mlflow.tracking_uri", f"the {ENV_URI} environment variable"


class TrackingStoreError(InputError, RuntimeError):
    """The MLflow tracking store cannot be used, or lacks the run to log to; the message names the URI."""


def repo_root(start: str | Path = ".") -> Path:
    """The main workspace, also when called from a DVC temporary experiment workspace."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        if folder.name == "exps" and folder.parent.name == "tmp" and folder.parent.parent.name == ".dvc":
            return folder.parent.parent.parent
    return start


def resolve_tracking_uri(uri: str, root: str | Path = ".") -> str:
    """MLFLOW_TRACKING_URI wins; a relative sqlite:/// or file path becomes absolute under ``root``."""
    return tracking_uri_and_origin(uri, root)[0]


def tracking_uri_and_origin(uri: str, root: str | Path = ".") -> tuple[str, str]:
    """The resolved URI (see resolve_tracking_uri) of params.yaml's ``uri``, and where it came from:
    when the store cannot be used, the user must know which of the two settings to change."""
    from_env = os.environ.get(ENV_URI)
    uri = from_env or uri
    root = repo_root(root)
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{root / uri[len('sqlite:///') :]}"
    elif "://" not in uri and not Path(uri).is_absolute():
        uri = str(root / uri)
    return uri, ENV_ORIGIN if from_env else PARAMS_ORIGIN


def check_store(uri: str, origin: str) -> None:
    """Open the tracking store, so that a stage that cannot log fails before it deletes or writes
    anything, with one line naming the URI and its ``origin`` instead of MLflow's tracebacks."""
    path = sqlite_path(uri)
    try:
        problem = _sqlite_problem(path) if path else None
        if problem is None:
            if path:
                _create_sqlite_store_once(path)
            with _few_http_retries():
                MlflowClient(uri).search_experiments(max_results=1)
    except Exception as error:  # whatever the store raises (SQLAlchemy, OS, HTTP...), it cannot be used
        problem = first_line(error)
    if problem:
        raise TrackingStoreError(
            f"MLflow tracking store {uri} (from {origin}) cannot be used: {problem}. Set mlflow.tracking_uri "
            f"in params.yaml or {ENV_URI} (which wins when set) to a writable location or a reachable server"
        )


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI; None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?")[0])


def _sqlite_problem(path: Path) -> str | None:
    """Why SQLite could not use ``path``, checked here because MLflow retries for over a minute
    before it gives up. SQLite writes the file and a journal beside it; MLflow creates missing folders."""
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return f"{path} is not writable"
    folder = next(folder for folder in path.parents if folder.exists())
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"folder {folder} is not writable"
    if path.exists():
        with closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)) as db:
            db.execute("PRAGMA schema_version")  # fails on a file that is not an SQLite database
    return None


def _create_sqlite_store_once(path: Path) -> None:
    """Make the SQLite store ``path`` if it is missing, also when several trainings do so at the
    same moment (`dvc queue start -j 2` on a fresh clone, where mlflow.db is not in git): MLflow
    building the tables of one new file from two processes fails in one of them, as both run
    the migrations. So each builds a store of its own beside ``path``, and the first to link
    its file into place wins; the others use that one."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, own = tempfile.mkstemp(prefix=f".{path.name}.new-", dir=path.parent)
    os.close(fd)
    try:
        MlflowClient(f"sqlite:///{own}").search_experiments(max_results=1)  # builds the tables
        with suppress(FileExistsError):
            os.link(own, path)  # atomic, and never replaces a store another process linked first
    finally:
        os.remove(own)


@contextmanager
def _few_http_retries():
    """Let an unreachable tracking server fail within seconds, not after MLflow's minutes of
    retries; settings the user made in the environment are kept."""
    defaults = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    added = {name: value for name, value in defaults.items() if name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            del os.environ[name]


def start_run(tracking_uri: str, experiment: str, run_id: str | None = None, run_name: str | None = None):
    """Start a new run, or continue ``run_id`` if it still exists in the store (and say so when
    it does not, so that the user knows why the training is split over two runs)."""
    mlflow.set_tracking_uri(tracking_uri)
    previous = _find_run(run_id) if run_id else None
    experiment_id = previous.info.experiment_id if previous else _experiment_id(experiment, tracking_uri)
    _mark_model_development(experiment_id)
    mlflow.set_experiment(experiment_id=experiment_id)
    if previous:
        return mlflow.start_run(run_id=run_id)
    run = mlflow.start_run(run_name=run_name)
    if run_id:
        print(f"MLflow run {run_id} not found in {tracking_uri} (or deleted): started a new run {run.info.run_id}")
    return run


def existing_run(tracking_uri: str, run_id: str):
    """Continue the run ``run_id``, which must be in the store, to add the evaluation to the
    training's run. A vanished SQLite file is not opened: that would create an empty store, and
    the scores would land in a new run nobody looks for."""
    path = sqlite_path(tracking_uri)
    if path and not path.is_file():
        raise TrackingStoreError(
            f"MLflow tracking store {tracking_uri} is missing ({path} not found), "
            f"so the scores cannot be logged to run {run_id}"
        )
    mlflow.set_tracking_uri(tracking_uri)
    run = _find_run(run_id)
    if run is None:
        raise TrackingStoreError(f"MLflow run {run_id} not found in {tracking_uri} (or deleted)")
    mlflow.set_experiment(experiment_id=run.info.experiment_id)
    return mlflow.start_run(run_id=run_id)


def _experiment_id(name: str, tracking_uri: str) -> str:
    """The experiment ``name``; a new one keeps its artifacts in mlartifacts/ beside a SQLite store
    (the repository root for the default store), not wherever the process happens to run, and is
    tagged as model development as it is made, so that trainings started together (`dvc queue
    start -j 2`) do not both write the tag; if one of them made the experiment first, it is used."""
    found = mlflow.get_experiment_by_name(name)
    if found:
        return found.experiment_id
    database = sqlite_path(tracking_uri)
    artifacts = (database.parent / "mlartifacts").as_uri() if database else None
    try:
        return mlflow.create_experiment(name, artifact_location=artifacts, tags={KIND_TAG: MODEL_DEVELOPMENT})
    except mlflow.exceptions.MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return mlflow.get_experiment_by_name(name).experiment_id  # a training started beside made it first


def _mark_model_development(experiment_id: str) -> None:
    """Tag the experiment as model development, or the MLflow 3 UI files it under its GenAI view
    (also experiments made before this tag was set); a kind set by hand is kept."""
    client = MlflowClient()
    if KIND_TAG not in client.get_experiment(experiment_id).tags:
        client.set_experiment_tag(experiment_id, KIND_TAG, MODEL_DEVELOPMENT)


def _find_run(run_id: str):
    """The run ``run_id``, or None if the store does not hold it or holds it deleted (as the UI's
    Delete does; MLflow refuses to continue a deleted run)."""
    try:
        run = MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return None if run.info.lifecycle_stage == "deleted" else run


def log_model(model, registered_name: str, card: ModelCard) -> None:
    """Log the trained model in MLflow's Keras flavour and register it as a new version of
    ``registered_name`` (the experiment's name) in the model registry, with a signature (float32
    pixels 0..255 of any batch and size in, per-pixel class probabilities out), so that
    `mlflow models serve -m models:/<name>/<version>` and mlflow.pyfunc load and check it.

    No input example: mlflow.keras writes it before it creates the model's folder and fails
    (MLflow issue 16183, open in MLflow 3.17). The pip requirements are given: inferring them,
    MLflow loads the model in a new Python process, 15 s on a 2-core machine, to find the same
    packages (MLflow adds itself).

    ``card`` goes into the model's folder (``model/aerialseg_card.json``, which ``models:/`` and
    ``runs:/`` URIs download with the model: MLflow saves the Keras model anew, without the card
    of models/model.keras), and its main fields become tags of the registered version, for the
    registry's search and UI.
    """
    import keras  # here, not above: opening a store and logging metrics need no TensorFlow

    channels, classes = model.input_shape[-1], model.output_shape[-1]
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1, channels))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1, classes))]),
    )
    packages = dict.fromkeys(("keras", keras.backend.backend(), "numpy"))  # the numpy backend is numpy
    logged = mlflow.keras.log_model(
        model,
        name="model",
        registered_model_name=registered_name,
        signature=signature,
        pip_requirements=[f"{package}=={version(package)}" for package in packages],
    )
    client = MlflowClient()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / CARD_FILE
        path.write_text(card.to_json())
        client.log_model_artifact(logged.model_id, str(path))
    for key, value in card_tags(card).items():
        client.set_model_version_tag(registered_name, logged.registered_model_version, key, value)


def card_tags(card: ModelCard) -> dict[str, str]:
    """The card's fields a registry user filters models by, as version tags."""
    return {
        "aerialseg.classes": json.dumps([c.name for c in card.classes]),
        "aerialseg.bands": json.dumps(list(card.bands)),
        "aerialseg.pixel_size_m": json.dumps(card.pixel_size_m),
        "aerialseg.window": str(card.window),
    }


def tag_registered_versions(run_id: str, tags: dict[str, float]) -> None:
    """Set ``tags`` on every registered model version logged by the run ``run_id`` (the
    evaluation adds its test scores to the version its training registered)."""
    client = MlflowClient()
    for model_version in client.search_model_versions(f"run_id = '{run_id}'"):
        for key, value in tags.items():
            client.set_model_version_tag(model_version.name, model_version.version, key, str(value))


def git_commit(root: str | Path = ".") -> str | None:
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def flatten(params: dict, prefix: str = "") -> dict[str, str]:
    """Nested params as MLflow's flat key/value pairs: {'train': {'epochs': 5}} -> {'train.epochs': '5'}."""
    flat = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(_plain(value))
    return flat


def _plain(value):
    """``value`` with paths and other objects as their text, so that MLflow shows a list of paths
    as ['/a/b.zip'], not [PosixPath('/a/b.zip')]; numbers, booleans and None keep their Python text."""
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if value is None or isinstance(value, (str, int, float)):
        return value
    return str(value)


def logged_steps(run_id: str, metric: str) -> set[int]:
    return {m.step for m in MlflowClient().get_metric_history(run_id, metric)}


def log_map(image: np.ndarray, key: str, epoch: int) -> None:
    """Log a colour map picture under ``key``, stepped by epoch (shown on MLflow's image slider)."""
    mlflow.log_image(image, key=key, step=epoch)
