"""resize stage: every tile of data/raw at the working resolution, into data/resized."""

from aerialseg.data.resize import resize_dataset
from aerialseg.pipeline.params import load_params
from aerialseg.pipeline.paths import Layout
from aerialseg.pipeline.stage import run_stage

WORKERS = 2


def main() -> None:
    params, layout = load_params(), Layout()
    resize_dataset(
        layout.raw,
        layout.resized,
        params.palette,
        scale=params.resize.scale,
        size=params.resize.size,
        pixel_size=params.resize.pixel_size,
        ignore_unknown=params.data.ignore_unknown_colours,
        workers=WORKERS,
    )


if __name__ == "__main__":
    run_stage(main)
