"""report stage: figures, a progress video and metrics/report.md tying them to the scores."""

from aerialseg.evaluate.report import write_report
from aerialseg.pipeline.params import load_params
from aerialseg.pipeline.paths import Layout
from aerialseg.pipeline.stage import run_stage


def main() -> None:
    write_report(Layout(), load_params())


if __name__ == "__main__":
    run_stage(main)
