"""Where aerialseg-predict's model comes from: a file, or a model in an MLflow tracking store.

``--model`` is a .keras or .onnx file, or an MLflow model URI: ``models:/<name>/<version>``,
``models:/<name>@<alias>`` or ``runs:/<run id>/model``. A URI is resolved against the tracking
store of params.yaml's ``mlflow.tracking_uri`` (``--params``, else ./params.yaml, else the
default), or MLFLOW_TRACKING_URI, which wins as in the pipeline (aerialseg.pipeline.tracking),
and downloaded into a temporary folder: the MLflow model folder that the train stage logged,
with the Keras model in ``data/model.keras`` and the card beside it (aerialseg.train.card).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from aerialseg.errors import InputError, first_line, needing_extra
from aerialseg.pipeline.params import MlflowParams, load_params
from aerialseg.train.card import ModelCard, read_card

URI_SCHEMES = ("models:/", "runs:/")
KERAS_IN_MLFLOW = Path("data") / "model.keras"  # where MLflow's Keras flavour keeps the model


class ModelSource(NamedTuple):
    """A model to map with: the file to load and the file or folder holding its card (the same,
    except for an MLflow model folder), and the name errors give it (the URI for a download)."""

    file: Path
    card_path: Path
    name: str

    def card(self) -> ModelCard:
        return read_card(self.card_path, self.name)


def is_model_uri(model: str) -> bool:
    return model.startswith(URI_SCHEMES)


def model_source(model: str, params: Path | None, downloads: Path) -> ModelSource:
    """``model`` (a path or a URI) as a file; a URI's model is downloaded into ``downloads``."""
    if not is_model_uri(model):
        return ModelSource(Path(model), Path(model), model)
    folder = download_model(model, params, downloads)
    return ModelSource(folder / KERAS_IN_MLFLOW, folder, model)


def download_model(uri: str, params: Path | None, downloads: Path) -> Path:
    """The MLflow model folder of ``uri``; a URI the store cannot resolve is one line naming it
    and the tracking URI used, as the store is the likeliest thing to be wrong. A relative store
    path is taken from the folder of the params.yaml that names it, as the pipeline does."""
    with needing_extra("train", uri, "an MLflow model URI needs MLflow", "give the model's file"):
        import mlflow

    from aerialseg.pipeline import tracking

    params = params or Path("params.yaml")
    tracking_uri, origin = tracking.tracking_uri_and_origin(_params_tracking_uri(params), params.resolve().parent)
    database = tracking.sqlite_path(tracking_uri)
    try:
        if database and not database.is_file():  # opening it would create an empty store
            raise FileNotFoundError(f"no such file {database}")
        mlflow.set_tracking_uri(tracking_uri)
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(downloads)))
    except Exception as error:  # whatever the store raises (MLflow, SQLAlchemy, OS, HTTP...)
        raise InputError(
            f"{uri}: not found in MLflow tracking store {tracking_uri} (from {origin}): {first_line(error)} "
            f"(check the name, version, alias or run id, or point {tracking.ENV_URI} or --params' "
            "mlflow.tracking_uri at its store)"
        ) from error


def _params_tracking_uri(params: Path) -> str:
    """mlflow.tracking_uri of ``params`` (--params, or ./params.yaml) if it is there, else the default."""
    return load_params(params).mlflow.tracking_uri if params.is_file() else MlflowParams().tracking_uri
