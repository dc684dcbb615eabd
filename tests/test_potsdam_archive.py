"""End to end on Potsdam as users download it: one Potsdam.zip of the real layout (every band set,
world files, both label variants, the defective 4_12, decoy products), small, through every stage's
library function with 4-band RGBIR photos, one tile excluded, scored on the boundary-free labels."""

import json
import os

import keras
import numpy as np
import pytest
from conftest import POTSDAM_PALETTE, repo_params

from aerialseg.data.palette import IGNORE_INDEX
from aerialseg.data.patches import make_patches
from aerialseg.data.resize import resize_dataset
from aerialseg.data.sources import download_raw
from aerialseg.evaluate.evaluation import evaluate
from aerialseg.evaluate.report import write_report
from aerialseg.pipeline.paths import Layout
from aerialseg.predict.mapping import predict_test_tiles
from aerialseg.raster.georef import read_georef, world_file_path
from aerialseg.raster.pictures import read_image, read_label
from aerialseg.testing.potsdam_zip import write_potsdam_zip
from aerialseg.train.training import train

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(__name__)]  # one worker runs the pipeline once

TILES = ["2_10", "2_11", "2_12", "2_13", "4_12", "7_10"]
SIDE = 256  # px of a generated tile; halved by the resize stage
TEST_TILES = ["2_12", "2_13"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("potsdam")
    archive = write_potsdam_zip(
        root / "Potsdam.zip", TILES, SIDE, POTSDAM_PALETTE, filler=4 << 20, defective=["4_12"], participants=["4_12"]
    )
    params = repo_params(
        {
            "data": {
                "source": "local",
                "local": {"paths": [str(archive)]},
                "bands": "rgbir",
                "exclude": ["7_10"],  # as the published protocol drops it
                "participants_labels": ["4_12"],  # the right labels of the defective tile
            },
            "resize": {"scale": 0.5},
            "patches": {
                "patch_size": 32,
                "step": 32,
                "split": {"train": ["2_10", "4_12"], "val": ["2_11"], "test": TEST_TILES},
            },
            "train": {"epochs": 2, "snapshot_every": 2, "base_filters": 4, "batch_size": 8, "dropout": 0.0},
            "predict": {"tta": "none", "batch_size": 32},
            "evaluate": {"labels": "no_boundary"},
        }
    )
    layout = Layout(root)
    uri = os.environ.pop("MLFLOW_TRACKING_URI", None)  # the project's own store, under root
    try:
        download_raw(layout, params.data, params.palette, params.evaluate.labels)
        resize_dataset(layout.raw, layout.resized, params.palette, scale=params.resize.scale, workers=1)
        make_patches(layout, params)
        train(layout, params)
        predict_test_tiles(layout, params.palette, window=params.patches.patch_size, options=params.predict)
        evaluate(layout, params)
        write_report(layout, params)
    finally:
        if uri is not None:
            os.environ["MLFLOW_TRACKING_URI"] = uri
    return layout, params


def test_download_reads_the_chosen_band_set_of_the_tiles_kept(project):
    layout, params = project
    raw = layout.raw
    images = sorted(path.name for path in (raw.path / "images").iterdir())
    kept = [tile for tile in TILES if tile != "7_10"]
    assert images == sorted(f"top_potsdam_{tile}_RGBIR.{suffix}" for tile in kept for suffix in ("tif", "tfw"))
    for tile in kept:
        assert read_image(raw.photo(tile)).shape == (SIDE, SIDE, 4)
        params.palette.rgb_to_index(read_image(raw.label(tile)))  # no black; 4_12's too: the participants' copy
        read_label(raw.label(tile, "no_boundary"), params.palette)


def test_four_bands_reach_the_model(project):
    layout, _ = project
    assert np.load(layout.patches.images("train"), mmap_mode="r").shape == (2 * 16, 32, 32, 4)
    assert keras.saving.load_model(layout.model).input_shape == (None, None, None, 4)


def test_every_map_lies_on_the_ground_of_its_photo(project):
    """The raw photo (256 px, 5 cm) and its map (128 px, 10 cm): the same outer corners."""
    layout, _ = project
    for tile in TEST_TILES:
        photo = read_georef(layout.raw.photo(tile)).transform
        for mode in ("plain", "smooth"):
            for suffix, world_suffix in ((".tif", ".tfw"), (".png", ".pgw")):
                path = layout.predictions.map(mode, tile, suffix)
                assert world_file_path(path).suffix == world_suffix and world_file_path(path).is_file()
                world = read_georef(path).transform  # from the world file beside it (and the GeoTIFF's tags)
                side = read_image(path).shape[0]
                assert side == SIDE // 2 and world.a == pytest.approx(2 * photo.a)
                assert world @ (0, 0) == pytest.approx(photo @ (0, 0), abs=1e-6)
                assert world @ (side, side) == pytest.approx(photo @ (SIDE, SIDE), abs=1e-6)


def test_scores_are_on_the_boundary_free_labels_and_say_so(project):
    layout, params = project
    results = json.loads(layout.evaluation.read_text())
    protocol = results["protocol"]
    assert protocol["labels"] == "no_boundary" and protocol["tiles"] == TEST_TILES
    assert protocol["tile_sizes"] == [f"{SIDE // 2} x {SIDE // 2}"]
    ignored = sum(
        int((read_label(layout.resized.label(t, "no_boundary"), params.palette) == IGNORE_INDEX).sum())
        for t in TEST_TILES
    )
    assert protocol["pixels_ignored"] == ignored > 0
    for mode in ("plain", "smooth"):
        assert sum(c["support"] for c in results[mode]["per_class"].values()) == protocol["pixels_scored"]
        for key in ("oa", "miou", "mf1", "oa_no_clutter", "miou_no_clutter", "mf1_no_clutter"):
            assert 0 <= results[mode][key] <= 1
    report = layout.report.read_text()
    assert "Scored on the boundary-free labels" in report and "2 test tile(s) 2_12, 2_13 pooled" in report
