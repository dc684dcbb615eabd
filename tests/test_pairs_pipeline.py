"""The whole pipeline on folders of photo/label pairs, each from download to report with the tiny
settings: index labels with an ignore value; colour labels of another palette; polygon labels of
photos with empty corners, resized to a pixel size. The ignored and the empty pixels must be left
out of every score. One process builds the three projects, loading TensorFlow once."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from pipeline_helpers import TINY, deep_update, make_project, run_projects

from aerialseg.data.palette import IGNORE_INDEX
from aerialseg.pipeline.params import load_params
from aerialseg.pipeline.paths import Layout
from aerialseg.raster.pictures import read_image, read_label
from aerialseg.testing.pairs_folder import empty_corner, write_pairs_folder, write_polygon_labels
from aerialseg.train.card import read_card

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(__name__)]  # one worker builds the projects once

STAGES = ("validate", "download", "resize", "patches", "train", "predict", "evaluate", "report")
STEMS = ["image_1", "image_2", "image_10", "image_11"]
SPLIT = {"train": ["image_1", "image_2"], "val": ["image_10"], "test": ["image_11"]}
IGNORED_ROWS = 32  # of 256: 16 of the 128 rows of a resized tile
EMPTY_CORNER = 48  # px of 256 at the bottom right of a photo that holds nothing: 24 of 128 resized
OTHER_CLASSES = {  # another palette, with other names, in the synthetic classes' order
    "road": [128, 128, 128],
    "house": [200, 40, 40],
    "grass": [120, 220, 120],
    "woods": [10, 90, 10],
    "vehicle": [250, 200, 0],
    "junk": [90, 60, 30],
}


def pairs_project(folder, pairs: dict, classes: dict | None = None, without: list[str] | None = None, resize=None):
    """A tiny project of the pairs layout; ``classes`` replaces params.yaml's (the helpers merge),
    ``resize`` is merged in."""
    changes = deep_update(
        json.loads(json.dumps(TINY)),
        {
            "data": {"layout": "pairs", "source": "local", "pairs": pairs},
            "patches": {"split": SPLIT},
            "evaluate": {"labels": "full"},
            "resize": resize or {},
        },
    )
    project = make_project(folder, changes, git=False)
    if classes:
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["classes"], params["evaluate"]["without_classes"] = classes, without
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return project


def labelled_test_pixels(project) -> int:
    """Pixels of the test tile's (resized) label that are a class, not ignored."""
    params = load_params(project / "params.yaml")
    label = read_label(Layout(project).resized.label(SPLIT["test"][0]), params.palette)
    assert (label[: IGNORED_ROWS // 2] == IGNORE_INDEX).all()  # the ignored strip survived the resize
    return int((label != IGNORE_INDEX).sum())


def assert_scored_on_labelled_pixels_only(project, empty_train_pixels: int = 0) -> None:
    """Scores, the test and the training class counts take only the labelled, not empty, pixels."""
    labelled = labelled_test_pixels(project)
    assert 0 < labelled < 128 * 128
    for mode in ("plain", "smooth"):
        rows = pd.read_csv(project / f"metrics/confusion_{mode}.csv")  # one row a pixel below 20 000
        assert len(rows) == labelled
    distribution = json.loads((project / "metrics/class_distribution.json").read_text())
    assert sum(distribution["test"].values()) == labelled
    assert sum(distribution["train"].values()) == 2 * 128 * (128 - IGNORED_ROWS // 2) - empty_train_pixels
    evaluation = json.loads((project / "metrics/evaluate.json").read_text())
    assert 0 <= evaluation["plain"]["miou"] <= 1


def assert_outputs(project) -> None:
    layout = Layout(project)
    assert layout.model.is_file() and layout.report.is_file()
    assert list(layout.figures.iterdir())
    for mode in ("plain", "smooth"):
        assert (layout.predictions.map(mode, "image_11", ".tif")).is_file()
    manifest = pd.read_csv(layout.raw.manifest, dtype={"tile": str})
    assert list(manifest["tile"]) == STEMS  # natural order: image_2 before image_10


def index_project(folder):
    """Index labels 1..6 with 0 as the ignore value."""
    project = pairs_project(folder, {"label_encoding": "index", "label_values": [1, 2, 3, 4, 5, 6], "ignore_value": 0})
    write_pairs_folder(project, STEMS, 256, label_values=[1, 2, 3, 4, 5, 6], ignore_value=0, ignore_rows=IGNORED_ROWS)
    return project


def colour_project(folder):
    """Colour labels of another palette, magenta ignored, the class junk left out of the scores."""
    pairs = {"label_encoding": "colour", "label_values": None, "ignore_value": [255, 0, 255]}
    project = pairs_project(folder, pairs, OTHER_CLASSES, ["junk"])
    params = load_params(project / "params.yaml")
    write_pairs_folder(
        project,
        STEMS,
        256,
        colours=params.palette,
        ignore_value=(255, 0, 255),
        ignore_rows=IGNORED_ROWS,
        georeferenced=True,
        compress=True,
    )
    return project


def with_empty_corners(project) -> None:
    """The test tile's corner empty by nodata 0, a training tile's by an alpha band."""
    empty_corner(project / "images/image_11.tif", EMPTY_CORNER, "nodata")
    empty_corner(project / "images/image_1.tif", EMPTY_CORNER, "alpha")


def polygon_project(folder):
    """One GeoPackage of classed polygons labels every photo; the photos, at 0.1 m, have an empty
    corner and are resized to resize.pixel_size 0.2."""
    pairs = {"labels": "labels.gpkg", "class_field": "cover"}
    project = pairs_project(folder, pairs, resize={"scale": None, "size": None, "pixel_size": 0.2})
    params = load_params(project / "params.yaml")
    truths = write_pairs_folder(project, STEMS, 256, ignore_rows=IGNORED_ROWS, georeferenced=True, ignore_value=255)
    write_polygon_labels(project / "labels.gpkg", truths, params.palette.names, field="cover")
    with_empty_corners(project)
    return project


def pictures_project(folder):
    """The polygon project's photos with its labels as pictures (index, 255 ignored)."""
    project = pairs_project(folder, {"label_encoding": "index", "ignore_value": 255})
    write_pairs_folder(project, STEMS, 256, ignore_rows=IGNORED_ROWS, georeferenced=True, ignore_value=255)
    with_empty_corners(project)
    return project


PROJECTS = {"index": index_project, "colour": colour_project, "polygons": polygon_project, "pictures": pictures_project}


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    """The three pipelines run to the report, and the label pictures' project downloaded."""
    root = tmp_path_factory.mktemp("pairs")
    built = {name: make(root / name) for name, make in PROJECTS.items()}
    run_projects({project: ["download"] if name == "pictures" else STAGES for name, project in built.items()})
    return built


def test_index_labels_with_an_ignore_value_train_and_score(projects):
    project = projects["index"]
    assert_outputs(project)
    assert_scored_on_labelled_pixels_only(project)
    assert (project / "metrics/figures/image_11_comparison.png").is_file()  # ignored pixels drawn black there


def test_colour_labels_of_another_palette_train_and_score(projects):
    project = projects["colour"]
    assert_outputs(project)
    assert_scored_on_labelled_pixels_only(project)
    assert set(json.loads((project / "metrics/class_distribution.json").read_text())["test"]) == set(OTHER_CLASSES)
    stored = read_image(Layout(project).raw.label("image_11"))
    assert (stored[:IGNORED_ROWS] == 0).all()  # unlabelled pixels are stored black


def test_polygon_labels_on_photos_with_empty_corners_train_at_the_pixel_size_asked(projects):
    """data/raw holds the labels a run on the label pictures holds; the corner is neither trained
    on nor mapped (255, black); only labelled pixels are scored; and the model's resolution is 0.2 m."""
    project = projects["polygons"]
    assert_outputs(project)
    layout, corner = Layout(project), EMPTY_CORNER // 2
    assert_scored_on_labelled_pixels_only(project, empty_train_pixels=corner * corner)
    for mode in ("plain", "smooth"):
        index = read_image(layout.predictions.map(mode, "image_11", ".tif"))[..., 0]
        assert (index[-corner:, -corner:] == IGNORE_INDEX).all() and (index[:-corner] != IGNORE_INDEX).all()
        assert (read_image(layout.predictions.map(mode, "image_11", ".png"))[-corner:, -corner:] == 0).all()
    assert json.loads((project / "metrics/train.json").read_text())["pixel_size_m"] == 0.2
    card = read_card(layout.model)
    assert card.pixel_size_m == 0.2 and card.bands == ("R", "G", "B")

    for stem in STEMS:
        burnt = read_image(layout.raw.label(stem))
        painted = read_image(Layout(projects["pictures"]).raw.label(stem))
        assert np.all(burnt == painted, axis=-1).mean() >= 0.99, stem
