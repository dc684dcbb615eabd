"""Benchmark: the download, resize and patches stages on real-size Potsdam tiles, in bounded memory.

Generates a Potsdam.zip of the download's layout (aerialseg.testing.potsdam_zip) holding 4 tiles of
6000 x 6000 px in every band set with world files, both label variants and decoy products, then
runs the download, resize and patches stages on it with 4-band RGBIR photos, in a throw-away copy
of the project, each as ``python -m stages.<name>`` the way DVC runs it. While a stage runs, the
memory of its whole process tree (the resize stage's worker processes included) is sampled every
0.1 s. Reported per stage: wall time, peak memory (the sum over its processes: what the machine
must hold) and the disk its output takes. Target: every stage under 3 GB.

Run from the repository root:  python benchmarks/real_size.py  (about 10 minutes on 2 cores and
9 GB of temporary files; writes benchmarks/results/real_size.md)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from machine import machine  # noqa: E402

from aerialseg.data.palette import Palette  # noqa: E402
from aerialseg.testing.potsdam_zip import write_potsdam_zip  # noqa: E402

TILES = ["2_10", "2_11", "2_12", "2_13"]
SIDE = 6000
STAGES = {"download": "data/raw", "resize": "data/resized", "patches": "data/patches"}
TARGET_BYTES = 3 << 30
GB = 1 << 30
RESULTS = REPO / "benchmarks/results/real_size.md"
CHANGES = {  # the official protocol's working settings, on 4 tiles
    "data": {"source": "local", "bands": "rgbir"},
    "resize": {"scale": 0.5},
    "patches": {
        "patch_size": 256,
        "step": 128,
        "split": {"train": TILES[:2], "val": TILES[2:3], "test": TILES[3:]},
    },
}


def project(folder: Path, archive: Path) -> Path:
    """The code and params of this repository in ``folder``, set to read ``archive``."""
    for name in ("aerialseg", "stages"):
        shutil.copytree(REPO / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in CHANGES.items():
        params[section].update(values)
    params["data"]["local"] = {"paths": [str(archive)]}
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder


def run_stage(name: str, folder: Path) -> dict:
    """Run one stage; its time and the peak of the summed memory of its processes."""
    start, peak = time.perf_counter(), 0
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(folder / f"{name}.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", f"stages.{name}"], cwd=folder, env=env, stdout=log, stderr=log
        )
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            peak = max(peak, tree_memory(watched))
            time.sleep(0.1)
    if process.returncode:
        raise RuntimeError(f"stage {name} failed:\n{(folder / f'{name}.log').read_text()[-3000:]}")
    return {"seconds": time.perf_counter() - start, "peak": peak, "disk": disk_use(folder / STAGES[name])}


def tree_memory(process: psutil.Process) -> int:
    """Resident memory of a process and all its descendants, in bytes (0 for those already gone)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += member.memory_info().rss
    return total


def disk_use(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main() -> None:
    classes = yaml.safe_load((REPO / "params.yaml").read_text())["classes"]
    palette = Palette(tuple(classes), tuple(tuple(colour) for colour in classes.values()))
    with tempfile.TemporaryDirectory(dir=REPO / "benchmarks") as folder:
        start = time.perf_counter()
        archive = write_potsdam_zip(Path(folder) / "Potsdam.zip", TILES, SIDE, palette)
        generated = time.perf_counter() - start
        print(f"Potsdam.zip: {archive.stat().st_size / GB:.2f} GB written in {generated:.0f} s", flush=True)
        work = project(Path(folder) / "project", archive)
        results = {}
        for name in STAGES:
            results[name] = run_stage(name, work)
            print(name, results[name], flush=True)
        write_results(archive.stat().st_size, results)
    assert all(result["peak"] < TARGET_BYTES for result in results.values()), "a stage needed 3 GB or more"


def write_results(archive_bytes: int, results: dict) -> None:
    lines = [
        f"# Real-size tiles: {len(TILES)} x {SIDE} x {SIDE} px RGBIR, both label variants",
        "",
        f"{machine()} when done. Potsdam.zip: {archive_bytes / GB:.2f} GB. Settings: {CHANGES}.",
        "",
        "| stage | wall s | peak memory GB (all its processes) | output on disk GB |",
        "|---|---:|---:|---:|",
    ]
    for name, result in results.items():
        lines.append(f"| {name} | {result['seconds']:.0f} | {result['peak'] / GB:.2f} | {result['disk'] / GB:.2f} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
