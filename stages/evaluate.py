"""evaluate stage: the test maps and every training snapshot scored against the test labels."""

from aerialseg.config import load_params
from aerialseg.evaluation import evaluate
from aerialseg.layout import Layout


def main() -> None:
    evaluate(Layout(), load_params())


if __name__ == "__main__":
    main()
