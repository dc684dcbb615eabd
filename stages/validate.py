"""validate stage: the whole params.yaml checked, every key of every section, before any other stage
runs (DVC deletes a stage's outputs before running it; a typo must not cost them)."""

from aerialseg.pipeline.atomic import write_text
from aerialseg.pipeline.params import load_params
from aerialseg.pipeline.paths import Layout
from aerialseg.pipeline.stage import run_stage

STAMP = "params.yaml is valid\n"  # the same bytes every time: later stages rerun only for their own params


def main() -> None:
    load_params()
    write_text(Layout().params_valid, STAMP)


if __name__ == "__main__":
    run_stage(main)
