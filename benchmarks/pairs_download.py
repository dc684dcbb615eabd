"""Benchmark: the download stage of a pairs folder against the Potsdam path, on the same large tiles.

Writes TILES synthetic tiles of SIDE x SIDE px (aerialseg.data.synthetic) twice: as a folder of
photo/label pairs (``images/<tile>.tif`` photos, ``masks/<tile>.png`` one-band index labels with
an ignore value: ``data.layout: pairs``) and as Potsdam names them (``top_potsdam_<tile>_RGB.tif``
with colour labels ``top_potsdam_<tile>_label.tif``: ``data.layout: potsdam``, ``source: local``).
Then runs the download stage on each, in a throw-away copy of the project, as
``python -m stages.download`` the way DVC runs it, sampling the memory of its process tree every
0.1 s (benchmarks/real_size.py's way). Both paths hold one tile at a time, so their peaks should
be alike and independent of the number of tiles.

Run from the repository root:  python -m benchmarks.pairs_download [--tiles 10] [--side 6000]
(with the defaults about 2 minutes on 2 cores of an AMD EPYC, and 4 GB of temporary files)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from machine import machine  # noqa: E402
from real_size import GB, run_stage  # noqa: E402

from aerialseg.data.palette import IGNORE_INDEX, Palette  # noqa: E402
from aerialseg.data.potsdam import label_name, photo_name  # noqa: E402
from aerialseg.raster.pictures import read_image, write_image  # noqa: E402
from aerialseg.testing.pairs_folder import write_pairs_folder  # noqa: E402

IGNORE_VALUE = 255
PAIRS = {"layout": "pairs", "source": "local", "pairs": {"ignore_value": IGNORE_VALUE}}


def project(folder: Path, data: dict) -> Path:
    """The code and params of this repository in ``folder``, with these data settings."""
    for name in ("aerialseg", "stages"):
        shutil.copytree(REPO / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(data)
    params["evaluate"]["labels"] = "full"  # neither folder has boundary-free labels
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder


def potsdam_folder(pairs: Path, folder: Path, truths: dict[str, np.ndarray], palette: Palette) -> Path:
    """The same tiles under Potsdam's names, labels in palette colours (ignored pixels: class 0)."""
    for tile, index in truths.items():
        write_image(folder / "2_Ortho_RGB" / photo_name(tile), read_image(pairs / "images" / f"{tile}.tif"))
        colours = palette.index_to_rgb(np.where(index == IGNORE_INDEX, 0, index).astype(np.uint8))
        write_image(folder / "5_Labels_all" / label_name(tile), colours)
    return folder


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--tiles", type=int, default=10)
    arguments.add_argument("--side", type=int, default=6000)
    args = arguments.parse_args()
    classes = yaml.safe_load((REPO / "params.yaml").read_text())["classes"]
    palette = Palette(tuple(classes), tuple(tuple(colour) for colour in classes.values()))
    tiles = [f"2_{10 + number}" for number in range(args.tiles)]
    with tempfile.TemporaryDirectory(dir=REPO / "benchmarks") as folder:
        folder = Path(folder)
        start = time.perf_counter()
        pairs = project(folder / "pairs", PAIRS)
        truths = write_pairs_folder(pairs, tiles, args.side, ignore_value=IGNORE_VALUE, ignore_rows=args.side // 20)
        potsdam = potsdam_folder(pairs, folder / "potsdam_files", truths, palette)
        del truths
        print(f"{args.tiles} tiles of {args.side} px written twice in {time.perf_counter() - start:.0f} s", flush=True)
        local = {"layout": "potsdam", "source": "local", "local": {"paths": [str(potsdam)]}}
        results = {
            "potsdam (colour label TIFFs)": run_stage("download", project(folder / "potsdam", local)),
            "pairs (index label PNGs, ignore value)": run_stage("download", pairs),
        }
    lines = [
        f"{args.tiles} tiles of {args.side} x {args.side} px, RGB; {machine()}",
        "",
        "| download stage of | wall s | peak memory GB (all its processes) | data/raw on disk GB |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {name} | {result['seconds']:.0f} | {result['peak'] / GB:.2f} | {result['disk'] / GB:.2f} |"
        for name, result in results.items()
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
