"""predict stage: every whole test tile mapped by the trained model, plainly and smooth-blended,
with the classes, window and settings of the model's card."""

from aerialseg.pipeline.params import load_params
from aerialseg.pipeline.paths import Layout
from aerialseg.pipeline.stage import run_stage
from aerialseg.predict.mapping import predict_as_the_card_says


def main() -> None:
    predict_as_the_card_says(Layout(), load_params())


if __name__ == "__main__":
    run_stage(main)
