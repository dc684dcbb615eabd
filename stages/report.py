"""report stage: figures, a progress video and metrics/report.md tying them to the scores."""

from aerialseg.config import load_params
from aerialseg.layout import Layout
from aerialseg.reporting import write_report
from aerialseg.stage_run import run_stage


def main() -> None:
    write_report(Layout(), load_params())


if __name__ == "__main__":
    run_stage(main)
