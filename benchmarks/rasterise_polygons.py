"""Benchmark: polygon labels burnt onto a full-size tile: read time, rasterise time and memory.

A digitised or OpenStreetMap label file holds tens of thousands of polygons per tile, and the
download stage of the pairs layout burns one onto every photo, so this must stay small next to
reading the photo itself. Writes a GeoPackage of 100 000 random rotated squares (0.5 to 3 m a
side, six classes by name) over a 6000 x 6000 tile of 5 cm pixels in EPSG:25833; then, in a
fresh process per round (so that its peak memory is the call's), times
``aerialseg.data.polygons.rasterise_polygons`` end to end and, apart, the two steps it is made
of: reading (pyogrio with the tile's bbox, WKB to shapely) and burning
(``rasterio.features.rasterize``). Memory: the peak of Python's allocations during the call
(tracemalloc: NumPy's arrays and shapely's objects, not GDAL's own buffers) and the process's
peak resident size, against its size before the call.

    python -m benchmarks.rasterise_polygons
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import shapely
from pyogrio import raw
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.transform import array_bounds, from_origin

from aerialseg.data.polygons import rasterise_polygons
from aerialseg.raster.georef import Georeference
from benchmarks.machine import machine

CLASSES = ("impervious", "building", "low_vegetation", "tree", "car", "clutter")
POLYGONS, SIDE, PIXEL, ROUNDS = 100_000, 6000, 0.05, 5
GRID = Georeference(CRS.from_epsg(25833), from_origin(366682.0, 5808338.0, PIXEL, PIXEL))
MB = 1 << 20


def random_squares(count: int, seed: int = 0) -> np.ndarray:
    """``count`` squares of 0.5 to 3 m a side, turned by random angles, their centres anywhere on the tile."""
    rng = np.random.default_rng(seed)
    west, south, east, north = array_bounds(SIDE, SIDE, GRID.transform)
    centres = rng.uniform((west, south), (east, north), (count, 1, 2))
    half, angle = rng.uniform(0.25, 1.5, (count, 1, 1)), rng.uniform(0, np.pi / 2, (count, 1, 1))
    turns = angle + np.arange(5).reshape(1, 5, 1) * np.pi / 2  # the fifth corner closes the ring
    corners = np.concatenate([np.cos(turns), np.sin(turns)], axis=2) * half * np.sqrt(2)
    return shapely.polygons(centres + corners)


def write_labels(path: Path) -> Path:
    classes = np.random.default_rng(1).choice(np.asarray(CLASSES, dtype=object), POLYGONS)
    wkb = shapely.to_wkb(random_squares(POLYGONS))
    raw.write(path, wkb, [classes], ["class"], geometry_type="Polygon", crs="EPSG:25833", driver="GPKG")
    return path


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def one_round(vector: Path) -> dict:
    """In this (fresh) process: the whole call and the resident size it peaks at, the call again under
    tracemalloc (which slows it, so it is timed the first time), then its read and burn steps alone."""
    photo = Path("photo.tif")  # named in messages only: GRID is where it lies
    call = (rasterise_polygons, vector, photo, GRID, (SIDE, SIDE), CLASSES, "class", None)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    labels, total = timed(*call)
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    call[0](*call[1:])
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    bbox = array_bounds(SIDE, SIDE, GRID.transform)
    (_, _, wkb, (names,)), read = timed(raw.read, vector, columns=["class"], bbox=bbox)
    geometries, from_wkb = timed(shapely.from_wkb, wkb)
    indices = [CLASSES.index(name) for name in names]
    shapes = zip(geometries, indices)
    burnt, burn = timed(rasterize, shapes, out_shape=(SIDE, SIDE), transform=GRID.transform, fill=255, dtype="uint8")
    assert np.array_equal(burnt, labels), "the steps alone burn another map than the call"
    return dict(
        total=total,
        read=read + from_wkb,
        rasterise=burn,
        traced_peak=traced_peak,
        rss_before=rss_before,
        rss_peak=rss_peak,
        labelled=float((labels != 255).mean()),
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        vector, written = timed(write_labels, Path(folder) / "labels.gpkg")
        print(f"wrote {POLYGONS} polygons ({vector.stat().st_size / MB:.1f} MB GeoPackage) in {written:.1f} s")
        rounds = [run_round(vector) for _ in range(ROUNDS)]
    print_table(rounds)


def run_round(vector: Path) -> dict:
    command = [sys.executable, "-m", "benchmarks.rasterise_polygons", "--round", str(vector)]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.splitlines()[-1])


def print_table(rounds: list[dict]) -> None:
    def median(key: str) -> float:
        return statistics.median(one[key] for one in rounds)

    print(f"{POLYGONS} polygons onto {SIDE} x {SIDE} px; {machine()}")
    print(f"median of {len(rounds)} rounds, each in a fresh process ({median('labelled'):.0%} of pixels labelled)")
    print("| step | s |")
    print("|---|---:|")
    print(f"| read (pyogrio, bbox; WKB to shapely) | {median('read'):.2f} |")
    print(f"| rasterise (rasterio.features.rasterize) | {median('rasterise'):.2f} |")
    print(f"| rasterise_polygons, end to end | {median('total'):.2f} |")
    print(f"peak of Python allocations during the call (tracemalloc): {median('traced_peak') / MB:.0f} MB")
    print(f"peak resident size: {median('rss_peak') / MB:.0f} MB, {median('rss_before') / MB:.0f} MB before the call")
    print("end to end, each round: " + ", ".join(f"{one['total']:.2f} s" for one in rounds))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--round"]:
        print(json.dumps(one_round(Path(sys.argv[2]))))
    else:
        main()
