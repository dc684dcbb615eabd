"""predict stage: every whole test tile mapped by the trained model, plainly and smooth-blended."""

from aerialseg.config import load_params
from aerialseg.layout import Layout
from aerialseg.mapping import predict_test_tiles
from aerialseg.stage_run import run_stage


def main() -> None:
    params = load_params()
    predict_test_tiles(Layout(), params.palette, window=params.patches.patch_size, options=params.predict)


if __name__ == "__main__":
    run_stage(main)
