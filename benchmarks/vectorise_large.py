"""Benchmark: polygons out of a 20000 x 20000 class map, a band of rows at a time, in bounded memory.

A synthetic class-index map (class 0 around discs of classes 1 to 5 and of no data, of radius 5
to 120 px, three centred in each 256 x 256 cell; EPSG:25833 at 5 cm) is generated
a band of rows at a time, deterministically: a band draws every disc that reaches it, in the
same order, so bands fit together whatever their height and the map is never whole in memory.
Class 0 is one region around everything, spanning the whole map: the worst case of the
streaming polygoniser, which holds such a region open to the end. The ``islands`` round makes the
background no data instead, so every region is a disc or a cluster of them: the usual case, where
only the regions along one seam are held.

Each round runs in a fresh child process whose peak RSS comes from wait4:

- ``streamed``: aerialseg.predict.vectorise.vectorise_rows on the map's bands of 512 rows;
- ``islands``: the same on the map with a no-data background;
- ``naive``: the whole map in memory, ``rasterio.features.shapes`` on it at once, every polygon
  converted, placed and written in one go; run at a size it can do;
- ``imports``: the same imports and nothing else, the floor of both.

At the smaller size both rounds must write the same number of polygons (the regions are the
same); the table gives the wall time, the peak RSS and the GeoPackage's size, and the CPU.

    python -m benchmarks.vectorise_large                       # 20000 streamed, 8000 both ways
    python -m benchmarks.vectorise_large --size 10000 --naive-size 4000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyogrio
import shapely
import shapely.geometry
from pyogrio import raw
from rasterio.crs import CRS
from rasterio.features import shapes
from rasterio.transform import from_origin

from aerialseg.predict.vectorise import BAND_ROWS, vectorise_rows
from benchmarks.machine import machine

CELL, DISCS, MAX_RADIUS = 256, 3, 120  # discs per cell, centred in it, reaching at most MAX_RADIUS beyond
CLASSES = ("impervious", "building", "low_vegetation", "tree", "car", "clutter")
VALUES = np.array([1, 2, 3, 4, 5, 255], dtype=np.uint8)  # what discs hold: a class, or no data
CRS_ = CRS.from_epsg(25833)
TRANSFORM = from_origin(367_000.0, 5_811_000.0, 0.05, 0.05)


def class_rows(size: int, top: int, height: int, background: int = 0) -> np.ndarray:
    """Rows ``top`` to ``top + height`` of the size x size map: the background and every disc that reaches them."""
    band = np.full((height, size), background, dtype=np.uint8)
    first, last = max(0, (top - MAX_RADIUS) // CELL), min(size - 1, top + height + MAX_RADIUS) // CELL
    for cell_row in range(first, last + 1):
        for cell_column in range(0, (size - 1) // CELL + 1):
            for y, x, radius, value in _discs(cell_row, cell_column):
                upper, lower = max(top, y - radius), min(top + height, y + radius + 1)
                left, right = max(0, x - radius), min(size, x + radius + 1)
                if upper < lower and left < right:
                    rows, columns = np.ogrid[upper:lower, left:right]
                    inside = (rows - y) ** 2 + (columns - x) ** 2 < radius**2
                    band[upper - top : lower - top, left:right][inside] = value
    return band


def _discs(cell_row: int, cell_column: int) -> Iterator[tuple[int, int, int, int]]:
    """The discs of one cell (centre row, centre column, radius, value), the same for every band."""
    rng = np.random.default_rng([cell_row, cell_column])
    for _ in range(DISCS):
        y, x = rng.integers(0, CELL, 2) + (cell_row * CELL, cell_column * CELL)
        yield int(y), int(x), int(rng.integers(5, MAX_RADIUS)), int(rng.choice(VALUES))


def bands(size: int, background: int = 0) -> Iterator[np.ndarray]:
    for top in range(0, size, BAND_ROWS):
        yield class_rows(size, top, min(BAND_ROWS, size - top), background)


def streamed(size: int, out: Path) -> None:
    vectorise_rows(bands(size), TRANSFORM, CRS_, CLASSES, out)


def islands(size: int, out: Path) -> None:
    vectorise_rows(bands(size, background=255), TRANSFORM, CRS_, CLASSES, out)


def naive(size: int, out: Path) -> None:
    """The map whole, polygonised at once: what the streaming polygoniser replaces."""
    index = np.concatenate(list(bands(size)))
    found = list(shapes(index, mask=index != 255, connectivity=4, transform=TRANSFORM))
    geometries = [shapely.geometry.shape(geometry) for geometry, _ in found]
    values = np.array([value for _, value in found], dtype=np.uint8)
    names = np.array([CLASSES[value] for value in values], dtype=object)
    fields = [names, values, shapely.area(geometries)]
    wkb = np.array(shapely.to_wkb(geometries), dtype=object)
    raw.write(out, wkb, fields, ["class", "value", "area_m2"], driver="GPKG", geometry_type="Polygon", crs="EPSG:25833")


def one_round(way: str, size: int, out: Path) -> dict:
    """In this (fresh) process: one way at one size; the parent measures the peak RSS."""
    start = time.perf_counter()
    if way != "imports":
        {"streamed": streamed, "islands": islands, "naive": naive}[way](size, out)
    wall = time.perf_counter() - start
    features = pyogrio.read_info(out)["features"] if way != "imports" else 0
    return dict(wall_s=wall, features=features, gpkg_mb=out.stat().st_size / 2**20 if features else 0)


def run_round(way: str, size: int, folder: Path) -> dict:
    """``way`` at ``size`` in a child; its result with the child's peak RSS (wait4, KiB on Linux)."""
    out = folder / f"{way}_{size}.gpkg"
    command = [sys.executable, "-m", "benchmarks.vectorise_large", "--round", way, str(size), str(out)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{way} at {size}: failed")
    result = json.loads(output.splitlines()[-1])
    print(f"{way} {size}: {result} peak RSS {usage.ru_maxrss / 1024:.0f} MB", flush=True)
    return dict(result, way=way, size=size, peak_rss_mb=usage.ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=20_000, help="streamed map side (default: %(default)s)")
    parser.add_argument("--naive-size", type=int, default=8_000, help="side done both ways (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rounds = [
            run_round("imports", 0, Path(folder)),
            run_round("naive", args.naive_size, Path(folder)),
            run_round("streamed", args.naive_size, Path(folder)),
            run_round("streamed", args.size, Path(folder)),
            run_round("islands", args.size, Path(folder)),
        ]
    if rounds[1]["features"] != rounds[2]["features"]:
        raise SystemExit(f"naive and streamed polygons differ in number: {rounds[1]} {rounds[2]}")
    print(f"{machine()}; bands of {BAND_ROWS} rows")
    print("| map | way | polygons | wall s | peak RSS MB | GeoPackage MB |")
    print("|---|---|---:|---:|---:|---:|")
    for one in rounds:
        side = f"{one['size']} x {one['size']}" if one["size"] else "-"
        print(
            f"| {side} | {one['way']} | {one['features']} | {one['wall_s']:.1f} | {one['peak_rss_mb']:.0f} "
            f"| {one['gpkg_mb']:.1f} |"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--round"]:
        print(json.dumps(one_round(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))))
    else:
        main()
