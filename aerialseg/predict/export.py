"""aerialseg-export: the trained model in formats that serve it without this project or Keras.

    aerialseg-export [--model models/model.keras] --out DIR [--overwrite]

writes DIR/saved_model/ (a TensorFlow SavedModel: TF Serving's format, signature
``serving_default``) and DIR/model.onnx (ONNX, for onnxruntime and other runtimes), both
through Keras' own exporters (``model.export``; ONNX goes through tf2onnx under TensorFlow).
Both take float32 pixels 0..255 as (N, H, W, C), with any H and W the model's stride divides
(the encoder's input preprocessing is inside the model), and return (N, H, W, K) class
probabilities: the windows aerialseg.predict.blending feeds the Keras model.

The two are one export: both are built in a temporary folder beside DIR, which then replaces DIR
as a whole (aerialseg.pipeline.atomic.atomic_dir), so a failed or killed export, even between the
two writes, leaves the earlier pair as it was, never a new SavedModel beside an old ONNX file. DIR
therefore holds the export and nothing else. Both carry the model's card
(aerialseg.train.card: ``assets/aerialseg_card.json`` and ONNX ``metadata_props``), so they map
photos alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import keras

from aerialseg.errors import InputError
from aerialseg.pipeline.atomic import atomic_dir
from aerialseg.predict.command import PARAMS_ADVICE, one_line, read_params
from aerialseg.predict.inference import ModelError, ModelMismatchError
from aerialseg.predict.keras_predictor import load_model, segmentation_shape
from aerialseg.predict.model_source import ModelSource, model_card
from aerialseg.predict.outputs import writable_folder
from aerialseg.train.card import write_card

FILES = ("saved_model", "model.onnx")


def export_model(
    model_path: str | Path, out: str | Path, overwrite: bool = False, params: Path | None = None
) -> tuple[Path, Path]:
    """Export the model at ``model_path`` to ``out``/saved_model and ``out``/model.onnx; return both.
    ``params``: the params.yaml a model without a card was trained with, for the exports' card."""
    out = Path(out)
    check_out(out, overwrite)
    source = ModelSource.of_file(model_path)
    card = model_card(source, read_params(params) if params else None, params, PARAMS_ADVICE).card  # answers at once
    model = load_model(model_path)
    try:
        channels, _ = segmentation_shape(model)
    except ModelMismatchError as error:
        raise ModelError(f"{model_path}: {error}") from error
    # any batch and window size; the input keeps its name, which the ONNX file's input then has
    signature = [keras.InputSpec(shape=(None, None, None, channels), dtype="float32", name=model.inputs[0].name)]
    with atomic_dir(out) as tmp, warnings.catch_warnings():
        model.export(tmp / FILES[0], format="tf_saved_model", input_signature=signature, verbose=False)
        warnings.simplefilter("ignore", FutureWarning)  # Keras' own tf2onnx patch trips NumPy's np.object warning
        model.export(tmp / FILES[1], format="onnx", input_signature=signature, verbose=False)
        for exported in FILES:
            write_card(tmp / exported, card)
    return out / FILES[0], out / FILES[1]


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse, before the model is loaded, an ``out`` that is a file, holds an export (unless
    ``overwrite``) or anything besides one (replacing the folder would delete it), or whose parent
    folder, where the export is built, cannot be written."""
    if out.is_dir():
        if not overwrite and (present := [name for name in FILES if (out / name).exists()]):
            raise InputError(f"{out / present[0]}: already exists (pass --overwrite to replace it)")
        if others := sorted(set(os.listdir(out)) - set(FILES)):
            raise InputError(
                f"{out}: holds {', '.join(others)} besides an export, and an export replaces its folder as a whole "
                "(export into a new or empty folder with --out)"
            )
    elif out.exists():
        raise InputError(f"{out}: is a file, not a folder (choose a folder with --out)")
    writable_folder(out.parent, "an export")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="aerialseg-export", description="Export the trained model as a TensorFlow SavedModel and as ONNX."
    )
    p.add_argument("--model", type=Path, default=Path("models/model.keras"), help="default: %(default)s")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="writes DIR/saved_model/ and DIR/model.onnx")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export")
    p.add_argument("--params", type=Path, help="params.yaml a model without a card was trained with")
    args = p.parse_args(argv)
    try:
        for path in export_model(args.model, args.out, args.overwrite, args.params):
            print(path)
    except InputError as error:  # names the file and what to do; anything else is a bug
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
