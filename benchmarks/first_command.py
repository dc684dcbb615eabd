"""Benchmark: the README's first command on this machine, from a fresh clone, step by step.

A new user's first command is an install and then ``dvc repro``; on a 2-core machine the install
alone can take as long as the whole pipeline. So this times, in one run, in fresh clones of the
committed HEAD:

- the install as the README does it (``pip install uv && uv pip install --compile-bytecode -e ".[train]"``),
  with an empty uv cache, so every package is downloaded as on a new machine. pip compiles every
  module to bytecode as it installs; uv only when asked. Without it, where Python does not write
  bytecode itself (``PYTHONDONTWRITEBYTECODE``, set on this project's machines), every stage
  would import TensorFlow from source: 24 s instead of 10 on an AVX2-only 2-core EPYC;
- the previous install (``pip install -e ".[train]"``), with pip's cache as this machine has it (when the
  cache is warm that favours pip: its figure is a lower bound);
- ``dvc repro`` in the first clone, from the params check to the report, with the time of every
  stage (from the moment DVC prints that it runs it).

    python -m benchmarks.first_command            # ~10 to 15 min on 2 cores
    python -m benchmarks.first_command --no-pip   # without the previous install (~4 min less)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import machine

REPOSITORY = Path(__file__).resolve().parents[1]
ACTIVATE = ". .venv/bin/activate"
VENV = f"python3 -m venv .venv && {ACTIVATE}"
README_INSTALL, PREVIOUS_INSTALL = "uv (README)", "pip (previous)"
INSTALLS = {
    README_INSTALL: f"{VENV} && pip install -q uv && uv pip install -q --compile-bytecode -e '.[train]'",
    PREVIOUS_INSTALL: f"{VENV} && pip install -q -e '.[train]'",
}
STAGE_LINE = re.compile(r"Running stage '([^']+)'")


def fresh_clone(parent: Path, name: str) -> Path:
    """A clone of the committed HEAD: what a user gets, without this checkout's outputs or venv."""
    clone = parent / name
    subprocess.run(["git", "clone", "-q", str(REPOSITORY), str(clone)], check=True)
    return clone


def timed_shell(command: str, cwd: Path, env: dict[str, str]) -> float:
    """Seconds that a bash command line took; its output goes to this terminal."""
    start = time.perf_counter()
    subprocess.run(["bash", "-c", command], cwd=cwd, env=env, check=True)
    return time.perf_counter() - start


def timed_repro(clone: Path, env: dict[str, str]) -> tuple[float, dict[str, float]]:
    """Seconds of the whole ``dvc repro``, and of each stage: from DVC's line announcing it to the
    next one (the last stage to the end)."""
    start = time.perf_counter()
    starts: dict[str, float] = {}
    with subprocess.Popen(
        ["bash", "-c", f"{ACTIVATE} && dvc repro"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        for line in process.stdout:
            sys.stdout.write(line)
            if match := STAGE_LINE.search(line):
                starts[match.group(1)] = time.perf_counter()
    if process.returncode:
        raise SystemExit(f"dvc repro failed in {clone} (exit {process.returncode})")
    end = time.perf_counter()
    moments = [*starts.values(), end]
    stage_seconds = {stage: moments[i + 1] - moment for i, (stage, moment) in enumerate(starts.items())}
    return end - start, stage_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-pip", action="store_true", help="skip the previous install (pip)")
    args = parser.parse_args()
    installs = {name: command for name, command in INSTALLS.items() if not (args.no_pip and name == PREVIOUS_INSTALL)}
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="aerialseg-first-command-") as scratch:
        scratch = Path(scratch)
        env = {**os.environ, "UV_CACHE_DIR": str(scratch / "uv-cache")}
        env.pop("VIRTUAL_ENV", None)
        install_seconds, clones = {}, {}
        for name, command in installs.items():
            clones[name] = fresh_clone(scratch, f"clone-{len(clones)}")
            install_seconds[name] = timed_shell(command, clones[name], env)
        repro_seconds, stage_seconds = timed_repro(clones[README_INSTALL], env)

    print(f"\nmachine: {machine()}")
    print("| step | seconds | minutes |\n|---|---:|---:|")
    for name, seconds in install_seconds.items():
        print(f"| install, {name} | {seconds:.0f} | {seconds / 60:.1f} |")
    for stage, seconds in stage_seconds.items():
        print(f"| dvc repro: {stage} | {seconds:.0f} | |")
    print(f"| dvc repro, in all | {repro_seconds:.0f} | {repro_seconds / 60:.1f} |")
    first_command = install_seconds[README_INSTALL] + repro_seconds
    print(f"| **first command (uv install + dvc repro)** | {first_command:.0f} | {first_command / 60:.1f} |")


if __name__ == "__main__":
    main()
