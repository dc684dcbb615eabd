"""Where aerialseg-predict's model comes from: a file, or a model in an MLflow tracking store.

``--model`` is a .keras or .onnx file, or an MLflow model URI: ``models:/<name>/<version>``,
``models:/<name>@<alias>`` or ``runs:/<run id>/model``. A URI is resolved against the tracking
store of params.yaml's ``mlflow.tracking_uri`` (``--params``, else ./params.yaml, else the
default), or MLFLOW_TRACKING_URI, which wins as in the pipeline (aerialseg.pipeline.tracking),
and downloaded into a temporary folder: the MLflow model folder that the train stage logged,
with the Keras model in ``data/model.keras`` and the card beside it (aerialseg.train.card).

What the model means comes from its card, for aerialseg-predict, aerialseg-export and the predict
stage alike (:func:`model_card`, :func:`prediction_settings`): its classes, bands and window, which
a params.yaml may not contradict, and its ``predict`` settings, which a params.yaml may change.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from pydantic import ValidationError

from aerialseg.data.palette import Palette
from aerialseg.errors import InputError, first_line, needing_extra
from aerialseg.pipeline.params import MlflowParams, Params, PredictParams, load_params
from aerialseg.train.card import MissingCardError, ModelCard, card_from_params, read_card

URI_SCHEMES = ("models:/", "runs:/")
KERAS_IN_MLFLOW = Path("data") / "model.keras"  # where MLflow's Keras flavour keeps the model


class ModelSource(NamedTuple):
    """A model to map with: the file to load and the file or folder holding its card (the same,
    except for an MLflow model folder), and the name errors give it (the URI for a download)."""

    file: Path
    card_path: Path
    name: str

    @classmethod
    def of_file(cls, path: str | Path) -> ModelSource:
        """A model file, which holds its own card."""
        return cls(Path(path), Path(path), str(path))

    def card(self) -> ModelCard:
        return read_card(self.card_path, self.name)


class KnownCard(NamedTuple):
    """A model's card, and whether the model carries it or it was built from params.yaml (a
    model saved before cards carries none), so that ``--describe`` can say which."""

    card: ModelCard
    from_params: bool


def is_model_uri(model: str) -> bool:
    return model.startswith(URI_SCHEMES)


def model_source(model: str, params: Path | None, downloads: Path) -> ModelSource:
    """``model`` (a path or a URI) as a file; a URI's model is downloaded into ``downloads``."""
    if not is_model_uri(model):
        return ModelSource.of_file(model)
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


def model_card(source: ModelSource, params: Params | None, params_path: Path | None, advice: str) -> KnownCard:
    """The model's card, whose classes ``params`` (read from ``params_path``) must not contradict:
    a mismatch is one line naming both lists and ending in ``advice``. For a model without a card
    (saved before cards), the card ``params`` gives it, or MissingCardError if there is none."""
    try:
        card = source.card()
    except MissingCardError:
        if params is None:
            raise
        return KnownCard(card_from_params(params, pixel_size_m=None), from_params=True)
    if params is not None and params.palette != card.palette:
        raise InputError(
            f"{params_path}: its classes {_classes(params.palette)} are not the classes of model {source.name}, "
            f"{_classes(card.palette)} ({advice})"
        )
    return KnownCard(card, from_params=False)


def _classes(palette: Palette) -> str:
    return "[" + ", ".join(f"{name} {list(colour)}" for name, colour in zip(palette.names, palette.colours)) + "]"


def prediction_settings(card: ModelCard, params: Params | None, given: dict, model: str) -> PredictParams:
    """The card's ``predict`` settings, changed by those ``params`` sets itself (a params.yaml
    without a ``predict`` section, or with some of its keys, leaves the others as the card has
    them, not at their defaults), then by ``given`` (the command line's). A card whose settings
    are not valid (written by another version, or edited) is one line naming ``model``."""
    from_params = params.predict.model_dump(exclude_unset=True) if params else {}
    try:
        return PredictParams(**{**card.predict, **from_params, **given})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise InputError(f"{model}: its card's predict settings are not valid ({problems})") from error
