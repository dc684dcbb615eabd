"""manifest.csv of data/raw and data/resized: one row per tile, with its size, where it came from
and its ground resolution (``pixel_size_m``, metres per pixel; empty where unknown).

The download stage writes it, resize rewrites it with the new sizes, and patches reads it; all of
them go through this module, so the columns are defined once.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from aerialseg.errors import MissingFileError
from aerialseg.pipeline.atomic import atomic_file

MANIFEST_COLUMNS = ("tile", "height", "width", "source", "pixel_size_m")


def read_manifest(path: str | Path) -> pd.DataFrame:
    """A stage's manifest.csv (tile, height, width, source, pixel_size_m); tile ids stay strings
    such as "2_10", an unknown pixel size is NaN."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file (run the stage that writes it first)")
    manifest = pd.read_csv(
        path,
        dtype={"tile": str, "source": str},
        keep_default_na=False,
        na_values={"pixel_size_m": [""]},
        float_precision="round_trip",  # the resolution as written, not off in its last digit
    )
    missing = [column for column in MANIFEST_COLUMNS if column not in manifest.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {list(MANIFEST_COLUMNS)}")
    return manifest


def write_manifest(path: str | Path, rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    with atomic_file(path) as tmp:
        manifest.to_csv(tmp, index=False)
    return manifest
