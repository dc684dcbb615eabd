"""evaluate stage: the test maps and every training snapshot scored against the test labels."""

from aerialseg.evaluate.evaluation import evaluate
from aerialseg.pipeline.params import load_params
from aerialseg.pipeline.paths import Layout
from aerialseg.pipeline.stage import run_stage


def main() -> None:
    evaluate(Layout(), load_params())


if __name__ == "__main__":
    run_stage(main)
