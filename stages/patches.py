"""patches stage: tiles split into train / val / test; train and val cut into patches."""

from aerialseg.config import load_params
from aerialseg.layout import Layout
from aerialseg.patching import make_patches
from aerialseg.stage_run import run_stage


def main() -> None:
    make_patches(Layout(), load_params())


if __name__ == "__main__":
    run_stage(main)
