"""download stage: the photos and label pictures of ``data.source``, checked, into data/raw."""

from aerialseg.data.sources import download_raw
from aerialseg.pipeline.params import load_params
from aerialseg.pipeline.paths import Layout
from aerialseg.pipeline.stage import run_stage


def main() -> None:
    params = load_params()
    resolution_required = params.resize.pixel_size is not None
    download_raw(Layout(), params.data, params.palette, params.evaluate.labels, resolution_required)


if __name__ == "__main__":
    run_stage(main)
