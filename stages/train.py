"""train stage: the U-Net fitted on the patches, every epoch logged to MLflow, resumable."""

from aerialseg.config import load_params
from aerialseg.layout import Layout
from aerialseg.stage_run import run_stage
from aerialseg.training import train


def main() -> None:
    train(Layout(), load_params())


if __name__ == "__main__":
    run_stage(main)
