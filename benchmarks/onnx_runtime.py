"""Benchmark: aerialseg-predict's two runtimes, Keras (TensorFlow) and onnxruntime, on the same photo.

The default U-Net of params.yaml (``train`` section, untrained: speed does not depend on the
weights), saved as the train stage saves it and exported by aerialseg-export; both files are
loaded as the command loads them (aerialseg.predict.runtimes.load_predictor) and map the same
synthetic town photo, plain and smooth (params.yaml's ``predict`` settings: D4 test-time
augmentation, which Keras runs in its compiled call and onnxruntime gets from NumPy). Reported:
wall time per map, windows per second, and how far the two maps are apart (pixels of the same
class, largest probability difference). Both runtimes run in this one process, one after the
other, each on every core.

    python -m benchmarks.onnx_runtime                 # 2048 x 2048, about 12 minutes on 2 cores
    python -m benchmarks.onnx_runtime --size 1024     # about 3 minutes
    python -m benchmarks.onnx_runtime --size 512      # a check of the script
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import onnxruntime
import tensorflow as tf

from aerialseg import d4
from aerialseg.data.synthetic import generate_tile
from aerialseg.pipeline.params import load_params
from aerialseg.predict.blending import MODES, Blending, plan_grid, predict_probabilities
from aerialseg.predict.export import export_model
from aerialseg.predict.runtimes import load_predictor
from aerialseg.train.model import build_model, stock_model
from benchmarks.machine import machine

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks/results/onnx_runtime.md"
RUNTIMES = ("model.keras", "model.onnx")


def model_files(folder: Path, params) -> tuple[Path, Path]:
    """The default U-Net saved as .keras and exported as .onnx into ``folder``."""
    keras.utils.set_random_seed(params.train.seed)
    model = stock_model(build_model(params.train, params.palette.num_classes, bands=3))
    model.save(folder / "model.keras")
    _, onnx_path = export_model(folder / "model.keras", folder / "export")
    return folder / "model.keras", onnx_path


def timed_map(predictor, photo: np.ndarray, blending: Blending, classes: int) -> tuple[np.ndarray, float]:
    """The photo's probabilities and the seconds they took."""
    start = time.perf_counter()
    probabilities = predict_probabilities(photo, predictor, blending, classes)
    return probabilities, time.perf_counter() - start


def windows(size: int, blending: Blending) -> int:
    """Forward passes (windows) of one map of a ``size`` x ``size`` photo, as the progress bar counts them."""
    smooth = blending.mode == "smooth"
    grid = plan_grid(size, size, blending.window, blending.subdivisions if smooth else 1)
    return grid.count() * len(d4.TTA_SETS[blending.tta if smooth else "none"])


def run(size: int) -> str:
    params = load_params(REPO / "params.yaml")
    classes, window = params.palette.num_classes, params.patches.patch_size
    photo = generate_tile(0, size, params.palette)[0]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        predictors = [load_predictor(path, classes, window) for path in model_files(Path(scratch), params)]
        for mode in MODES:
            blending = Blending.from_params(params.predict, window, mode)
            (keras_map, keras_s), (onnx_map, onnx_s) = (timed_map(p, photo, blending, classes) for p in predictors)
            same = (keras_map.argmax(-1) == onnx_map.argmax(-1)).mean()
            count = windows(size, blending)
            rows.append(
                f"| {mode} | {count} | {keras_s:.1f} ({count / keras_s:.0f}/s) | {onnx_s:.1f} ({count / onnx_s:.0f}/s) "
                f"| {keras_s / onnx_s:.2f} | {same:.4%} | {np.abs(keras_map - onnx_map).max():.1e} |"
            )
            print(rows[-1], flush=True)
    return markdown(size, window, params, rows)


def markdown(size: int, window: int, params, rows: list[str]) -> str:
    train, predict = params.train, params.predict
    return "\n".join(
        [
            f"# Keras against onnxruntime ({time.strftime('%Y-%m-%d')})",
            "",
            f"{size} x {size} synthetic photo, U-Net {train.encoder} encoder, {train.base_filters} base filters, "
            f"window {window}, batches of {predict.batch_size}; smooth: subdivisions {predict.subdivisions}, "
            f"{predict.window_function}, TTA {predict.tta}. CPU: {machine()}. TensorFlow {tf.__version__}, "
            f"Keras {keras.__version__}, onnxruntime {onnxruntime.__version__}.",
            "",
            "| mode | windows | Keras s (windows/s) | onnxruntime s (windows/s) | Keras / onnxruntime "
            "| same class | largest probability difference |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048, help="photo side in pixels (default: %(default)s)")
    report = run(parser.parse_args().size)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    print(report)
