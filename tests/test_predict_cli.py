"""aerialseg-predict on real files: georeferenced rasters written with rasterio, a saved Keras
model, the repository's params.yaml; the maps are read back with rasterio (GDAL) and tifffile."""

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import output_helpers
import pytest
import rasterio
import tifffile
import tomllib
import yaml
from affine import Affine
from conftest import POTSDAM_PALETTE, repo_params
from mlflow import MlflowClient
from output_helpers import Writer, kill
from pipeline_helpers import REPO, environment
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin

from aerialseg.data.potsdam import photo_name
from aerialseg.pipeline import tracking
from aerialseg.pipeline.atomic import PARTIAL
from aerialseg.pipeline.params import PredictParams
from aerialseg.pipeline.paths import Layout
from aerialseg.pipeline.stage import run_stage
from aerialseg.predict.blending import Blending, predict_probabilities
from aerialseg.predict.command import find_inputs, main
from aerialseg.predict.keras_predictor import KerasPredictor
from aerialseg.predict.mapping import map_raster, predict_test_tiles, probability_bytes
from aerialseg.predict.runtimes import load_predictor
from aerialseg.raster.pictures import read_image, write_image
from aerialseg.train.card import card_from_params, read_card, write_card
from stages import predict as predict_stage

PARAMS = REPO / "params.yaml"
WINDOW = 32
ORIGIN = from_origin(367_000.0, 5_810_000.0, 0.05, 0.05)  # a 5 cm photo in ETRS89 / UTM 33N, as Potsdam's
CRS = "EPSG:25833"
OPTIONS = ["--tta", "flips"]
RGB = ("R", "G", "B")  # params.yaml's data.bands
tiny_disk = output_helpers.tiny_disk  # a fixture


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A 3 x 3 convolution with zero padding: each window's edges change the numbers, so only the
    very windows, weights and order of the in-memory prediction give the same map. Its card:
    params.yaml's classes, WINDOW-pixel windows."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((None, None, 3)),
            keras.layers.Rescaling(1 / 64),
            keras.layers.Conv2D(POTSDAM_PALETTE.num_classes, 3, padding="same", activation="softmax"),
        ]
    )
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    write_card(path, card_from_params(repo_params({"patches": {"patch_size": WINDOW}}), pixel_size_m=0.05))
    return path


def photo(seed: int, shape=(300, 200), bands=3) -> np.ndarray:
    """Blocky random colours (H x W x bands), so classes form regions as in a real map."""
    coarse = np.random.default_rng(seed).integers(0, 256, (shape[0] // 10 + 1, shape[1] // 10 + 1, bands))
    return np.repeat(np.repeat(coarse, 10, axis=0), 10, axis=1)[: shape[0], : shape[1]].astype(np.uint8)


def write_geotiff(path: Path, pixels: np.ndarray, **profile) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width, bands = pixels.shape
    options = dict(driver="GTiff", crs=CRS, transform=ORIGIN) | profile
    with rasterio.open(path, "w", height=height, width=width, count=bands, dtype=pixels.dtype, **options) as dataset:
        dataset.write(np.moveaxis(pixels, -1, 0))
    return path


def predict(*arguments) -> int:
    return main([*map(str, arguments)])


FLIPS = PredictParams(tta="flips")  # the settings OPTIONS gives the command


def in_memory(model_file: Path, pixels: np.ndarray, options: PredictParams = FLIPS) -> np.ndarray:
    """The probabilities of the whole photo held in memory at once, as blending computes them."""
    predictor = KerasPredictor(keras.saving.load_model(model_file), POTSDAM_PALETTE.num_classes)
    return predict_probabilities(
        pixels, predictor, Blending.from_params(options, WINDOW, "smooth"), POTSDAM_PALETTE.num_classes
    )


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def error_line(capsys) -> str:
    """The command's one error line; besides it stderr may hold only the progress bar (the
    windows done before the failure), and never a traceback."""
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, lines
    assert all(" windows: " in line for line in lines if line not in errors), lines
    return errors[0]


def test_a_georeferenced_raster_becomes_a_coloured_cog_on_the_same_grid(tmp_path, model_file, capsys):
    pixels = photo(0)
    scene = write_geotiff(tmp_path / "in/scene.tif", pixels)
    out = tmp_path / "maps"
    assert predict("--model", model_file, "--params", PARAMS, "--out", out, "--probabilities", *OPTIONS, scene) == 0
    captured = capsys.readouterr()
    assert f"{scene} -> {out / 'scene.tif'}, {out / 'scene_probabilities.tif'}" in captured.out
    assert "scene.tif: smooth windows" in captured.err  # the progress bar

    probabilities = in_memory(model_file, pixels)
    with rasterio.open(scene) as source, rasterio.open(out / "scene.tif") as index_map:
        assert index_map.crs == source.crs and index_map.transform == source.transform
        assert index_map.bounds == source.bounds  # corner coordinates
        assert (index_map.count, index_map.dtypes) == (1, ("uint8",))
        np.testing.assert_array_equal(index_map.read(1), probabilities.argmax(-1))  # as if predicted whole
        assert index_map.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        colours = index_map.colormap(1)
        assert [colours[i][:3] for i in range(POTSDAM_PALETTE.num_classes)] == list(POTSDAM_PALETTE.colours)
        assert json.loads(index_map.tags()["CLASS_NAMES"]) == list(POTSDAM_PALETTE.names)
        assert json.loads(index_map.tags()["PREDICTION"]) == {
            "mode": "smooth",
            "window": WINDOW,
            **PredictParams(tta="flips").model_dump(),
        }
    with rasterio.open(out / "scene_probabilities.tif") as maps:
        assert maps.bounds == source.bounds and maps.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert maps.descriptions == POTSDAM_PALETTE.names
        assert maps.scales == (1 / 255,) * POTSDAM_PALETTE.num_classes
        np.testing.assert_array_equal(np.moveaxis(maps.read(), 0, -1), probability_bytes(probabilities))


def test_the_cog_is_tiled_compressed_with_overviews_and_directories_before_pixels(tmp_path, model_file):
    """Written in row bands of 128 (smaller tiles than the default 512, so a small raster has
    overviews), and still the very map of the whole photo predicted at once."""
    pixels = photo(1, shape=(300, 250))
    scene = write_geotiff(tmp_path / "scene.tif", pixels)
    predictor = load_predictor(model_file, POTSDAM_PALETTE.num_classes, WINDOW)
    options = PredictParams(tta="none", subdivisions=4)
    cog = tmp_path / "map.tif"
    blending = Blending.from_params(options, WINDOW, "smooth")
    meaning = dict(model_pixel_size_m=None, model_bands=RGB)
    map_raster(scene, cog, predictor, POTSDAM_PALETTE, blending, **meaning, block_size=128)

    with rasterio.open(cog) as index_map:
        assert index_map.tags(ns="IMAGE_STRUCTURE") | {"LAYOUT": "COG", "COMPRESSION": "DEFLATE"} == index_map.tags(
            ns="IMAGE_STRUCTURE"
        )
        assert index_map.block_shapes == [(128, 128)]
        assert index_map.overviews(1) == [2, 4]
        np.testing.assert_array_equal(index_map.read(1), in_memory(model_file, pixels, options).argmax(-1))
    with tifffile.TiffFile(cog) as tif:  # the COG layout itself: every directory before any pixel
        assert len(tif.pages) == 3 and all(page.is_tiled for page in tif.pages)
        assert max(page.offset for page in tif.pages) < min(min(page.dataoffsets) for page in tif.pages)


def test_a_world_file_places_the_map_and_a_plain_picture_gets_a_note(tmp_path, model_file, capsys):
    write_image(tmp_path / "in/placed.png", photo(2, shape=(70, 90)))
    (tmp_path / "in/placed.pgw").write_text("0.5\n0\n0\n-0.5\n1000.25\n2000.25\n")  # pixel size, rotation, centre
    write_image(tmp_path / "in/plain.jpg", photo(3, shape=(40, 50)))
    out = tmp_path / "maps"
    assert predict("--model", model_file, "--params", PARAMS, "--out", out, *OPTIONS, tmp_path / "in") == 0
    with rasterio.open(out / "placed.tif") as placed:
        assert placed.transform == Affine(0.5, 0, 1000, 0, -0.5, 2000.5)  # a world file names pixel centres
        assert placed.bounds == rasterio.open(tmp_path / "in/placed.png").bounds
    assert f"note: {tmp_path / 'in/plain.jpg'}: not georeferenced" in capsys.readouterr().err
    assert files_in(out) == ["placed.tif", "plain.tif"]


def test_extra_bands_are_dropped_with_a_note(tmp_path, model_file, capsys):
    rgb = photo(4)
    scene = write_geotiff(tmp_path / "rgbir.tif", np.concatenate([rgb, photo(5, bands=1)], axis=-1))
    with rasterio.open(scene, "r+") as dataset:  # as Potsdam's RGBIR tiles: infrared is not alpha
        dataset.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.undefined]
    assert predict("--model", model_file, "--params", PARAMS, "--out", tmp_path / "maps", *OPTIONS, scene) == 0
    assert "has bands R, G, B, ?: mapping the model's R, G, B from its bands 1, 2, 3" in capsys.readouterr().err
    with rasterio.open(tmp_path / "maps/rgbir.tif") as index_map:
        np.testing.assert_array_equal(index_map.read(1), in_memory(model_file, rgb).argmax(-1))


def stage_project(folder: Path, model: Path, params: dict) -> Path:
    """A project holding a resized test photo, its splits.json, ``model`` and ``params`` as params.yaml."""
    write_geotiff(folder / "data/resized/images" / photo_name("2_10"), photo(6, shape=(90, 70)))
    (folder / "data/patches").mkdir(parents=True)
    (folder / "data/patches/splits.json").write_text(json.dumps({"train": [], "val": [], "test": ["2_10"]}))
    (folder / "models").mkdir()
    shutil.copy(model, folder / "models/model.keras")
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder


def test_the_stage_and_the_command_make_the_same_map_with_the_cards_window(tmp_path, model_file, monkeypatch):
    """The predict stage, run as DVC runs it (in the project, with its params.yaml), maps with the
    card's WINDOW, not params.yaml's patches.patch_size, as the command does: the model's
    zero-padded 3 x 3 convolution gives another map with another window."""
    params = yaml.safe_load(PARAMS.read_text())
    assert params["patches"]["patch_size"] != WINDOW == read_card(model_file).window
    project = stage_project(tmp_path / "project", model_file, params)
    monkeypatch.chdir(project)
    predict_stage.main()
    tile_photo = project / "data/resized/images" / photo_name("2_10")
    stage_maps = {}
    for mode in ("plain", "smooth"):
        out = tmp_path / mode
        assert predict("--model", model_file, "--params", PARAMS, "--out", out, "--mode", mode, tile_photo) == 0
        stage_maps[mode] = read_image(project / f"data/predictions/{mode}/top_potsdam_2_10_pred.tif")[..., 0]
        with rasterio.open(out / "top_potsdam_2_10_RGB.tif") as command_map:
            np.testing.assert_array_equal(command_map.read(1), stage_maps[mode])
    predict_test_tiles(Layout(project), POTSDAM_PALETTE, params["patches"]["patch_size"], PredictParams())
    other = read_image(project / "data/predictions/plain/top_potsdam_2_10_pred.tif")[..., 0]
    assert (other != stage_maps["plain"]).any()


def test_the_stage_refuses_params_whose_classes_are_not_the_cards_in_one_line(
    tmp_path, model_file, monkeypatch, capsys
):
    params = yaml.safe_load(PARAMS.read_text())
    params["classes"] = {"water": [0, 0, 255], "land": [0, 255, 0]}
    params["evaluate"]["without_classes"] = []
    monkeypatch.chdir(stage_project(tmp_path / "project", model_file, params))
    with pytest.raises(SystemExit) as exit:
        run_stage(predict_stage.main)
    assert exit.value.code == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: params.yaml: its classes [water [0, 0, 255], land [0, 255, 0]] are not the classes of model "
        "models/model.keras, [impervious_surfaces [255, 255, 255], building [0, 0, 255], low_vegetation [0, 255, "
        "255], tree [0, 255, 0], car [255, 255, 0], clutter [255, 0, 0]] (run `dvc repro`, which trains the model "
        "again on these classes, or put back the classes it was trained on)",
        "note: outputs already written are kept; nothing half-written was left",
    ]
    assert not Path("data/predictions").exists()


# --- inputs and outputs -----------------------------------------------------------------------


def test_inputs_are_files_folders_and_globs_each_once(tmp_path):
    for name in ("a.tif", "b.png", "c.txt", "sub/d.tif"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = find_inputs([str(tmp_path / "b.png"), str(tmp_path), str(tmp_path / "**/*.tif")])
    assert [path.relative_to(tmp_path).as_posix() for path in found] == ["b.png", "a.tif", "sub/d.tif"]


@pytest.mark.parametrize(
    "given, message",
    [
        ("missing.tif", "missing.tif: no such file or folder (check the path)"),
        ("nothing-*.tif", "nothing-*.tif: no file matches this pattern (check it)"),
        (
            "empty",
            "empty: no raster files (.tif, .tiff, .png, .jpg, .jpeg, .jp2, .img, .vrt) in this folder (give files)",
        ),
    ],
)
def test_inputs_that_name_nothing_are_refused(tmp_path, model_file, capsys, given, message):
    (tmp_path / "empty").mkdir()
    assert predict("--model", model_file, "--out", tmp_path / "maps", tmp_path / given) == 1
    assert error_line(capsys) == f"error: {tmp_path}/{message}"


def test_an_existing_map_is_refused_unless_overwrite(tmp_path, model_file, capsys):
    scene = write_geotiff(tmp_path / "scene.tif", photo(7, shape=(40, 40)))
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps/scene.tif").write_bytes(b"an older map")
    arguments = ["--model", model_file, "--params", PARAMS, "--out", tmp_path / "maps", *OPTIONS, scene]
    assert predict(*arguments) == 1
    assert error_line(capsys) == f"error: {tmp_path}/maps/scene.tif: already exists (pass --overwrite to replace it)"
    assert (tmp_path / "maps/scene.tif").read_bytes() == b"an older map"
    assert predict(*arguments, "--overwrite") == 0
    assert rasterio.open(tmp_path / "maps/scene.tif").tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"


def test_two_inputs_with_one_map_name_are_refused(tmp_path, model_file, capsys):
    write_image(tmp_path / "a/scene.png", photo(8, shape=(20, 20)))
    write_image(tmp_path / "b/scene.png", photo(9, shape=(20, 20)))
    assert predict("--model", model_file, "--out", tmp_path / "maps", tmp_path / "a", tmp_path / "b") == 1
    assert "scene.tif: would be the map of both" in error_line(capsys)


def test_an_output_folder_under_a_file_is_refused(tmp_path, model_file, capsys):
    scene = write_geotiff(tmp_path / "scene.tif", photo(10, shape=(20, 20)))
    (tmp_path / "file").write_text("not a folder")
    assert predict("--model", model_file, "--out", tmp_path / "file/maps", scene) == 1
    assert error_line(capsys).startswith(f"error: {tmp_path}/file/maps: cannot write maps into this folder (")


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux setpriv to drop root's DAC override")
def test_a_read_only_output_folder_is_refused_in_one_line(tmp_path, model_file):
    """As a real process, without root's power to write anywhere (tests run as root)."""
    scene = write_geotiff(tmp_path / "scene.tif", photo(11, shape=(20, 20)))
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o555)
    command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", sys.executable]
    command += ["-m", "aerialseg.predict.command", "--model", str(model_file), "--out", str(read_only), str(scene)]
    result = subprocess.run(command, cwd=REPO, env=environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {read_only}: cannot write maps into this folder (Permission denied) (choose a folder you can write "
        "to with --out)"
    ]
    assert os.listdir(read_only) == []


# --- bad rasters and models -------------------------------------------------------------------


def test_a_file_that_is_not_a_raster_is_named(tmp_path, model_file, capsys):
    (tmp_path / "notes.tif").write_text("field notes, not a picture")
    assert predict("--model", model_file, "--params", PARAMS, "--out", tmp_path / "maps", tmp_path / "notes.tif") == 1
    line = error_line(capsys)
    assert line.startswith(f"error: {tmp_path}/notes.tif: not a raster GDAL can read (")
    assert line.endswith("(give a GeoTIFF, PNG, JPEG or another GDAL raster format)")
    assert files_in(tmp_path / "maps") == []


def test_a_raster_truncated_midway_fails_there_and_leaves_the_older_map(tmp_path, model_file, capsys):
    scene = write_geotiff(tmp_path / "scene.tif", photo(12, shape=(300, 200)))
    scene.write_bytes(scene.read_bytes()[: scene.stat().st_size * 2 // 3])  # an interrupted copy
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps/scene.tif").write_bytes(b"an older map")
    arguments = ["--model", model_file, "--params", PARAMS, "--out", tmp_path / "maps", *OPTIONS, "--overwrite"]
    assert predict(*arguments, "--probabilities", scene) == 1
    line = error_line(capsys)
    assert line.startswith(f"error: {scene}: cannot read rows ")
    assert line.endswith("(the file is truncated or corrupt: check it with `gdalinfo -checksum`, or copy it again)")
    assert files_in(tmp_path / "maps") == ["scene.tif"]  # no half map, no temporary, no probabilities
    assert (tmp_path / "maps/scene.tif").read_bytes() == b"an older map"


@pytest.mark.parametrize(
    "pixels, message",
    [
        (photo(13, bands=2), "has bands ?, ?, but the model takes R, G, B (no R, G, B): name the photo's bands"),
        (photo(14).astype(np.uint16), "has uint16 bands, but aerialseg reads 8-bit ones (convert it first"),
    ],
)
def test_a_raster_the_model_cannot_take_is_refused_before_any_map(tmp_path, model_file, capsys, pixels, message):
    good = write_geotiff(tmp_path / "a_good.tif", photo(15))
    bad = write_geotiff(tmp_path / "b_bad.tif", pixels)
    assert predict("--model", model_file, "--params", PARAMS, "--out", tmp_path / "maps", good, bad) == 1
    assert error_line(capsys).startswith(f"error: {bad}: {message}")
    assert files_in(tmp_path / "maps") == []  # refused before the good one was started


def save_classifier(path: Path) -> Path:
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(6)], name="classifier")
    model.save(path)
    return path


@pytest.mark.parametrize(
    "model, message",
    [
        ("missing.keras", "missing.keras: no such model file (train one with `dvc repro`"),
        ("notes.keras", "notes.keras: not a Keras model ("),
        ("classifier.keras", "classifier.keras: model 'classifier' is not a segmentation model: "),
    ],
)
def test_a_model_that_cannot_map_is_named(tmp_path, capsys, model, message):
    scene = write_geotiff(tmp_path / "scene.tif", photo(16, shape=(40, 40)))
    (tmp_path / "notes.keras").write_text("not a model")
    save_classifier(tmp_path / "classifier.keras")
    assert predict("--model", tmp_path / model, "--params", PARAMS, "--out", tmp_path / "maps", scene) == 1
    line = error_line(capsys)
    assert line.startswith(f"error: {tmp_path}/{message}")
    if model == "classifier.keras":
        assert "is not a segmentation model: input shape (None, 8, 8, 3), output shape (None, 6)" in line
    assert files_in(tmp_path / "maps") == []


def test_missing_params_are_named(tmp_path, model_file, capsys):
    scene = write_geotiff(tmp_path / "scene.tif", photo(17, shape=(20, 20)))
    arguments = ["--model", model_file, "--params", tmp_path / "params.yaml", "--out", tmp_path / "maps", scene]
    assert predict(*arguments) == 1
    assert error_line(capsys) == f"error: {tmp_path}/params.yaml: no such file (check the path given with --params)"


# --- the model's card ------------------------------------------------------------------------


def test_a_model_copied_alone_maps_a_photo_with_its_card(tmp_path, model_file, monkeypatch, capsys):
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(model_file, alone / "copy.keras")
    scene = write_geotiff(tmp_path / "scene.tif", photo(18, shape=(60, 50)))
    monkeypatch.chdir(alone)  # no params.yaml here
    assert predict("--model", "copy.keras", "--out", "maps", "--tta", "flips", scene) == 0
    assert sorted(path.name for path in alone.iterdir()) == ["copy.keras", "maps"]
    with rasterio.open(alone / "maps/scene.tif") as index_map:
        np.testing.assert_array_equal(index_map.read(1), in_memory(model_file, photo(18, shape=(60, 50))).argmax(-1))
        assert json.loads(index_map.tags()["PREDICTION"])["window"] == WINDOW  # the card's, not params.yaml's 64


def test_describe_prints_the_card_one_field_a_line(model_file, capsys):
    assert predict("--describe", "--model", model_file) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"model: {model_file}"
    assert lines[1].startswith("classes: 0 impervious_surfaces [255, 255, 255]; 1 building [0, 0, 255]; ")
    assert lines[2:6] == [
        "bands: R, G, B",
        "input_scale: uint8 values as float32, 0..255",
        "pixel_size_m: 0.05",
        "window: 32",
    ]
    assert lines[6] == "predict: subdivisions=2, window_function=spline, tta=d4, batch_size=16"
    assert [line.split(":")[0] for line in lines[7:]] == ["params_hash", "data_version", "git_commit", "card_version"]


def test_describe_of_a_model_without_a_card_prints_the_card_of_params(tmp_path, capsys):
    old = save_classifier(tmp_path / "old.keras")  # saved before cards: it carries none
    assert predict("--describe", "--model", old) == 1
    assert error_line(capsys).startswith(f"error: {old}: the model carries no model card, so ")
    assert predict("--describe", "--model", old, "--params", PARAMS) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"model: {old} (it carries no card: this one is built from --params {PARAMS})"
    assert lines[1:] == card_from_params(repo_params(), pixel_size_m=None).describe().splitlines()


CARD_SETTINGS = {"subdivisions": 4, "window_function": "hann", "tta": "flips", "batch_size": 4}


@pytest.mark.parametrize(
    "params_predict, expected",
    [
        (None, CARD_SETTINGS),  # no predict section: the card's settings, not the defaults
        ({"tta": "none"}, {**CARD_SETTINGS, "tta": "none"}),  # only the key it sets
    ],
)
def test_params_change_only_the_predict_settings_they_set(tmp_path, model_file, params_predict, expected):
    """The card's settings are not params.yaml's defaults; --params changes those its predict
    section names, and an option on the command line (--batch-size) wins over both."""
    model = tmp_path / "model.keras"
    shutil.copy(model_file, model)
    card = card_from_params(repo_params({"patches": {"patch_size": WINDOW}, "predict": CARD_SETTINGS}), 0.05)
    write_card(model, card)
    params = yaml.safe_load(PARAMS.read_text())
    del params["predict"]
    if params_predict is not None:
        params["predict"] = params_predict
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    scene = write_geotiff(tmp_path / "scene.tif", photo(26, shape=(40, 40)))
    arguments = ["--model", model, "--params", tmp_path / "params.yaml", "--batch-size", 8]
    assert predict(*arguments, "--out", tmp_path / "maps", scene) == 0
    with rasterio.open(tmp_path / "maps/scene.tif") as index_map:
        used = json.loads(index_map.tags()["PREDICTION"])
    assert used == {"mode": "smooth", "window": WINDOW, **expected, "batch_size": 8}


def test_params_with_other_classes_are_refused(tmp_path, model_file, capsys):
    params = yaml.safe_load(PARAMS.read_text())
    params["classes"] = {"water": [0, 0, 255], "land": [0, 255, 0]}
    params["evaluate"]["without_classes"] = []
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    scene = write_geotiff(tmp_path / "scene.tif", photo(19, shape=(20, 20)))
    assert predict("--model", model_file, "--params", tmp_path / "params.yaml", "--out", tmp_path / "maps", scene) == 1
    assert error_line(capsys) == (
        f"error: {tmp_path}/params.yaml: its classes [water [0, 0, 255], land [0, 255, 0]] are not the classes of "
        f"model {model_file}, [impervious_surfaces [255, 255, 255], building [0, 0, 255], low_vegetation [0, 255, "
        "255], tree [0, 255, 0], car [255, 255, 0], clutter [255, 0, 0]] (leave out --params, or pass the "
        "params.yaml the model was trained with)"
    )


def test_a_model_without_a_card_needs_params(tmp_path, capsys):
    old = save_classifier(tmp_path / "old.keras")
    scene = write_geotiff(tmp_path / "scene.tif", photo(20, shape=(20, 20)))
    assert predict("--model", old, "--out", tmp_path / "maps", scene) == 1
    assert error_line(capsys) == (
        f"error: {old}: the model carries no model card, so its classes and window are unknown (pass --params "
        "with the params.yaml it was trained with)"
    )


@pytest.fixture
def registered(tmp_path, model_file, monkeypatch) -> tuple[str, str]:
    """model_file registered in a real MLflow store as the train stage registers its model; the
    store's URI (also MLFLOW_TRACKING_URI) and the run's id."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with tracking.start_run(uri, "aerialseg") as run:
        tracking.log_model(keras.saving.load_model(model_file), "aerialseg", read_card(model_file))
    return uri, run.info.run_id


def test_mlflow_model_uris_map_with_the_registered_card(tmp_path, model_file, registered, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    scene = write_geotiff(tmp_path / "scene.tif", photo(21, shape=(40, 30)))
    expected = in_memory(model_file, photo(21, shape=(40, 30))).argmax(-1)
    MlflowClient(registered[0]).set_registered_model_alias("aerialseg", "champion", "1")
    uris = ("models:/aerialseg/1", "models:/aerialseg@champion", f"runs:/{registered[1]}/model")
    for number, uri in enumerate(uris):
        assert predict("--model", uri, "--out", tmp_path / f"maps{number}", *OPTIONS, scene) == 0
        with rasterio.open(tmp_path / f"maps{number}/scene.tif") as index_map:
            np.testing.assert_array_equal(index_map.read(1), expected)
    capsys.readouterr()
    for uri in uris[:2]:
        assert predict("--describe", "--model", uri) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == f"model: {uri}" and "window: 32" in lines


def test_an_unresolvable_model_uri_names_the_tracking_store(tmp_path, registered, capsys):
    assert predict("--describe", "--model", "models:/aerialseg/7") == 1
    line = error_line(capsys)
    assert line.startswith(
        f"error: models:/aerialseg/7: not found in MLflow tracking store {registered[0]} (from the "
        "MLFLOW_TRACKING_URI environment variable): "
    )


def test_console_scripts_name_the_commands_main_functions():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"aerialseg-predict", "aerialseg-export"}
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function))


# --- runs sharing a folder, killed runs, full disks ------------------------------------------


def predict_process(*arguments) -> subprocess.Popen:
    command = [sys.executable, "-m", "aerialseg.predict.command", "--params", str(PARAMS), *OPTIONS]
    return subprocess.Popen([*command, *map(str, arguments)], cwd=REPO, env=environment(), stderr=subprocess.PIPE)


def wait_for_temporary(folder: Path, process: subprocess.Popen) -> None:
    """Until ``process`` is writing a map into ``folder``."""
    deadline = time.monotonic() + 120
    while not list(folder.glob(f".*{PARTIAL}*")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)


@pytest.mark.slow
def test_two_runs_into_one_folder_at_once_both_finish_with_whole_maps(tmp_path, model_file):
    """The second run starts while the first writes scene.tif, and maps a scene.tif too: neither
    removes the other's temporaries, both finish, and every map is a whole COG."""
    first = write_geotiff(tmp_path / "one/scene.tif", photo(20, shape=(1200, 1200)))
    second = [write_geotiff(tmp_path / f"two/{name}.tif", photo(21, shape=(600, 600))) for name in ("other", "scene")]
    out = tmp_path / "maps"
    runs = [predict_process("--model", model_file, "--out", out, "--overwrite", first)]
    wait_for_temporary(out, runs[0])
    runs.append(predict_process("--model", model_file, "--out", out, "--overwrite", *second))
    for run in runs:
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 0 and b"Traceback" not in stderr, stderr.decode()
    assert files_in(out) == ["other.tif", "scene.tif"]  # no temporary left
    for name in files_in(out):
        with rasterio.open(out / name) as index_map:
            assert index_map.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert index_map.read(1).shape in ((1200, 1200), (600, 600))


def test_a_killed_runs_temporaries_go_at_the_next_run_and_a_running_ones_stay(tmp_path, model_file, capsys):
    out = tmp_path / "maps"
    killed = predict_process("--model", model_file, "--out", out, write_geotiff(tmp_path / "big.tif", photo(22)))
    wait_for_temporary(out, killed)
    kill(killed)
    left = [path.name for path in out.glob(f".*{PARTIAL}*")]
    assert left and all(name.startswith(".big.partial-") for name in left)
    running = Writer(out / "notes.txt")
    assert predict("--model", model_file, "--params", PARAMS, "--out", out, *OPTIONS, tmp_path / "big.tif") == 0
    assert files_in(out) == sorted([running.temporary, "big.tif"])  # the killed run's temporaries are gone
    assert running.finish() == 0
    assert files_in(out) == ["big.tif", "notes.txt"]


def test_an_output_folder_that_is_a_file_is_refused(tmp_path, model_file, capsys):
    scene = write_geotiff(tmp_path / "scene.tif", photo(23, shape=(20, 20)))
    (tmp_path / "maps").write_text("not a folder")
    assert predict("--model", model_file, "--out", tmp_path / "maps", scene) == 1
    assert error_line(capsys) == f"error: {tmp_path}/maps: is a file, not a folder (choose a folder with --out)"


def test_a_full_disk_is_one_line_naming_the_map_and_the_free_space(tmp_path, model_file, tiny_disk, capsys):
    scene = write_geotiff(tmp_path / "scene.tif", photo(24, shape=(600, 600)))
    arguments = ["--model", model_file, "--params", PARAMS, "--out", tiny_disk, *OPTIONS, "--probabilities", scene]
    assert predict(*arguments) == 1
    free = shutil.disk_usage(tiny_disk).free // 1024
    assert re.fullmatch(
        rf"error: {tiny_disk}/scene(_probabilities)?\.tif: cannot write it: No space left on device; "
        rf"{free}\.0 KiB free in {tiny_disk} \(free some space there, or write to another disk\)",
        error_line(capsys),
    )
    assert os.listdir(tiny_disk) == []  # nothing half-written, no temporary


def test_more_subdivisions_than_window_pixels_is_one_line(tmp_path, model_file, capsys):
    scene = write_geotiff(tmp_path / "scene.tif", photo(25, shape=(40, 40)))
    assert predict("--model", model_file, "--out", tmp_path / "maps", "--subdivisions", "1000", scene) == 1
    assert error_line(capsys) == (
        f"error: {model_file}: subdivisions must be between 1 and the window size {WINDOW}, got 1000 "
        f"(the model's window is {WINDOW} px)"
    )
