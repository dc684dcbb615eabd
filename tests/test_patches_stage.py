"""The patches stage on real generated tiles: memory-mappable arrays, split by tile, class counts."""

import json

import numpy as np
import pytest
import yaml
from pipeline_helpers import altered, make_project, run_stage, run_stages

from aerialseg.data.potsdam import photo_name
from aerialseg.raster.pictures import read_image


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = make_project(tmp_path_factory.mktemp("patches"), git=False)
    run_stages(["download", "resize", "patches"], folder)
    return folder


def test_patches_come_from_train_and_val_tiles_only(project):
    splits = json.loads((project / "data/patches/splits.json").read_text())
    assert splits == {"train": ["2_10", "2_11"], "val": ["2_12"], "test": ["2_13"]}
    images = np.load(project / "data/patches/train_images.npy", mmap_mode="r")
    labels = np.load(project / "data/patches/train_labels.npy", mmap_mode="r")
    assert images.shape == (2 * 16, 32, 32, 3) and labels.shape == (2 * 16, 32, 32)  # 128 px tiles, 32 px patches
    first_tile = read_image(project / "data/resized/images" / photo_name("2_10"))
    np.testing.assert_array_equal(images[0], first_tile[:32, :32])
    assert np.load(project / "data/patches/val_images.npy", mmap_mode="r").shape[0] == 16
    assert not (project / "data/patches/test_images.npy").exists()  # test tiles stay whole


def test_class_distribution_counts_every_pixel_of_each_split(project):
    distribution = json.loads((project / "metrics/class_distribution.json").read_text())
    assert set(distribution) == {"train", "val", "test"}
    assert sum(distribution["train"].values()) == 2 * 128 * 128
    assert sum(distribution["test"].values()) == 128 * 128
    labels = np.load(project / "data/patches/train_labels.npy")
    assert distribution["train"]["building"] == int((labels == 1).sum())  # step == patch size: no overlap
    assert (project / "metrics/class_distribution.png").stat().st_size > 10_000


def test_patch_larger_than_tile_keeps_the_old_patches(project):
    before = (project / "data/patches/train_images.npy").read_bytes()
    params_path = project / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["patches"]["patch_size"] = 256
    with altered(params_path, yaml.safe_dump(params).encode()):
        result = run_stage("patches", project, check=False)
    assert result.returncode != 0
    assert "tile 2_10: patch size 256 is larger than the tile (128x128)" in result.stderr
    assert (project / "data/patches/train_images.npy").read_bytes() == before
    assert sorted(p.name for p in (project / "data").iterdir()) == ["patches", "raw", "resized"]
