"""patches stage: tiles split into train / val / test; train and val cut into patches."""

from aerialseg.data.patches import make_patches
from aerialseg.pipeline.params import load_params
from aerialseg.pipeline.paths import Layout
from aerialseg.pipeline.stage import run_stage


def main() -> None:
    make_patches(Layout(), load_params())


if __name__ == "__main__":
    run_stage(main)
