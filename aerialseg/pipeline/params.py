"""Typed, validated parameters.

``params.yaml`` is parsed once per stage into these models. An unknown key or a wrong type is
refused with a message that names the key (``train.epochs: Input should be a valid integer``),
so a typo in ``dvc exp run -S`` fails at once instead of being silently ignored.
"""

from __future__ import annotations

import importlib
import string
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from aerialseg.data.palette import IGNORE_COLOUR, Palette
from aerialseg.data.potsdam import BAND_COUNTS, BANDS, TILE_ID
from aerialseg.errors import InputError


def _one_of(module: str, choices: str) -> AfterValidator:
    """Accept the names in ``module.choices``, the one list of them: kept where they are
    implemented, or in aerialseg.pipeline.choices where that module loads Keras.

    The module is imported when params are validated, not when this one is: the resize stage's
    worker processes import this module and never validate; and a stage's code, as dvc.yaml
    tracks it, stays the modules it calls, not every module whose names its params are checked
    against.
    """

    def check(value: str) -> str:
        valid = tuple(getattr(importlib.import_module(module), choices))
        if value not in valid:
            raise ValueError(f"{value!r} is not one of {valid}")
        return value

    return AfterValidator(check)


ModelName = Annotated[str, _one_of("aerialseg.pipeline.choices", "MODELS")]
EncoderName = Annotated[str, _one_of("aerialseg.pipeline.choices", "ENCODERS")]
LossName = Annotated[str, _one_of("aerialseg.pipeline.choices", "LOSSES")]
WindowFunctionName = Annotated[str, _one_of("aerialseg.predict.blending", "WINDOW_FUNCTIONS")]
TtaName = Annotated[str, _one_of("aerialseg.d4", "TTA_SETS")]
BandsName = Annotated[str, _one_of("aerialseg.data.potsdam", "BANDS")]
LabelVariant = Annotated[str, _one_of("aerialseg.data.potsdam", "LABEL_KINDS")]
LayoutName = Annotated[str, _one_of("aerialseg.data.sources", "LAYOUTS")]
LabelEncoding = Annotated[str, _one_of("aerialseg.data.labels", "ENCODINGS")]
DistributionName = Annotated[str, _one_of("aerialseg.pipeline.choices", "DISTRIBUTIONS")]


def _tile_id(value):
    """A tile id is text such as "7_10" or "image_001"; YAML reads an unquoted 7_10 as the number 710."""
    if isinstance(value, int):
        raise ValueError(f'{value} is a number: write tile ids in quotes ("7_10"), YAML reads 7_10 as 710')
    return value


TileId = Annotated[str, BeforeValidator(_tile_id), Field(pattern=rf"^{TILE_ID}$")]
Byte = Annotated[int, Field(ge=0, le=255)]
ModeName = Annotated[str, _one_of("aerialseg.predict.blending", "MODES")]
ModeNames = Annotated[tuple[ModeName, ...], Field(min_length=1)]  # the maps to draw or score: at least one


class ParamsError(InputError, ValueError):
    """params.yaml is not valid; the message names each bad key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RemoteFile(Strict):
    url: str
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")


class SyntheticSource(Strict):
    tiles: int = Field(ge=3, description="at least one tile each for train, val and test")
    size: int = Field(ge=64)
    seed: int = 0


class UrlSource(Strict):
    files: list[RemoteFile] = []


class LocalSource(Strict):
    paths: list[Path] = []


class PairsSource(Strict):
    """data.layout pairs: photos found by a glob, each one's label named from the photo's stem."""

    photos: str = "images/*.tif"
    labels: str = "masks/{stem}.png"
    label_encoding: LabelEncoding = "index"
    label_values: tuple[Byte, ...] | None = None
    ignore_value: Byte | tuple[Byte, Byte, Byte] | None = None
    class_field: str = Field(default="class", min_length=1)  # polygon labels: the attribute that holds the class
    background: str | None = None  # polygon labels: the class of pixels no polygon covers (None: not labelled)

    @field_validator("labels")
    @classmethod
    def _names_the_stem(cls, labels: str) -> str:
        fields = [field for _, field, _, _ in string.Formatter().parse(labels) if field is not None]
        vector_suffixes = importlib.import_module("aerialseg.data.labels").VECTOR_SUFFIXES  # see _one_of
        if fields == [] and Path(labels).suffix.lower() in vector_suffixes:
            return labels  # one vector file of polygons for every photo
        if fields != ["stem"]:
            raise ValueError(
                f"{labels!r} must name each label from its photo's stem with {{stem}} once and no other field, "
                "e.g. 'masks/{stem}.png' (only a vector file of polygons, e.g. 'labels.gpkg', may serve every photo)"
            )
        return labels

    @model_validator(mode="after")
    def _values_are_index_values(self):
        if self.label_values is None:
            return self
        if self.label_encoding != "index":
            raise ValueError("label_values are for label_encoding index; colour labels use the colours of classes")
        if len(set(self.label_values)) != len(self.label_values):
            raise ValueError(f"label_values {list(self.label_values)} give two classes the same value")
        return self

    def class_values(self, num_classes: int) -> tuple[int, ...]:
        """The value of each class in index labels: label_values, or 0, 1, 2, ... by default."""
        return self.label_values or tuple(range(num_classes))


class DataParams(Strict):
    layout: LayoutName = "potsdam"
    source: Literal["synthetic", "url", "local"] = "synthetic"
    bands: BandsName = "rgb"
    exclude: list[TileId] = []
    participants_labels: list[TileId] = []
    ignore_unknown_colours: bool = False
    pixel_size: float | None = Field(default=None, gt=0)  # metres per pixel of photos that carry none
    synthetic: SyntheticSource
    url: UrlSource = UrlSource()
    local: LocalSource = LocalSource()
    pairs: PairsSource = PairsSource()

    @model_validator(mode="after")
    def _pairs_are_local(self):
        """Pairs are a folder the user has: other sources and Potsdam's own keys do not apply."""
        if self.layout != "pairs":
            return self
        if self.source != "local":
            raise ValueError(
                f"data.layout 'pairs' reads the files data.pairs.photos and data.pairs.labels name: set data.source "
                f"to local (it is {self.source!r}), or data.layout to potsdam"
            )
        if self.participants_labels:
            raise ValueError("data.participants_labels is for the potsdam layout: empty it for data.layout 'pairs'")
        if self.ignore_unknown_colours:
            raise ValueError(
                "data.ignore_unknown_colours is for the potsdam layout: for data.layout 'pairs' set it to false and "
                "mark unlabelled pixels with data.pairs.ignore_value"
            )
        return self

    @model_validator(mode="after")
    def _vaihingen_is_irrg(self):
        """Vaihingen's photos are one band set, infrared, red, green: there is no other to read."""
        if self.layout != "vaihingen":
            return self
        if self.bands != "irrg":
            raise ValueError(
                f"data.bands is {self.bands!r}, but Vaihingen's photos are IRRG (infrared, red, green) only: set "
                "data.bands to irrg for data.layout 'vaihingen'"
            )
        if self.participants_labels:
            raise ValueError("data.participants_labels is for the potsdam layout: empty it for data.layout 'vaihingen'")
        return self


class ResizeParams(Strict):
    scale: float | None = Field(default=None, gt=0)
    size: tuple[int, int] | None = None
    pixel_size: float | None = Field(default=None, gt=0)  # metres per pixel, whatever each photo's own

    @model_validator(mode="after")
    def _one_way_to_resize(self):
        """Two ways at once would leave one of them silently unused."""
        if self.size is not None and any(side < 1 for side in self.size):
            raise ValueError("size must be two positive integers [height, width]")
        chosen = [f"resize.{key}" for key in ("scale", "size", "pixel_size") if getattr(self, key) is not None]
        if len(chosen) != 1:
            raise ValueError(
                f"set exactly one of resize.scale, resize.size and resize.pixel_size, the others null "
                f"(set: {', '.join(chosen) or 'none'})"
            )
        return self


class SplitParams(Strict):
    train: list[TileId] = []
    val: list[TileId] = []
    test: list[TileId] = []
    val_fraction: float = Field(default=0.2, ge=0, lt=1)
    test_fraction: float = Field(default=0.2, ge=0, lt=1)
    seed: int = 0


class PatchParams(Strict):
    patch_size: int = Field(ge=16, multiple_of=16, description="the U-Net halves it four times")
    step: int = Field(ge=1)
    edge: Literal["crop", "reflect"] = "reflect"
    split: SplitParams = SplitParams()


class TrainParams(Strict):
    model: ModelName = "unet"
    encoder: EncoderName = "none"
    encoder_weights: str = "none"
    freeze_encoder_epochs: int = Field(default=0, ge=0)
    base_filters: int = Field(default=16, ge=1)
    batch_norm: bool = True
    dropout: float = Field(default=0.0, ge=0, lt=1)
    loss: LossName = "dice_focal"
    class_weights: bool = False
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    augment: bool = True
    seed: int = 0
    snapshot_every: int = Field(ge=1)
    snapshot_modes: ModeNames = ("plain", "smooth")
    mixed_precision: bool = False
    jit_compile: Literal["auto"] | bool = "auto"
    distribution: DistributionName = "none"

    @model_validator(mode="after")
    def _consistent(self):
        if self.freeze_encoder_epochs and self.encoder == "none":
            raise ValueError("freeze_encoder_epochs needs a pretrained encoder (encoder is 'none')")
        if self.freeze_encoder_epochs >= self.epochs:
            raise ValueError(
                f"freeze_encoder_epochs ({self.freeze_encoder_epochs}) must be below epochs "
                f"({self.epochs}), or the encoder is never fine-tuned"
            )
        if self.snapshot_every > self.epochs:
            raise ValueError(
                f"snapshot_every ({self.snapshot_every}) is larger than epochs ({self.epochs}): "
                "no snapshot would ever be taken"
            )
        return self


class MlflowParams(Strict):
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "aerialseg"


class PredictParams(Strict):
    subdivisions: int = Field(default=2, ge=1)
    window_function: WindowFunctionName = "spline"
    tta: TtaName = "d4"
    batch_size: int = Field(default=16, ge=1)


class EvaluateParams(Strict):
    labels: LabelVariant = "full"
    erode_radius: int = Field(default=0, ge=0)
    without_classes: tuple[str, ...] = ("clutter",)
    snapshots: Literal["all", "last", "none"] = "all"
    snapshot_modes: ModeNames = ("plain", "smooth")


class ReportParams(Strict):
    video_fps: float = Field(default=2, gt=0)


class Params(Strict):
    classes: dict[str, tuple[int, int, int]]
    data: DataParams
    resize: ResizeParams
    patches: PatchParams
    train: TrainParams
    mlflow: MlflowParams = MlflowParams()
    predict: PredictParams = PredictParams()
    evaluate: EvaluateParams = EvaluateParams()
    report: ReportParams = ReportParams()

    @field_validator("classes")
    @classmethod
    def _colours_are_bytes(cls, classes):
        for name, colour in classes.items():
            if not all(0 <= c <= 255 for c in colour):
                raise ValueError(f"{name}: colour components must be 0..255, got {colour}")
        return classes

    @field_validator("classes")
    @classmethod
    def _black_is_no_class(cls, classes):
        """Black marks ignored pixels in every stored label (boundaries, unlabelled pixels)."""
        black = [name for name, colour in classes.items() if colour == IGNORE_COLOUR]
        if black:
            raise ValueError(
                f"{black[0]}: {list(IGNORE_COLOUR)} (black) marks pixels without a label (boundaries, the ignore "
                "value); give the class another colour"
            )
        return classes

    @field_validator("classes")
    @classmethod
    def _one_colour_per_class(cls, classes):
        """Checked here, not only by Palette, so that the message names the key and the classes."""
        if not classes:
            raise ValueError("at least one class is needed, as name: [R, G, B] (its colour in the label pictures)")
        names_by_colour = defaultdict(list)
        for name, colour in classes.items():
            names_by_colour[colour].append(name)
        clashes = [
            f"{_listed(names)} have the same colour {colour}"
            for colour, names in names_by_colour.items()
            if len(names) > 1
        ]
        if clashes:
            raise ValueError("; ".join(clashes) + ": a label colour can mean one class only, give each its own")
        return classes

    @model_validator(mode="after")
    def _scored_classes_exist(self):
        unknown = [name for name in self.evaluate.without_classes if name not in self.classes]
        if unknown:
            raise ValueError(f"evaluate.without_classes: {unknown} are not among the classes {list(self.classes)}")
        return self

    @model_validator(mode="after")
    def _bands_fit_the_encoder(self):
        bands = BAND_COUNTS[BANDS[self.data.bands]]
        if self.train.encoder != "none" and bands != 3:
            raise ValueError(
                f"data.bands {self.data.bands!r} has {bands} bands, but a pretrained encoder "
                f"({self.train.encoder!r}) takes 3 (its ImageNet weights are for RGB): set train.encoder to "
                "'none' (the classic U-Net takes any number of bands), or data.bands to 'rgb' or 'irrg'"
            )
        return self

    @model_validator(mode="after")
    def _pairs_fit_the_classes(self):
        """The index values and the ignore value are checked against the classes they must fit."""
        data = self.data
        if data.layout != "pairs":
            return self
        pairs, classes = data.pairs, len(self.classes)
        if pairs.label_values is not None and len(pairs.label_values) != classes:
            raise ValueError(
                f"data.pairs.label_values has {len(pairs.label_values)} value(s) but there are {classes} classes: "
                f"give the value of each of {list(self.classes)}, in that order"
            )
        problem = _ignore_value_problem(pairs, self.classes)
        if problem:
            raise ValueError(f"data.pairs.ignore_value {_yaml(pairs.ignore_value)}: {problem}")
        if pairs.background is not None and pairs.background not in self.classes:
            raise ValueError(
                f"data.pairs.background {pairs.background!r} is not among the classes {list(self.classes)}: name one "
                "of them, or null to leave pixels no polygon covers unlabelled"
            )
        return self

    @model_validator(mode="after")
    def _subdivisions_fit_the_window(self):
        if self.predict.subdivisions > self.patches.patch_size:
            raise ValueError(
                f"predict.subdivisions {self.predict.subdivisions} is more than patches.patch_size "
                f"{self.patches.patch_size}: a window cannot step by less than a pixel (2 is 50 % overlap)"
            )
        return self

    @model_validator(mode="after")
    def _excluded_tiles_are_not_split(self):
        split = self.patches.split
        listed = {tile: name for name in ("train", "val", "test") for tile in getattr(split, name)}
        clashes = [f"{tile} (in patches.split.{listed[tile]})" for tile in self.data.exclude if tile in listed]
        if clashes:
            raise ValueError(f"data.exclude leaves out tile(s) that the split lists: {', '.join(clashes)}")
        return self

    @model_validator(mode="after")
    def _patches_fit_the_encoder(self):
        if self.train.encoder != "none" and self.patches.patch_size % 32:
            raise ValueError(
                f"patches.patch_size ({self.patches.patch_size}) must be a multiple of 32 for "
                f"encoder {self.train.encoder!r} (its total stride)"
            )
        return self

    @property
    def palette(self) -> Palette:
        return Palette(tuple(self.classes), tuple(self.classes.values()))


def _ignore_value_problem(pairs: PairsSource, classes: dict[str, tuple[int, int, int]]) -> str | None:
    """Why the ignore value cannot mark unlabelled pixels in labels of this encoding; None if it can."""
    ignore = pairs.ignore_value
    if ignore is None:
        return None
    if pairs.label_encoding == "index":
        values = pairs.class_values(len(classes))
        if isinstance(ignore, int) and ignore not in values:
            return None
        return f"index labels need a value that is no class's (the classes are {list(values)}), or null"
    named = [name for name, colour in classes.items() if colour == ignore]
    if isinstance(ignore, tuple) and not named:
        return None
    owner = f" ({named[0]} has it)" if named else ""
    return f"colour labels need an [R, G, B] colour that is no class's{owner}, or null"


def _yaml(value) -> str:
    """A value as params.yaml writes it: [0, 0, 0] rather than the tuple (0, 0, 0)."""
    return str(list(value)) if isinstance(value, tuple) else str(value)


def _listed(names: list[str]) -> str:
    return f"{', '.join(names[:-1])} and {names[-1]}"


def parse_params(raw: dict, source: str = "params.yaml") -> Params:
    """Validate a params dictionary; every problem is reported on its own line with its dotted key."""
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ParamsError("\n".join(_describe(problem, source) for problem in error.errors())) from None


def _describe(problem: dict, source: str) -> str:
    """``params.yaml: train.epoch: unknown key (valid keys: ...)``; checks across keys name their keys."""
    key = ".".join(str(part) for part in problem["loc"])
    message = problem["msg"].removeprefix("Value error, ")
    if problem["type"] == "extra_forbidden":
        message = f"unknown key (valid keys here: {', '.join(_keys_at(problem['loc'][:-1]))})"
    return f"{source}: {key}: {message}" if key else f"{source}: {message}"


def _keys_at(location: tuple) -> list[str]:
    """The parameter names allowed in the section at ``location`` (a path of keys from the top)."""
    model = Params
    for part in location:
        model = model.model_fields[part].annotation
    return list(model.model_fields)


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: no such file")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    return parse_params(raw, str(path))
