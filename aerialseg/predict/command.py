"""aerialseg-predict: map aerial photos of any size with a trained model into georeferenced COGs.

    aerialseg-predict [--model models/model.keras|model.onnx|models:/aerialseg/3] --out DIR
                      [--mode plain|smooth] [--probabilities] [--vector [--simplify METRES]]
                      [--overwrite] [--pixel-size M] [--bands IR,R,G] INPUT...
    aerialseg-predict --describe [--model ...] [--params params.yaml]

Each INPUT (a raster file, a folder of them, or a glob) becomes DIR/<input name>.tif, a
Cloud-Optimized GeoTIFF of class indices on the input's grid and in its CRS, coloured by the
class colours; ``--probabilities`` adds DIR/<input name>_probabilities.tif, and ``--vector``
DIR/<input name>.gpkg, one polygon per region of a class (aerialseg.predict.vectorise). The
classes, bands, ground resolution, window and ``predict`` settings come from the model's card
(aerialseg.train.card); the settings that ``--params``' ``predict`` section sets, and then the
options here, may change the settings only (a model without a card takes all from ``--params``).
``--model`` may be an MLflow model URI (aerialseg.predict.model_source). Everything that can be
checked is checked before the first photo is started (inputs, outputs, params, model, every
photo's bands); an error is one line, ``error: <file>: <what is wrong> (<what to do>)``, and a
non-zero exit.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import math
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

from aerialseg.d4 import TTA_SETS
from aerialseg.errors import InputError, MissingFileError
from aerialseg.pipeline.params import Params, PredictParams, load_params
from aerialseg.predict.blending import MODES, WINDOW_FUNCTIONS, Blending
from aerialseg.predict.model_source import ModelSource, model_card, model_source, prediction_settings
from aerialseg.predict.outputs import writable_folder
from aerialseg.raster.bands import parse_bands
from aerialseg.raster.streaming import RASTER_SUFFIXES
from aerialseg.train.card import ModelCard

PARAMS_ADVICE = "leave out --params, or pass the params.yaml the model was trained with"  # classes that differ


class MapFiles(NamedTuple):
    """Where one input's maps go: the class-index COG and, if asked for, the probability COG and
    the GeoPackage of polygons."""

    index: Path
    probabilities: Path | None
    vector: Path | None = None

    def paths(self) -> list[Path]:
        return [path for path in self if path]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aerialseg-predict",
        description="Map aerial photos of any size with a trained model into georeferenced Cloud-Optimized GeoTIFFs.",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="raster files, folders of them, or globs ('tiles/*.tif')")
    p.add_argument("--out", type=Path, metavar="DIR", help="folder for DIR/<input name>.tif (required with INPUT)")
    p.add_argument(
        "--model",
        default="models/model.keras",
        help=".keras or .onnx file, or MLflow model URI (models:/NAME/VERSION, models:/NAME@ALIAS, "
        "runs:/RUN_ID/model); default: %(default)s",
    )
    p.add_argument("--describe", action="store_true", help="print the model's card and exit")
    p.add_argument("--mode", choices=MODES, default="smooth", help="default: %(default)s")
    p.add_argument("--probabilities", action="store_true", help="also write <name>_probabilities.tif")
    p.add_argument("--vector", action="store_true", help="also write <name>.gpkg, one polygon per region of a class")
    p.add_argument("--simplify", metavar="METRES", help="with --vector: simplify polygons by METRES")
    p.add_argument("--overwrite", action="store_true", help="replace maps that already exist")
    p.add_argument(
        "--params",
        type=Path,
        help="params.yaml: the predict settings it sets (and classes and window of a model without a card)",
    )
    p.add_argument("--subdivisions", type=_positive, help="smooth window overlap, 2 = 50%% (default: the card's)")
    p.add_argument("--window-function", choices=WINDOW_FUNCTIONS, help="smooth blending weights (default: the card's)")
    p.add_argument("--tta", choices=tuple(TTA_SETS), help="test-time augmentation of smooth mode (default: the card's)")
    p.add_argument("--batch-size", type=_positive, help="windows per forward pass (default: the card's)")
    p.add_argument("--pixel-size", metavar="M", help="metres per pixel of inputs whose georeferencing does not say")
    p.add_argument("--bands", metavar="IR,R,G", help="the inputs' bands in file order (default: the files' names)")
    return p


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def positive_metres(option: str, text: str | None, meaning: str, example: str) -> float | None:
    """``option``'s value ``text`` (None: not given) in metres: a positive finite number."""
    if text is None:
        return None
    try:
        metres = float(text)
    except ValueError:
        metres = math.nan
    if not (math.isfinite(metres) and metres > 0):
        raise InputError(f"{option} {text!r}: expected {meaning}, a positive number (e.g. {example})")
    return metres


def main(argv: list[str] | None = None) -> int:
    arguments = parser()
    args = arguments.parse_args(argv)
    if not args.describe and not (args.inputs and args.out):
        arguments.error("give INPUT... and --out DIR (or --describe)")
    if args.simplify and not args.vector:
        arguments.error("--simplify needs --vector (it simplifies the polygons)")
    try:
        run(args)
    except InputError as error:  # names the file, what is wrong and what to do; anything else is a bug
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted (maps finished so far are complete; no half map is left)", file=sys.stderr)
        return 130
    return 0


def one_line(error: Exception) -> str:
    """A multi-line message (params.yaml lists every bad key) joined into one line."""
    return "; ".join(line.strip() for line in str(error).strip().splitlines()) or type(error).__name__


def run(args: argparse.Namespace) -> None:
    """Check everything that can be checked cheaply, then load the model, then map each input."""
    with tempfile.TemporaryDirectory(prefix="aerialseg-model-") as downloads:
        if args.describe:
            print(describe(args.model, args.params, Path(downloads)))
            return
        inputs = find_inputs(args.inputs)
        photos = dict(
            photo_pixel_size_m=positive_metres("--pixel-size", args.pixel_size, "the photos' metres per pixel", "0.05"),
            photo_bands=None if args.bands is None else parse_bands(args.bands),
        )
        simplify = positive_metres("--simplify", args.simplify, "the metres a polygon's edge may move", "0.5")
        files = plan_outputs(inputs, args.out, args.probabilities, args.overwrite, args.vector)
        if args.vector:
            from aerialseg.predict import vectorise  # pyogrio imports pandas: here, so that --help answers at once

            for photo in inputs:  # a photo without a projected CRS has no areas in square metres
                vectorise.photo_grid(photo)
        params = read_params(args.params) if args.params else None
        source = model_source(args.model, args.params, Path(downloads))
        card = model_card(source, params, args.params, PARAMS_ADVICE).card
        blending = blending_of(card, params, args)
        from aerialseg.predict import mapping  # rasterio and the runtimes: here, so that --help answers at once

        predictor = mapping.load_predictor(source.file, len(card.classes), blending.window)
        photos |= model_input(card, source, predictor.channels)
        for photo in inputs:
            for note in mapping.photo_notes(photo, **photos):
                print(f"note: {note}", file=sys.stderr)
        for photo, output in zip(inputs, files):
            with row_writers(photo, output, card.palette.names, simplify or 0.0) as writers:
                mapping.map_raster(
                    photo,
                    output.index,
                    predictor,
                    card.palette,
                    blending,
                    probabilities_path=output.probabilities,
                    row_writers=writers,
                    **photos,
                )
            print(f"{photo} -> {', '.join(str(path) for path in output.paths())}")


def describe(model: str, params_path: Path | None, downloads: Path) -> str:
    """``--describe``: the model's card, one field a line; for a model without a card, the card
    ``--params`` gives it, said so on the first line (it is not the model's own)."""
    params = read_params(params_path) if params_path else None
    known = model_card(model_source(model, params_path, downloads), params, params_path, PARAMS_ADVICE)
    origin = f" (it carries no card: this one is built from --params {params_path})" if known.from_params else ""
    return f"model: {model}{origin}\n{known.card.describe()}"


def model_input(card: ModelCard, source: ModelSource, channels: int) -> dict:
    """The bands and ground resolution the model was trained on, from its card; a card whose bands
    are not the model's input is refused (a card copied onto another model)."""
    if len(card.bands) != channels:
        raise InputError(
            f"{source.name}: takes {channels} bands, but its card names {len(card.bands)} ({', '.join(card.bands)}) "
            "(the card belongs to another model: train or export it again)"
        )
    return dict(model_pixel_size_m=card.pixel_size_m, model_bands=card.bands)


def blending_of(card: ModelCard, params: Params | None, args: argparse.Namespace) -> Blending:
    """How the windows are blended: the card's settings changed by ``--params`` and the options, on
    the card's window, in ``--mode``."""
    settings = prediction_settings(card, params, _given(args, PredictParams.model_fields), args.model)
    try:
        return Blending.from_params(settings, card.window, args.mode)
    except ValueError as error:  # settings that do not fit the window, e.g. more subdivisions than pixels
        raise InputError(f"{args.model}: {error} (the model's window is {card.window} px)") from error


@contextlib.contextmanager
def row_writers(photo: Path, output: MapFiles, classes, simplify: float):
    """Writers fed the class-index rows of ``photo`` besides its COG: its polygons, with --vector."""
    if not output.vector:
        yield []
        return
    from aerialseg.predict import vectorise

    with vectorise.photo_vector_writer(photo, output.vector, classes, simplify) as write:
        yield [write]


def _given(args: argparse.Namespace, names) -> dict:
    """The ``predict`` settings given on the command line (the others come from the card or --params)."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def find_inputs(patterns: list[str]) -> list[Path]:
    """Raster files named by ``patterns``: files, folders (their raster files, not recursing), or
    globs (``**`` recurses); each once, in the order given. Nothing found for one is an error."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        found.update(dict.fromkeys(_expand(pattern)))
    return list(found)


def _expand(pattern: str) -> list[Path]:
    path = Path(pattern)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES)
        if not files:
            raise InputError(f"{path}: no raster files ({', '.join(RASTER_SUFFIXES)}) in this folder (give files)")
        return files
    if path.exists() or not any(character in pattern for character in "*?["):
        if not path.is_file():
            raise MissingFileError(f"{path}: no such file or folder (check the path)")
        return [path]
    files = sorted(Path(match) for match in glob.glob(pattern, recursive=True) if Path(match).is_file())
    if not files:
        raise MissingFileError(f"{pattern}: no file matches this pattern (check it)")
    return files


def read_params(path: Path) -> Params:
    """``--params``: its ``predict`` settings, and the classes and window of a model without a card."""
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file (check the path given with --params)")
    return load_params(path)


def plan_outputs(
    inputs: list[Path], out: Path, probabilities: bool, overwrite: bool, vector: bool = False
) -> list[MapFiles]:
    """Output files of each input, after checking that the folder can be written and that no map
    would replace another map, an existing file (without ``overwrite``) or an input."""
    writable_folder(out, "maps")
    planned = [
        MapFiles(
            out / f"{photo.stem}.tif",
            out / f"{photo.stem}_probabilities.tif" if probabilities else None,
            out / f"{photo.stem}.gpkg" if vector else None,
        )
        for photo in inputs
    ]
    owners: dict[Path, Path] = {}
    sources = {photo.resolve() for photo in inputs}
    for photo, files in zip(inputs, planned):
        for path in files.paths():
            if path in owners:
                raise InputError(
                    f"{path}: would be the map of both {owners[path]} and {photo} (give inputs different names, "
                    "or map them into different --out folders)"
                )
            owners[path] = photo
            if path.resolve() in sources:
                raise InputError(f"{path}: is an input and would be replaced by a map (choose another --out folder)")
            if path.exists() and not overwrite:
                raise InputError(f"{path}: already exists (pass --overwrite to replace it)")
    return planned


if __name__ == "__main__":
    sys.exit(main())
