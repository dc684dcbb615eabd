"""Benchmark: streaming smooth blending (aerialseg.predict.blending) against the naive original.

Both implementations run the same technique (window 256, 50 % overlap, squared spline, D4
test-time augmentation, 6 classes) on the same synthetic tile with the same predictor, each case
in a fresh process so that peak memory (ru_maxrss) belongs to that case alone. Two predictors:

* ``standin``: a per-pixel one-hot of the brightest channel in NumPy float32. It costs almost
  nothing, so wall time minus the time spent inside it is the blending machinery's own cost.
* ``keras``: a small real Keras model (one 3 x 3 convolution, softmax), whose zero-padded window
  edges make predictions depend on the window, so blending matters; its 2048 px results of both
  implementations are compared pixel by pixel.

Run from the repository root:  python benchmarks/blending.py  (several minutes; writes
benchmarks/results/blending.md). One case:  python benchmarks/blending.py --case ours 2048 standin
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from machine import machine  # noqa: E402
from naive_blending import predict_img_with_smooth_windowing  # noqa: E402

from aerialseg.predict.blending import Blending, predict_probabilities  # noqa: E402

WINDOW, SUBDIVISIONS, TTA, CLASSES, BATCH = 256, 2, "d4", 6, 16
RESULTS = REPO / "benchmarks/results/blending.md"
NAIVE_MAX_SIZE = 2048  # the naive way needs ~57 GB at 6000 x 6000: more than this 24 GB machine
CASES = [
    ("ours", 2048, "standin"),
    ("naive", 2048, "standin"),
    ("ours", 6000, "standin"),
    ("ours", 2048, "keras"),
    ("naive", 2048, "keras"),
    ("ours", 6000, "keras"),
    ("device", 2048, "keras"),  # the test-time transforms applied by the model's compiled call
    ("device", 6000, "keras"),
]


# --- one case, in its own process -------------------------------------------------------------


def standin_predictor(batch: np.ndarray) -> np.ndarray:
    """Per-pixel one-hot of the brightest channel: exact under blending, nearly free to compute."""
    return np.eye(CLASSES, dtype=np.float32)[batch.argmax(axis=-1)]


def keras_standin():
    """A small real model: 3 x 3 convolution to 6 softmax classes (edge effects at window borders)."""
    import keras

    from aerialseg.predict.keras_predictor import KerasPredictor

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((None, None, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(CLASSES, 3, padding="same", activation="softmax"),
        ]
    )
    predictor = KerasPredictor(model, CLASSES)
    predictor(np.zeros((BATCH, WINDOW, WINDOW, 3), np.float32))  # trace once, outside the timing
    return predictor


class Timed:
    """Counts the forward passes of a predictor and the seconds spent inside it. NumPy applies
    the test-time transforms to every window it hands over ("ours", today's reference)."""

    def __init__(self, predict_batch):
        self.predict_batch, self.windows, self.seconds = predict_batch, 0, 0.0

    def __call__(self, batch):
        return self._timed(self.predict_batch, batch, passes=1)

    def _timed(self, predict, batch, passes, **options):
        start = time.perf_counter()
        result = predict(batch, **options)
        self.seconds += time.perf_counter() - start
        self.windows += len(batch) * passes
        return result


class TimedOnDevice(Timed):
    """The same, for a Keras predictor that applies and undoes the transforms itself ("device")."""

    def predict_symmetries(self, batch, symmetries, profile):
        predict = self.predict_batch.predict_symmetries
        return self._timed(predict, batch, len(symmetries), symmetries=symmetries, profile=profile)


def run_ours(tile: np.ndarray, predict_batch) -> np.ndarray:
    return predict_probabilities(
        tile,
        predict_batch,
        Blending(
            window=WINDOW, mode="smooth", subdivisions=SUBDIVISIONS, window_function="spline", tta=TTA, batch_size=BATCH
        ),
        CLASSES,
    )


def run_naive(tile: np.ndarray, predict_batch) -> np.ndarray:
    """As the original is used: a float64 image, and ``model.predict`` over all windows at once
    (which feeds the model ``BATCH`` windows at a time)."""

    def predict_all(windows):
        return np.concatenate([predict_batch(windows[i : i + BATCH]) for i in range(0, len(windows), BATCH)])

    return predict_img_with_smooth_windowing(tile.astype(np.float64), WINDOW, SUBDIVISIONS, CLASSES, predict_all)


def synthetic_tile(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_case(implementation: str, size: int, predictor: str, save: str | None) -> dict:
    timed = (TimedOnDevice if implementation == "device" else Timed)(
        keras_standin() if predictor == "keras" else standin_predictor
    )
    tile = synthetic_tile(size, size)
    before = peak_rss_mb()
    start = time.perf_counter()
    probabilities = (run_naive if implementation == "naive" else run_ours)(tile, timed)
    wall = time.perf_counter() - start
    if save:
        np.save(save, probabilities.astype(np.float32))
    return {
        "implementation": implementation,
        "size": size,
        "predictor": predictor,
        "windows": timed.windows,
        "wall_s": wall,
        "model_s": timed.seconds,
        "outside_s": wall - timed.seconds,
        "rss_before_mb": before,
        "peak_rss_mb": peak_rss_mb(),
    }


# --- the whole benchmark ----------------------------------------------------------------------


def run_in_fresh_process(implementation: str, size: int, predictor: str, save: Path | None) -> dict:
    command = [sys.executable, __file__, "--case", implementation, str(size), predictor]
    if save:
        command += ["--save", str(save)]
    print("running:", " ".join(command[2:]), flush=True)
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def exactness_on_awkward_sizes() -> list[tuple[str, str, str]]:
    """Largest error against the exact per-pixel answer, for sizes the original mishandles."""
    rows = []
    for height, width in [(1024, 1024), (1000, 1000), (300, 300), (300, 200)]:
        tile = synthetic_tile(height, width, seed=1)
        exact = standin_predictor(tile)
        ours = np.abs(run_ours(tile, standin_predictor) - exact).max()
        try:
            naive = f"{np.abs(run_naive(tile, standin_predictor) - exact).max():.2g}"
        except Exception as error:  # the original breaks on non-square tiles
            naive = f"fails: {type(error).__name__}"
        rows.append((f"{height} x {width}", f"{ours:.2g}", naive))
    return rows


def main() -> None:
    results, comparison = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for implementation, size, predictor in CASES:
            save = Path(scratch, f"{implementation}_{size}.npy") if predictor == "keras" else None
            results.append(run_in_fresh_process(implementation, size, predictor, save))

        def difference(first: str, second: str, size: int, margin: int = 0) -> float:
            a, b = (np.load(Path(scratch, f"{name}_{size}.npy"), mmap_mode="r") for name in (first, second))
            inside = slice(margin, size - margin)
            return float(np.abs(a[inside, inside] - b[inside, inside]).max())

        comparison = {
            "ours against naive, 2048, whole tile": difference("ours", "naive", 2048),
            "ours against naive, 2048, interior (256 px from the edges)": difference("ours", "naive", 2048, WINDOW),
            "D4 on the device against NumPy's, 2048, whole tile": difference("device", "ours", 2048),
            "D4 on the device against NumPy's, 6000, whole tile": difference("device", "ours", 6000),
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(markdown(results, comparison, exactness_on_awkward_sizes()))
    print(RESULTS.read_text())


def markdown(results: list[dict], comparison: dict, exactness: list[tuple]) -> str:
    lines = [
        f"# Smooth blending benchmark ({time.strftime('%Y-%m-%d')})",
        "",
        f"Window {WINDOW}, subdivisions {SUBDIVISIONS} (50 % overlap), TTA {TTA} (8 passes per window), "
        f"{CLASSES} classes, batches of {BATCH}. Each row is a fresh process. CPU: {machine()}, "
        f"Python {platform.python_version()}, NumPy {np.__version__}.",
        "",
        "| implementation | tile | predictor | forward passes (windows) | wall s | in model s | outside model s "
        "| RSS before MB | peak RSS MB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['implementation']} | {r['size']} | {r['predictor']} | {r['windows']} | {r['wall_s']:.1f} "
            f"| {r['model_s']:.1f} | {r['outside_s']:.1f} | {r['rss_before_mb']:.0f} "
            f"| {r['peak_rss_mb']:.0f} |"
        )
    for predictor in ("standin", "keras"):
        naive = next(
            r for r in results if (r["implementation"], r["size"], r["predictor"]) == ("naive", 2048, predictor)
        )
        extra = (naive["peak_rss_mb"] - naive["rss_before_mb"]) * ((6000 + WINDOW) / (2048 + WINDOW)) ** 2
        lines.append(
            f"| naive | 6000 | {predictor} | not run | | | | | ~{naive['rss_before_mb'] + extra:.0f} "
            "(extrapolated by padded area) |"
        )
    lines += ["", "Largest difference between probabilities, Keras model:", ""]
    lines += [f"- {where}: {value:.2g}" for where, value in comparison.items()]
    lines += [
        "",
        "Largest error against the exact per-pixel answer (stand-in predictor):",
        "",
        "| tile | ours | naive |",
        "|---|---:|---:|",
    ]
    lines += [f"| {size} | {ours} | {naive} |" for size, ours, naive in exactness]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--case",
        nargs=3,
        metavar=("IMPLEMENTATION", "SIZE", "PREDICTOR"),
        help="run one case here: ours|device|naive, tile side in px, standin|keras",
    )
    parser.add_argument("--save", help="with --case: save the probabilities to this .npy")
    arguments = parser.parse_args()
    if arguments.case:
        implementation, size, predictor = arguments.case
        print(json.dumps(run_case(implementation, int(size), predictor, arguments.save)))
    else:
        main()
