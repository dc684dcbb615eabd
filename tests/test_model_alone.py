"""A trained model on its own: copied alone into an empty folder, from an MLflow URI and as its
ONNX export without TensorFlow, it maps a photo at the scale it was trained at, whatever the
photo's resolution, on the photo's own grid; and its polygons burnt back give its map."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from conftest import POTSDAM_PALETTE
from pipeline_helpers import REPO, copy_repository, environment
from pyogrio import raw
from rasterio.features import rasterize
from test_onnx_predictor import WITHOUT_TRAIN_EXTRA

from aerialseg.data.synthetic import generate_tile
from aerialseg.predict.export import main as export
from aerialseg.train.card import read_card

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("reproduced_project")]  # one worker builds it once

SIZE = 384  # pixels of the 5 cm photo; its 10 cm version has half as many per side
CRS = "EPSG:25833"
CORNER = (367_000.0, 5_810_000.0)
AGREEMENT = 0.97  # share of pixels on which the two photos' maps agree


@pytest.fixture(scope="module")
def alone(reproduced_project, tmp_path_factory):
    """(the project, an empty folder holding only a copy of its trained model, the photos)."""
    project = copy_repository(reproduced_project, tmp_path_factory.mktemp("alone") / "project")
    folder = tmp_path_factory.mktemp("empty")
    shutil.copy(project / "models/model.keras", folder / "model.keras")
    fine, _ = generate_tile(101, SIZE, POTSDAM_PALETTE)
    coarse = fine.reshape(SIZE // 2, 2, SIZE // 2, 2, 3).mean(axis=(1, 3)).round().astype(np.uint8)
    photos = {
        "fine": write_photo(folder / "fine.tif", fine, 0.05),
        "coarse": write_photo(folder / "coarse.tif", coarse, 0.1),
    }
    return project, folder, photos


def write_photo(path, pixels, pixel_size):
    transform = Affine(pixel_size, 0, CORNER[0], 0, -pixel_size, CORNER[1])
    profile = dict(driver="GTiff", height=pixels.shape[0], width=pixels.shape[1], count=3, dtype="uint8")
    with rasterio.open(path, "w", crs=CRS, transform=transform, photometric="RGB", **profile) as dataset:
        dataset.write(np.moveaxis(pixels, -1, 0))
    return path


def predict(cwd, *arguments, env=None, script=None):
    """aerialseg-predict in a fresh process in ``cwd`` (no params.yaml there)."""
    command = (
        [sys.executable, "-c", script, *map(str, arguments)] if script else ["aerialseg-predict", *map(str, arguments)]
    )
    done = subprocess.run(command, cwd=cwd, env=env or environment(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def read_map(path):
    with rasterio.open(path) as dataset:
        return dataset.read(1), dataset.transform, dataset.crs


def assert_maps_agree(maps):
    """Each map on its own photo's grid, and the 10 cm map, each pixel doubled, on the 5 cm one."""
    fine, fine_transform, fine_crs = read_map(maps / "fine.tif")
    coarse, coarse_transform, coarse_crs = read_map(maps / "coarse.tif")
    assert fine.shape == (SIZE, SIZE) and coarse.shape == (SIZE // 2, SIZE // 2)
    assert fine_transform.a == pytest.approx(0.05) and coarse_transform.a == pytest.approx(0.1)
    assert fine_crs == coarse_crs == rasterio.crs.CRS.from_string(CRS)
    doubled = coarse.repeat(2, axis=0).repeat(2, axis=1)
    assert (doubled == fine).mean() >= AGREEMENT
    assert len(np.unique(fine)) > 1  # a map of classes, not of one
    return fine


def test_the_model_alone_maps_5_and_10_cm_photos_at_its_own_scale(alone):
    project, folder, photos = alone
    assert read_card(folder / "model.keras").pixel_size_m == pytest.approx(0.1)  # 5 cm tiles halved
    predict(folder, "--model", "model.keras", "--out", "maps", "--mode", "plain", "--vector", *photos.values())
    fine = assert_maps_agree(folder / "maps")
    with rasterio.open(folder / "maps/fine.tif") as dataset:
        transform, shape = dataset.transform, dataset.shape
    meta, _, geometry, fields = raw.read(folder / "maps/fine.gpkg")
    values = fields[list(meta["fields"]).index("value")]
    shapes = zip(shapely.from_wkb(geometry), values)
    burnt = rasterize(shapes, out_shape=shape, transform=transform, fill=255, dtype="uint8")
    assert (burnt == fine).mean() >= 0.995


def test_an_mlflow_uri_maps_as_the_file_does(alone):
    project, folder, photos = alone
    run_id = json.loads((project / "models/mlflow_run.json").read_text())["run_id"]
    env = {**environment(), "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}
    predict(
        folder, "--model", f"runs:/{run_id}/model", "--out", "uri_maps", "--mode", "plain", *photos.values(), env=env
    )
    assert_maps_agree(folder / "uri_maps")


def test_the_onnx_export_maps_as_the_model_does_without_tensorflow(alone):
    project, folder, photos = alone
    assert export(["--model", str(folder / "model.keras"), "--out", str(folder / "export")]) == 0  # needs TensorFlow
    env = {**environment(), "PYTHONPATH": str(REPO)}
    arguments = ["--model", folder / "export/model.onnx", "--out", folder / "onnx_maps", "--mode", "plain"]
    done = predict(folder, *arguments, *photos.values(), env=env, script=WITHOUT_TRAIN_EXTRA)
    assert done.stdout.splitlines()[-2] == "imported: []"
    assert_maps_agree(folder / "onnx_maps")
