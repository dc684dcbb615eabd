"""Benchmark: the default model's training under TensorFlow's CPU settings, this training and the
previous one, each setting in a fresh process (TensorFlow reads them from the environment once,
when it starts).

The settings: its thread pools (one inter-op or one intra-op thread instead of one per core), and
its convolution kernels. On Linux, TensorFlow runs oneDNN's kernels only on CPUs with
AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX; on any other x86 CPU (an AVX2-only AMD Zen 3, say) it
runs Eigen's, which the TensorFlow wheels compile without AVX2 or FMA. aerialseg turns oneDNN on whatever
the CPU (aerialseg/__init__.py). On a CPU with AVX-512, ``ONEDNN_MAX_CPU_ISA=AVX2`` makes oneDNN
run the kernels it runs on an AVX2-only CPU, and ``TF_ENABLE_ONEDNN_OPTS=0`` gives Eigen's, which
are the same on both: so one AVX-512 machine measures what an AVX2-only one gets from each
setting, as ratios (its clock, caches and memory stay its own).

"This training" is the pipeline's input path (memory-mapped PatchSequence, D4 in the compiled
step, fused batch norm); "previous" is the training this work started from (benchmarks/throughput.py).
The settings take turns over 2 rounds; the median patches/s.

    python -m benchmarks.cpu_settings            # ~5 min on 2 cores
    python -m benchmarks.cpu_settings --quick    # one round, for a check of the script
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from aerialseg.train.dataset import PatchSequence
from benchmarks.machine import machine
from benchmarks.throughput import (
    DEFAULT_MODEL,
    INPUTS,
    MODELS,
    PREVIOUS,
    PreviousPatchSequence,
    fresh_model,
    input_path,
    interleaved_rates,
    saved_patches,
    training_flops,
)

ONEDNN, EIGEN = {"TF_ENABLE_ONEDNN_OPTS": "1"}, {"TF_ENABLE_ONEDNN_OPTS": "0"}
AVX2_ONEDNN = {**ONEDNN, "ONEDNN_MAX_CPU_ISA": "AVX2"}
SETTINGS = {  # row: (training, environment)
    "this training, oneDNN (the pipeline's setting)": ("this", ONEDNN),
    "this training, oneDNN, one inter-op thread (TF_NUM_INTEROP_THREADS=1)": (
        "this",
        {**ONEDNN, "TF_NUM_INTEROP_THREADS": "1"},
    ),
    "this training, oneDNN, one intra-op thread (TF_NUM_INTRAOP_THREADS=1)": (
        "this",
        {**ONEDNN, "TF_NUM_INTRAOP_THREADS": "1"},
    ),
    "this training, oneDNN limited to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2)": ("this", AVX2_ONEDNN),
    "this training, Eigen (TF_ENABLE_ONEDNN_OPTS=0)": ("this", EIGEN),
    "previous training, oneDNN": ("previous", ONEDNN),
    "previous training, Eigen": ("previous", EIGEN),
}
SPEED_UPS = {  # this training / the previous one, as each kind of CPU runs them: (this row, previous row)
    "oneDNN before and now (what TensorFlow runs by itself on a CPU with AVX512_VNNI, BF16 or AMX)": (
        "this training, oneDNN (the pipeline's setting)",
        "previous training, oneDNN",
    ),
    "oneDNN's AVX2 kernels now, Eigen's before (what an AVX2-only CPU runs)": (
        "this training, oneDNN limited to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2)",
        "previous training, Eigen",
    ),
}


def training_rate(training: str, rounds: int) -> float:
    """Patches/s of the default model's ``training`` (this or previous), in this process."""
    filters, side, batch, batches, _, _ = MODELS[DEFAULT_MODEL]
    source, loader = (INPUTS[1], PatchSequence) if training == "this" else (PREVIOUS, PreviousPatchSequence)
    with tempfile.TemporaryDirectory() as folder:
        *_, mapped = saved_patches(Path(folder), batch * batches, side, np.random.default_rng(0))
        inputs = {source: input_path(loader, mapped, batch)}
        key = (source, False, True)
        model = fresh_model(filters, side, jit_compile=False, metrics=True, source=source)
        return interleaved_rates({key: model}, inputs, batch, rounds)[key]


def child_rate(training: str, environment: dict, quick: bool) -> float:
    command = [sys.executable, "-m", "benchmarks.cpu_settings", "--child", training, *(["--quick"] if quick else [])]
    child = subprocess.run(command, env={**os.environ, **environment}, capture_output=True, text=True, check=True)
    return float(child.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round: checks the script, not the machine")
    parser.add_argument("--child", choices=("this", "previous"), help="print one training's patches/s and stop")
    args = parser.parse_args()
    if args.child:
        print(training_rate(args.child, rounds=1 if args.quick else 2))
        return
    print(f"CPU: {machine()}; {DEFAULT_MODEL}, each setting in a fresh process", flush=True)
    rates = {row: [] for row in SETTINGS}
    for _ in range(1 if args.quick else 2):
        for row, (training, environment) in SETTINGS.items():
            rates[row].append(child_rate(training, environment, args.quick))
            print(f"{row}: {rates[row][-1]:.1f} patches/s", flush=True)
    medians = {row: float(np.median(values)) for row, values in rates.items()}
    flops = training_flops(*MODELS[DEFAULT_MODEL][:2])
    table = ["| training and setting | patches/s | GFLOP/s |", "|---|---:|---:|"]
    table += [f"| {row} | {rate:.1f} | {rate * flops / 1e9:.0f} |" for row, rate in medians.items()]
    table += ["", "| kernels | this training / the previous one |", "|---|---:|"]
    table += [f"| {cpu} | {medians[now] / medians[before]:.2f}x |" for cpu, (now, before) in SPEED_UPS.items()]
    print("\n".join(["", *table]))


if __name__ == "__main__":
    main()
