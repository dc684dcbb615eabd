"""aerialseg.evaluate.report on a small scored project: every figure drawn and linked from report.md."""

import re

import imageio.v2 as imageio_v2
import pytest
from scored_project import TEST_TILES, scored_project, write_snapshot_maps, write_snapshots

from aerialseg.evaluate.evaluation import evaluate
from aerialseg.evaluate.report import write_report


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return scored_project(tmp_path)


def test_report_draws_every_figure_and_links_them(project):
    layout = project["layout"]
    write_snapshots(layout, project["palette"])
    write_snapshot_maps(layout, project["labels"], project["palette"])
    evaluate(layout, project["params"])

    write_report(layout, project["params"])

    expected = {
        "curves.png",
        "confusion_plain.png",
        "confusion_smooth.png",
        "snapshot_grid.png",
        "progress.mp4",
        "progress.gif",
        *(f"{tile}_comparison.png" for tile in TEST_TILES),
    }
    assert {path.name for path in layout.figures.iterdir()} == expected
    assert all((layout.figures / name).stat().st_size > 1000 for name in expected)
    with imageio_v2.get_reader(layout.figures / "progress.mp4") as video:
        assert video.count_frames() == 2
    assert len(imageio_v2.mimread(layout.figures / "progress.gif")) == 2
    markdown = layout.report.read_text()
    linked = set(re.findall(r"\(figures/([^)]+)\)", markdown))
    assert linked == expected
    assert "| smooth |" in markdown and "## Snapshots" in markdown and "mIoU w/o clutter" in markdown
    assert "**Protocol.** Scored on the full labels (every pixel scored" in markdown
    assert "the pixels of the 2 test tile(s) 2_10, 2_11 pooled into one confusion matrix per mode" in markdown


def test_report_without_snapshots_says_so_and_skips_their_pictures(project):
    layout = project["layout"]
    evaluate(layout, project["params"])

    write_report(layout, project["params"])

    names = {path.name for path in layout.figures.iterdir()}
    assert "snapshot_grid.png" not in names and "progress.gif" not in names
    assert {"curves.png", "confusion_smooth.png", "2_10_comparison.png"} <= names
    assert "No snapshots were found" in layout.report.read_text()
