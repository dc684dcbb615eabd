"""The whole pipeline, download to report, on Vaihingen's three archives as downloaded (the generated
stand-in, under the names params-vaihingen.yaml lists at the repository root) with the preset's
settings scaled down: tiny tiles, four areas, two epochs, no pretrained encoder."""

import json

import pandas as pd
import pytest
import yaml
from conftest import POTSDAM_PALETTE
from pipeline_helpers import REPO, TINY, deep_update, make_project, run_stage

from aerialseg.pipeline.paths import Layout
from aerialseg.raster.pictures import read_image
from aerialseg.testing.vaihingen_zip import write_vaihingen_zips

pytestmark = pytest.mark.slow

STAGES = ("validate", "download", "resize", "patches", "train", "predict", "evaluate", "report")
AREAS = ["area1", "area2", "area3", "area4"]
SCALED_DOWN = deep_update(
    json.loads(json.dumps(TINY)),
    {
        "patches": {"split": {"train": ["area1", "area2"], "val": ["area3"], "test": ["area4"]}},
        "train": {"encoder": "none", "encoder_weights": "none", "freeze_encoder_epochs": 0},
        "data": {"synthetic": {"tiles": 4}},  # not read: the preset's source is local, the archives below
    },
)


def test_the_preset_scaled_down_runs_from_the_archives_to_the_report(tmp_path):
    preset = yaml.safe_load((REPO / "params-vaihingen.yaml").read_text())
    project = make_project(tmp_path / "vaihingen", deep_update(preset, SCALED_DOWN), git=False)
    write_vaihingen_zips(project, AREAS, 256, POTSDAM_PALETTE)  # the three zips, named as the preset lists them
    for stage in STAGES:
        run_stage(stage, project)

    layout = Layout(project)
    manifest = pd.read_csv(layout.raw.manifest, dtype={"tile": str})
    assert list(manifest["tile"]) == AREAS and (manifest["height"] != manifest["width"]).all()
    assert read_image(layout.raw.photo("area4")).shape[2] == 3 and layout.raw.photo("area4").name.endswith("IRRG.tif")
    assert layout.raw.label("area4", "no_boundary").is_file()
    evaluation = json.loads((project / "metrics/evaluate.json").read_text())
    for key in ("oa", "miou", "mf1", "oa_no_clutter", "miou_no_clutter", "mf1_no_clutter"):
        assert 0 <= evaluation["plain"][key] <= 1, key
    assert layout.report.is_file() and layout.predictions.map("plain", "area4", ".tif").is_file()
