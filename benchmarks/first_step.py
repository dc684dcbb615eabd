"""Benchmark: a training's first epoch with Adam's slots made before it (training.compile_model)
and made in the first step (Keras' way, the previous code), side by side in one process.

Under TensorFlow, a traced function whose first call makes variables is traced again without
them; Keras' Adam makes its momentum and velocity slots in its first update, inside the traced
training step. compile_model builds the optimizer right after compiling, so the step is traced
once. Each round builds two fresh models of the same params, one each way, and times a fit of one
epoch of 4 steps (mostly tracing), counting the traces of the training step.

    python -m benchmarks.first_step              # the tests' tiny U-Net and the default, 3 rounds
    python -m benchmarks.first_step --rounds 1   # a check of the script
"""

from __future__ import annotations

import argparse
import time

import aerialseg  # noqa: F401  first: sets TensorFlow's CPU kernels as the pipeline has them (oneDNN)

# isort: split
import keras
import numpy as np

from aerialseg.pipeline.params import load_params
from aerialseg.train.dataset import PatchSequence
from aerialseg.train.training import fresh_model
from benchmarks.machine import machine

STEPS = 4
SIZES = {  # model -> (base filters, patch side)
    "tiny (the tests')": (4, 32),
    "default": (None, None),  # params.yaml's
}


def patches(count: int, side: int, batch_size: int) -> PatchSequence:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, side, side, 3), dtype=np.uint8)
    labels = rng.integers(0, 6, (count, side, side), dtype=np.uint8)
    return PatchSequence(images, labels, batch_size=batch_size, shuffle=True, augment=True, seed=1)


def timed_first_epoch(params, batches: PatchSequence, slots_made_first: bool) -> tuple[float, int]:
    """Seconds of a one-epoch fit of a fresh model, and how often its training step was traced."""
    keras.utils.set_random_seed(0)
    model = fresh_model(params, None, len(batches))
    if not slots_made_first:  # the previous code: an Adam of the same settings, left unbuilt
        model.optimizer = type(model.optimizer).from_config(model.optimizer.get_config())
    traces, train_step = [], model.train_step
    model.train_step = lambda data: traces.append(data) or train_step(data)  # Python runs once per trace
    start = time.perf_counter()
    model.fit(batches, epochs=1, verbose=0)
    return time.perf_counter() - start, len(traces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    base = load_params()
    print(f"CPU: {machine()}; Keras {keras.__version__} on {keras.backend.backend()}; {STEPS} steps of 8 patches")
    print("| model | slots made | first epoch, s (each round) | traces of the step |")
    print("|---|---|---|---:|")
    for name, (filters, side) in SIZES.items():
        train = base.train.model_copy(update={"base_filters": filters or base.train.base_filters, "batch_size": 8})
        params = base.model_copy(update={"train": train})
        batches = patches(STEPS * 8, side or base.patches.patch_size, 8)
        timed_first_epoch(params, batches, True)  # warm-up: TensorFlow's first graph in this process
        results = {True: [], False: []}
        for _ in range(rounds):
            for slots_made_first in (False, True):
                results[slots_made_first].append(timed_first_epoch(params, batches, slots_made_first))
        for slots_made_first, label in ((False, "in the first step (Keras)"), (True, "before it (compile_model)")):
            seconds = ", ".join(f"{s:.2f}" for s, _ in results[slots_made_first])
            print(f"| {name} | {label} | {seconds} | {results[slots_made_first][0][1]} |")


if __name__ == "__main__":
    main()
