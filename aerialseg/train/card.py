"""The model card: what a trained model means, saved inside the model file itself.

A model's output is class indices, and its input photos of some bands at some ground resolution;
without the params.yaml it was trained with, nobody can tell which. The card says it, and travels
inside every file the model is kept in, so a model copied alone still maps photos:

- ``.keras`` (the train stage's model): ``aerialseg_card.json`` in the zip, beside Keras' files;
- ``.weights.h5`` (a snapshot): the HDF5 attribute ``aerialseg_card`` of the root group;
- ``.onnx`` (aerialseg-export): the ONNX ``metadata_props`` entry ``aerialseg_card``;
- a SavedModel folder (aerialseg-export): ``assets/aerialseg_card.json``; an MLflow model folder
  (the registered model): ``aerialseg_card.json``.

No Keras or TensorFlow here, and h5py, ONNX and onnxruntime only when a card is read from or
written to their files: an install that only runs ONNX models must read cards too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from aerialseg.data.palette import Palette
from aerialseg.data.potsdam import BAND_ORDER, BANDS
from aerialseg.errors import InputError, first_line
from aerialseg.pipeline.atomic import atomic_file, write_json

if TYPE_CHECKING:
    from aerialseg.pipeline.params import Params

CARD_VERSION = 1
CARD_FILE = "aerialseg_card.json"  # in a .keras zip, a SavedModel's assets/, an MLflow model folder
CARD_KEY = "aerialseg_card"  # HDF5 attribute, ONNX metadata_props key
INPUT_SCALE = "uint8 values as float32, 0..255"  # as read from 8-bit photos; the model scales them itself


class MissingCardError(InputError):
    """A model file without a card (saved before cards existed, or by other code)."""


@dataclasses.dataclass(frozen=True)
class ModelClass:
    """One output class: its name, its colour in label pictures and maps, its index in the output."""

    name: str
    colour: tuple[int, int, int]
    value: int


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """What a model takes, what it gives and what it was trained on (see the module docstring)."""

    classes: tuple[ModelClass, ...]  # in output order: classes[i].value == i
    bands: tuple[str, ...]  # input bands by name, in input order (R, G, B, IR)
    input_scale: str
    pixel_size_m: float | None  # metres per pixel of the training photos; None if unknown
    window: int  # side of the patches it was trained on, the windows prediction uses
    predict: dict  # aerialseg.pipeline.params.PredictParams fields: the prediction settings to use
    params_hash: str | None  # sha256 of the training's params (canonical JSON)
    data_version: str | None  # dvc.lock's md5 of data/patches
    git_commit: str | None
    card_version: int = CARD_VERSION

    @property
    def palette(self) -> Palette:
        return Palette(tuple(c.name for c in self.classes), tuple(c.colour for c in self.classes))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str, source: str | Path) -> ModelCard:
        """The card in ``text``; a card this version cannot read is an error naming ``source``."""
        try:
            data = json.loads(text)
            if data.get("card_version") != CARD_VERSION:
                raise ValueError(f"card_version {data.get('card_version')!r}, this aerialseg reads {CARD_VERSION}")
            classes = tuple(ModelClass(c["name"], tuple(c["colour"]), c["value"]) for c in data.pop("classes"))
            return cls(classes=classes, **{**data, "bands": tuple(data["bands"])})
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise InputError(f"{source}: unreadable model card ({error}) (use a model saved by aerialseg)") from error

    def describe(self) -> str:
        """The card as readable text, one field a line."""
        fields = dataclasses.asdict(self)
        fields["classes"] = "; ".join(f"{c.value} {c.name} {list(c.colour)}" for c in self.classes)
        fields["bands"] = ", ".join(self.bands)
        fields["predict"] = ", ".join(f"{key}={value}" for key, value in self.predict.items())
        return "\n".join(f"{key}: {value}" for key, value in fields.items())


def card_from_params(
    params: Params, pixel_size_m: float | None, data_version: str | None = None, git_commit: str | None = None
) -> ModelCard:
    """The card of a model trained with ``params`` on photos of ``pixel_size_m`` metres per pixel."""
    palette = params.palette
    return ModelCard(
        classes=tuple(ModelClass(n, tuple(c), i) for i, (n, c) in enumerate(zip(palette.names, palette.colours))),
        bands=BAND_ORDER[BANDS[params.data.bands]],
        input_scale=INPUT_SCALE,
        pixel_size_m=pixel_size_m,
        window=params.patches.patch_size,
        predict=params.predict.model_dump(mode="json"),
        params_hash=params_hash(params),
        data_version=data_version,
        git_commit=git_commit,
    )


def params_hash(params: Params) -> str:
    """sha256 of the params as canonical JSON (sorted keys, no spaces): equal params, equal hash."""
    canonical = json.dumps(params.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def data_version(root: str | Path) -> str | None:
    """dvc.lock's md5 of data/patches (DVC writes dvc.lock after each stage, so during the train
    stage it holds the patches being trained on); None outside a DVC run that made them."""
    lock = Path(root) / "dvc.lock"
    if not lock.is_file():
        return None
    outs = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).get("patches", {}).get("outs", [])
    return next((out.get("md5") for out in outs if out.get("path") == "data/patches"), None)


def write_card(path: str | Path, card: ModelCard) -> None:
    """Put ``card`` into the model saved at ``path`` (replacing any card it has); see the module docstring."""
    path = Path(path)
    if path.is_dir():
        write_json(path / "assets" / CARD_FILE, json.loads(card.to_json()))
    elif path.name.endswith(".h5"):
        _write_h5(path, card)
    elif path.suffix == ".onnx":
        _write_onnx(path, card)
    else:
        _write_keras(path, card)


def read_card(path: str | Path, name: str | None = None) -> ModelCard:
    """The card inside the model at ``path``; MissingCardError if it has none. Errors name the
    model ``name`` if given (the URI of a model downloaded from MLflow), else ``path``."""
    path = Path(path)
    name = name or str(path)
    if path.is_dir():
        text = next((f.read_text() for f in (path / "assets" / CARD_FILE, path / CARD_FILE) if f.is_file()), None)
    elif not path.is_file():
        raise InputError(
            f"{name}: no such model file (train one with `dvc repro`, or pass a .keras or .onnx file or an MLflow "
            "model URI)"
        )
    elif path.name.endswith(".h5"):
        text = _read_h5(path)
    elif path.suffix == ".onnx":
        text = _read_onnx(path)
    else:
        text = _read_keras(path)
    if text is None:
        raise MissingCardError(
            f"{name}: the model carries no model card, so its classes and window are unknown (pass --params with "
            "the params.yaml it was trained with)"
        )
    return ModelCard.from_json(text, name)


def _write_keras(path: Path, card: ModelCard) -> None:
    """A .keras file is a zip: copy its members and add the card, into a file renamed into place."""
    with atomic_file(path) as tmp, zipfile.ZipFile(path) as source, zipfile.ZipFile(tmp, "w") as target:
        for member in source.infolist():
            if member.filename != CARD_FILE:
                with source.open(member) as data, target.open(member, "w") as copy:
                    shutil.copyfileobj(data, copy, 1 << 20)
        target.writestr(CARD_FILE, card.to_json(), zipfile.ZIP_DEFLATED)


def _read_keras(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.read(CARD_FILE).decode() if CARD_FILE in archive.namelist() else None
    except zipfile.BadZipFile as error:
        raise InputError(
            f"{path}: not a Keras model ({error}) (pass a .keras file saved by the train stage)"
        ) from error


def _write_h5(path: Path, card: ModelCard) -> None:
    """In place: the snapshot writer calls this on the temporary file it then renames."""
    import h5py

    with h5py.File(path, "r+") as weights:
        weights.attrs[CARD_KEY] = card.to_json()


def _read_h5(path: Path) -> str | None:
    import h5py

    with h5py.File(path, "r") as weights:
        return weights.attrs.get(CARD_KEY)


def _write_onnx(path: Path, card: ModelCard) -> None:
    import onnx

    model = onnx.load(path)
    kept = [prop for prop in model.metadata_props if prop.key != CARD_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend([*kept, onnx.StringStringEntryProto(key=CARD_KEY, value=card.to_json())])
    with atomic_file(path) as tmp:
        onnx.save(model, tmp)


def _read_onnx(path: Path) -> str | None:
    """Through onnxruntime, which runs the file (the ``onnx`` package may not be installed)."""
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own types for files it cannot load
        raise InputError(
            f"{path}: not an ONNX model ({first_line(error)}) (pass a .onnx file of aerialseg-export)"
        ) from error
    return session.get_modelmeta().custom_metadata_map.get(CARD_KEY)
