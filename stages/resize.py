"""resize stage: bring every tile of data/raw to the working resolution in data/resized.

Photos are resampled with Lanczos, labels with exact nearest neighbour so they keep palette colours
only. data/resized is replaced as a whole only when every tile succeeded.
"""

from pathlib import Path

from aerialseg.config import load_params
from aerialseg.tiles import resize_dataset

RAW = Path("data/raw")
OUT = Path("data/resized")
WORKERS = 2


def main() -> None:
    params = load_params()
    resize_dataset(RAW, OUT, params.palette, params.resize.scale, params.resize.size,
                   params.data.ignore_unknown_colours, WORKERS)


if __name__ == "__main__":
    main()
