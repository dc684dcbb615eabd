"""Benchmark: aerialseg-predict on a raster larger than it may hold, in bounded memory.

Writes a georeferenced 20000 x 20000 RGB GeoTIFF (tiled, DEFLATE, EPSG:25833 at 5 cm: a
1 km x 1 km mosaic of the synthetic Potsdam-like town tiles) with rasterio, a row band at a
time, then runs the command on it in a child process and reports the child's peak RSS (from
wait4, so it is the command alone) and wall time, and checks that the map is a COG lying exactly
on the input. The model is the project's U-Net as params.yaml's ``train`` section builds it
(untrained unless --model names a trained one: time and memory do not depend on the weights).

Run from the repository root:  python benchmarks/predict_large.py  (about 10 minutes on 2
cores in plain mode; the raster is kept in benchmarks/results/predict_large/ for reruns).
Smooth mode costs 4 (tta none) to 32 (tta d4) times the forward passes:
python benchmarks/predict_large.py --mode smooth --tta none
A model whose card says it was trained at 10 cm has the 5 cm raster resampled to its resolution
and the map back onto the raster's grid, inside the same windowed path; --vector adds the
polygons, vectorised band by band (the whole command's memory, both at once):
python benchmarks/predict_large.py --model-pixel-size 0.1 --vector
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aerialseg.data.synthetic import generate_tile  # noqa: E402
from aerialseg.pipeline.params import load_params  # noqa: E402

WORK = REPO / "benchmarks/results/predict_large"
RESULTS = REPO / "benchmarks/results/predict_large.md"
TOWN_TILE = 1024  # side of the generated town tiles the mosaic is made of
LIMIT_MB = 2.5 * 1024  # the budget this benchmark checks


def write_large_raster(path: Path, size: int) -> None:
    """A size x size mosaic of 4 town tiles (each placed turned and flipped at random, so
    neighbours differ), written one row of tiles at a time: never the whole raster in memory."""
    palette = load_params(REPO / "params.yaml").palette
    towns = [generate_tile(seed, TOWN_TILE, palette)[0] for seed in range(4)]
    rng = np.random.default_rng(0)
    profile = dict(driver="GTiff", height=size, width=size, count=3, dtype="uint8", crs="EPSG:25833")
    profile.update(transform=from_origin(367_000.0, 5_811_000.0, 0.05, 0.05), tiled=True, compress="deflate")
    partial = path.with_suffix(".partial.tif")
    with rasterio.open(partial, "w", bigtiff="if_safer", **profile) as raster:
        for top in tqdm(range(0, size, TOWN_TILE), desc="writing the input raster", unit="row of tiles"):
            height = min(TOWN_TILE, size - top)
            row = np.concatenate(
                [np.rot90(towns[rng.integers(4)], rng.integers(4)) for _ in range(0, size, TOWN_TILE)], axis=1
            )
            raster.write(np.moveaxis(row[:height, :size], -1, 0), window=Window(0, top, size, height))
    partial.rename(path)


def default_model(path: Path, pixel_size_m: float | None) -> None:
    """The U-Net of params.yaml's ``train`` section, saved as the train stage saves its model (with
    its card, saying it was trained at ``pixel_size_m`` metres per pixel: None, unknown)."""
    from aerialseg.train.card import card_from_params, write_card
    from aerialseg.train.model import build_model, stock_model

    params = load_params(REPO / "params.yaml")
    stock_model(build_model(params.train, params.palette.num_classes, bands=3)).save(path)  # the raster's RGB
    write_card(path, card_from_params(params, pixel_size_m=pixel_size_m))


def run_command(arguments: list[str]) -> tuple[float, float]:
    """Run aerialseg-predict as a child; return (wall seconds, the child's peak RSS in MB)."""
    command = [sys.executable, "-m", "aerialseg.predict.command", *arguments]
    print("running:", " ".join(command[1:]), flush=True)
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"aerialseg-predict failed with exit code {child.returncode}")
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def polygon_count(path: Path) -> int:
    import pyogrio

    return pyogrio.read_info(path)["features"]


def ways(model: Path, vector: bool) -> list[str]:
    """What this run adds to plain or smooth mapping, for the results table: the resolution the
    model's card gives (the raster is resampled to it unless it is 5 cm or unknown), polygons."""
    from aerialseg.train.card import read_card

    size = read_card(model).pixel_size_m
    return ([f"(model at {size:g} m)"] if size else []) + (["+ vector"] if vector else [])


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=20_000, help="raster side in pixels (default: %(default)s)")
    parser.add_argument("--model", type=Path, help="a trained model (default: the untrained U-Net of params.yaml)")
    parser.add_argument("--mode", choices=("plain", "smooth"), default="plain")
    parser.add_argument("--tta", choices=("none", "flips", "d4"), help="smooth mode's TTA (default: params.yaml)")
    parser.add_argument("--model-pixel-size", type=float, help="the untrained model's card: trained at M m per pixel")
    parser.add_argument("--vector", action="store_true", help="also write the polygons (aerialseg-predict --vector)")
    args = parser.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    raster = WORK / f"scene_{args.size}.tif"
    if not raster.exists():
        write_large_raster(raster, args.size)
    model = args.model or WORK / f"unet_{args.model_pixel_size or 'unknown'}.keras"
    if not model.exists():
        default_model(model, args.model_pixel_size)
    out = WORK / "maps"
    arguments = ["--model", str(model), "--params", str(REPO / "params.yaml"), "--out", str(out), "--mode", args.mode]
    arguments += ["--overwrite", *(["--vector"] if args.vector else []), str(raster)]
    wall, peak_mb = run_command(arguments + (["--tta", args.tta] if args.tta else []))

    with rasterio.open(raster) as source, rasterio.open(out / raster.name) as mapped:
        assert mapped.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG", "not a Cloud-Optimized GeoTIFF"
        assert mapped.bounds == source.bounds and mapped.crs == source.crs, "the map does not lie on the input"
        result = {
            "date": time.strftime("%Y-%m-%d"),
            "size": args.size,
            "mode": " ".join([args.mode, *ways(model, args.vector)]),
            "tta": args.tta or load_params(REPO / "params.yaml").predict.tta,
            "window": load_params(REPO / "params.yaml").patches.patch_size,
            "wall_s": round(wall, 1),
            "megapixels_per_s": round(args.size**2 / wall / 1e6, 3),
            "peak_rss_mb": round(peak_mb),
            "within_limit": peak_mb < LIMIT_MB,
            "input_mb": round(raster.stat().st_size / 2**20),
            "map_mb": round((out / raster.name).stat().st_size / 2**20, 1),
            "overviews": mapped.overviews(1),
            "polygons": polygon_count(out / f"{raster.stem}.gpkg") if args.vector else None,
            "cpu": f"{cpu_model()}, {os.cpu_count()} cores",
        }
    print(json.dumps(result, indent=2))
    with RESULTS.open("a") as table:
        if table.tell() == 0:
            table.write("| date | raster | mode | tta | wall s | Mpx/s | peak RSS MB | input MB | map MB | CPU |\n")
            table.write("|---|---|---|---|---:|---:|---:|---:|---:|---|\n")
        tta = result["tta"] if args.mode == "smooth" else "-"
        table.write(
            f"| {result['date']} | {args.size} x {args.size} | {result['mode']} | {tta} | {result['wall_s']} "
            f"| {result['megapixels_per_s']} | {result['peak_rss_mb']} | {result['input_mb']} | {result['map_mb']} "
            f"| {result['cpu']} |\n"
        )
    if not result["within_limit"]:
        raise SystemExit(f"peak RSS {peak_mb:.0f} MB is over the {LIMIT_MB:.0f} MB limit")


if __name__ == "__main__":
    main()
