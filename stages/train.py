"""train stage: the U-Net fitted on the patches, every epoch logged to MLflow, resumable."""

from aerialseg.pipeline.params import load_params
from aerialseg.pipeline.paths import Layout
from aerialseg.pipeline.stage import run_stage
from aerialseg.train.training import train


def main() -> None:
    train(Layout(), load_params())


if __name__ == "__main__":
    run_stage(main)
