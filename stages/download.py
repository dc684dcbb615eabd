"""download stage: the photos and label pictures of ``data.source``, checked, into data/raw."""

from aerialseg.config import load_params
from aerialseg.layout import Layout
from aerialseg.sources import download_raw
from aerialseg.stage_run import run_stage


def main() -> None:
    params = load_params()
    download_raw(Layout(), params.data, params.palette)


if __name__ == "__main__":
    run_stage(main)
