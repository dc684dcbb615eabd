"""evaluate stage: the test maps and every training snapshot scored against the test labels."""

from aerialseg.config import load_params
from aerialseg.evaluation import evaluate
from aerialseg.layout import Layout
from aerialseg.stage_run import run_stage


def main() -> None:
    evaluate(Layout(), load_params())


if __name__ == "__main__":
    run_stage(main)
