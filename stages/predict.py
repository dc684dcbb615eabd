"""predict stage: every whole test tile mapped by the trained model, plainly and smooth-blended."""

from aerialseg.pipeline.params import load_params
from aerialseg.pipeline.paths import Layout
from aerialseg.pipeline.stage import run_stage
from aerialseg.predict.mapping import predict_test_tiles


def main() -> None:
    params = load_params()
    predict_test_tiles(Layout(), params.palette, window=params.patches.patch_size, options=params.predict)


if __name__ == "__main__":
    run_stage(main)
