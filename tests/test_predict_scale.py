"""A model that carries its own meaning, on real files: aerialseg-predict maps a photo at the
model's ground resolution and from its bands by name, and leaves its empty pixels empty.

The model is a tiny Keras convolution that thresholds the mean of its first input band over
3 x 3 pixels (class 0 above mid-grey, class 1 below), so a map depends on the photo's content,
its band order and its scale; maps are read back with rasterio (GDAL)."""

import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import rasterio
from conftest import POTSDAM_PALETTE, repo_params
from pipeline_helpers import REPO
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin

from aerialseg.pipeline.params import PredictParams
from aerialseg.predict.blending import Blending
from aerialseg.predict.command import main
from aerialseg.predict.mapping import map_raster, photo_rows
from aerialseg.predict.resampling import ResampledRows, to_photo_grid
from aerialseg.predict.runtimes import load_predictor
from aerialseg.raster.bands import BandError
from aerialseg.raster.streaming import RasterRows
from aerialseg.train.card import card_from_params, write_card

PARAMS = REPO / "params.yaml"
WINDOW = 32
CLI = ["--tta", "none", "--mode", "plain"]
UTM = "EPSG:25833"
X, Y = 367_000.0, 5_810_000.0


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """The thresholding model, "trained at 10 cm" on 32 px windows: its card says so."""
    weights = np.zeros((3, 3, 3, POTSDAM_PALETTE.num_classes), np.float32)
    weights[:, :, 0, 0], weights[:, :, 0, 1] = 0.5 / 9, -0.5 / 9
    bias = np.full(POTSDAM_PALETTE.num_classes, -100.0, np.float32)
    bias[:2] = -64.0, 64.0
    conv = keras.layers.Conv2D(POTSDAM_PALETTE.num_classes, 3, padding="same", activation="softmax")
    model = keras.Sequential([keras.Input((None, None, 3)), conv])
    conv.set_weights([weights, bias])
    folder = tmp_path_factory.mktemp("models")
    model.save(folder / "model.keras")
    write_card(folder / "model.keras", card_from_params(repo_params({"patches": {"patch_size": WINDOW}}), 0.1))
    return folder / "model.keras"


def scene(seed: int, shape=(240, 200), bands=3, block=8) -> np.ndarray:
    """Blocky random colours (H x W x bands): regions of classes, as in a real map."""
    coarse = np.random.default_rng(seed).integers(0, 256, (shape[0] // block + 1, shape[1] // block + 1, bands))
    return np.repeat(np.repeat(coarse, block, 0), block, 1)[: shape[0], : shape[1]].astype(np.uint8)


def write(path: Path, pixels: np.ndarray, pixel_size: float | None = 0.05, crs=UTM, **profile) -> Path:
    height, width, bands = pixels.shape
    if pixel_size is not None:
        profile = dict(crs=crs, transform=from_origin(X, Y, pixel_size, pixel_size)) | profile
    with rasterio.open(
        path, "w", driver="GTiff", height=height, width=width, count=bands, dtype="uint8", **profile
    ) as f:
        f.write(np.moveaxis(pixels, -1, 0))
    return path


def predict(*arguments) -> int:
    return main([*map(str, arguments)])


def read_map(path: Path) -> np.ndarray:
    with rasterio.open(path) as dataset:
        return dataset.read(1)


def same_grid(a: Path, b: Path) -> None:
    with rasterio.open(a) as first, rasterio.open(b) as second:
        assert (first.crs, first.transform, first.shape) == (second.crs, second.transform, second.shape)


def error_line(capsys) -> str:
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, errors
    return errors[0]


# --- the right scale --------------------------------------------------------------------------


def test_a_5_cm_photo_and_its_10_cm_version_give_maps_that_agree(tmp_path, model_file):
    fine = scene(0, shape=(240, 200))
    coarse = np.rint(fine.reshape(120, 2, 100, 2, 3).mean((1, 3))).astype(np.uint8)  # GDAL's average, 2 x 2
    photos = write(tmp_path / "fine.tif", fine), write(tmp_path / "coarse.tif", coarse, pixel_size=0.1)
    assert predict("--model", model_file, "--out", tmp_path / "maps", *CLI, *photos) == 0
    for photo in photos:
        same_grid(photo, tmp_path / "maps" / photo.name)  # each map on its own photo's grid
    fine_map, coarse_map = read_map(tmp_path / "maps/fine.tif"), read_map(tmp_path / "maps/coarse.tif")
    assert set(np.unique(coarse_map)) == {0, 1}  # the threshold splits this photo
    np.testing.assert_array_equal(fine_map[::2, ::2], fine_map[1::2, 1::2])  # predicted at 10 cm, in 2 x 2 blocks
    agreement = np.mean(np.repeat(np.repeat(coarse_map, 2, 0), 2, 1) == fine_map)
    assert agreement >= 0.97


def test_pixels_of_unequal_sides_are_resampled_along_each_axis_by_its_own(tmp_path, model_file):
    """Pixels 5 cm wide and 10 cm high: the 10 cm model sees them in pairs along the rows only."""
    fine = scene(5, shape=(120, 200))
    coarse = np.rint(fine.reshape(120, 100, 2, 3).mean(2)).astype(np.uint8)
    photos = (
        write(tmp_path / "tall.tif", fine, transform=from_origin(X, Y, 0.05, 0.1)),
        write(tmp_path / "square.tif", coarse, pixel_size=0.1),
    )
    assert predict("--model", model_file, "--out", tmp_path / "maps", *CLI, *photos) == 0
    same_grid(photos[0], tmp_path / "maps/tall.tif")
    tall_map, square_map = read_map(tmp_path / "maps/tall.tif"), read_map(tmp_path / "maps/square.tif")
    np.testing.assert_array_equal(tall_map[:, ::2], tall_map[:, 1::2])  # predicted in 1 x 2 blocks
    assert set(np.unique(square_map)) == {0, 1}
    assert np.mean(np.repeat(square_map, 2, 1) == tall_map) >= 0.97


def test_square_pixels_in_degrees_are_measured_on_the_ground_along_each_axis(tmp_path):
    """A photo in EPSG:4326 with square pixels in degrees at 52.5 N (gdalwarp's default): a pixel
    is 0.61 times as wide as it is high on the ground, and is resampled so, not refused."""
    degrees = 1e-6  # 11.1 cm high
    transform = from_origin(13.4, 52.5, degrees, degrees)
    photo = write(tmp_path / "wgs84.tif", scene(6, shape=(90, 150)), crs="EPSG:4326", transform=transform)
    with photo_rows(photo, 0.1, "RGB") as taken:
        height, width = taken.rows.shape[:2]
    assert taken.notes == ()
    assert height == round(90 * 0.1113 / 0.1)  # a degree of latitude: 111.3 km at 52.5 N
    assert width == round(150 * 0.0679 / 0.1)  # of longitude: 67.9 km there


def test_a_photo_at_the_models_resolution_takes_the_unresampled_path(tmp_path, model_file):
    pixels = scene(1, shape=(64, 48))
    photo = write(tmp_path / "at.tif", pixels, pixel_size=0.1005)  # within 1 %
    predictor = load_predictor(model_file, POTSDAM_PALETTE.num_classes, WINDOW)
    blending = Blending.from_params(PredictParams(tta="none"), WINDOW, "plain")
    for size, name in ((0.1, "model.tif"), (None, "unknown.tif")):
        map_raster(
            photo, tmp_path / name, predictor, POTSDAM_PALETTE, blending, model_pixel_size_m=size, model_bands="RGB"
        )
    np.testing.assert_array_equal(read_map(tmp_path / "model.tif"), read_map(tmp_path / "unknown.tif"))


def test_a_photo_without_resolution_is_mapped_as_it_is_unless_pixel_size_says(tmp_path, model_file, capsys):
    photo = write(tmp_path / "plain.tif", scene(2, shape=(80, 60)), pixel_size=None)
    assert predict("--model", model_file, "--out", tmp_path / "as-is", *CLI, photo) == 0
    assert (
        f"note: {photo}: its ground resolution is unknown (no CRS in metres or degrees): mapped as it is, while the "
        "model was trained at 0.1 m per pixel (give --pixel-size M to resample it to that)"
    ) in capsys.readouterr().err
    assert predict("--model", model_file, "--out", tmp_path / "resampled", *CLI, "--pixel-size", "0.05", photo) == 0
    resampled = read_map(tmp_path / "resampled/plain.tif")
    assert resampled.shape == (80, 60)
    np.testing.assert_array_equal(resampled[::2, ::2], resampled[1::2, 1::2])


@pytest.mark.parametrize("given", ["0", "-0.05", "five", "nan", "inf"])
def test_a_pixel_size_that_is_not_a_positive_number_is_refused(tmp_path, model_file, capsys, given):
    photo = write(tmp_path / "plain.tif", scene(3, shape=(20, 20)), pixel_size=None)
    assert predict("--model", model_file, "--out", tmp_path / "maps", *CLI, f"--pixel-size={given}", photo) == 1
    assert error_line(capsys) == (
        f"error: --pixel-size {given!r}: expected the photos' metres per pixel, a positive number (e.g. 0.05)"
    )


def test_a_photo_in_degrees_near_a_pole_is_refused(tmp_path, model_file, capsys):
    photo = tmp_path / "arctic.tif"
    with rasterio.open(
        photo, "w", driver="GTiff", height=20, width=20, count=3, dtype="uint8", crs=CRS.from_epsg(4326),
        transform=from_origin(10.0, 89.5, 1e-5, 1e-6),
    ) as dataset:  # fmt: skip
        dataset.write(np.zeros((3, 20, 20), np.uint8))
    assert predict("--model", model_file, "--out", tmp_path / "maps", *CLI, photo) == 1
    line = error_line(capsys)
    assert line.startswith(f"error: {photo}: reaches latitude 89.50 in EPSG:4326, too near a pole for its pixels in ")
    assert line.endswith("or give its metres per pixel with --pixel-size M")


def test_model_rows_are_read_and_photo_rows_written_a_few_at_a_time(tmp_path, model_file, monkeypatch):
    """A large photo (with a small COG block) is read a window's height of photo rows at a time, at
    model resolution, and each photo row of the map is written as soon as its model rows are done."""
    height = 1200
    photo = write(tmp_path / "large.tif", scene(4, shape=(height, 64), block=16))
    reads = []
    read_rows = RasterRows.__getitem__
    monkeypatch.setattr(RasterRows, "__getitem__", lambda self, rows: reads.append(len(rows)) or read_rows(self, rows))
    predictor = load_predictor(model_file, POTSDAM_PALETTE.num_classes, WINDOW)
    blending = Blending.from_params(PredictParams(tta="none", batch_size=2), WINDOW, "smooth")
    meaning = dict(model_pixel_size_m=0.1, model_bands="RGB")
    map_raster(photo, tmp_path / "map.tif", predictor, POTSDAM_PALETTE, blending, **meaning, block_size=64)
    assert max(reads) <= 2 * WINDOW + 2  # a window of model rows is two of photo rows, and an edge
    assert sum(reads) <= 2.2 * height  # each photo row read about twice (windows overlap by half)
    assert read_map(tmp_path / "map.tif").shape == (height, 64)


def test_the_map_streams_back_to_the_photos_grid_with_a_few_model_rows_kept():
    model_rows, piece = 300, 10
    probabilities = np.random.default_rng(5).random((model_rows, 7, 2)).astype(np.float32)
    consumed = []

    def pieces():
        for first in range(0, model_rows, piece):
            consumed.append(first + piece)
            yield first, probabilities[first : first + piece]

    handed = [(first, len(rows), consumed[-1]) for first, rows, _ in to_photo_grid(pieces(), (300, 7), (900, 20))]
    assert [first for first, _, _ in handed] == list(np.cumsum([0] + [count for _, count, _ in handed[:-1]]))
    for first, count, model_rows_in in handed:  # handed out as soon as the model rows under them came
        assert (first + count) / 3 > model_rows_in - piece - 1
    whole = list(to_photo_grid(iter([(0, probabilities)]), (300, 7), (900, 20)))[0]
    streamed = list(to_photo_grid(pieces(), (300, 7), (900, 20)))
    np.testing.assert_allclose(np.concatenate([rows for _, rows, _ in streamed]), whole[1], rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate([classes for _, _, classes in streamed]), whole[2])


def test_reading_a_photo_at_another_size_by_rows_is_reading_it_whole():
    pixels = scene(6, shape=(101, 77))
    resampled = ResampledRows(pixels, 37, 29)
    whole = resampled[np.arange(37)]
    np.testing.assert_array_equal(
        np.concatenate([resampled[np.arange(a, min(a + 5, 37))] for a in range(0, 37, 5)]), whole
    )
    assert whole.dtype == np.uint8 and whole.shape == (37, 29, 3)


# --- bands by name ----------------------------------------------------------------------------


def map_bands(tmp_path, photo: Path, model_file: Path, model_bands, name: str, **photo_options) -> np.ndarray:
    predictor = load_predictor(model_file, POTSDAM_PALETTE.num_classes, WINDOW)
    blending = Blending.from_params(PredictParams(tta="none"), WINDOW, "plain")
    out = tmp_path / name
    map_raster(
        photo,
        out,
        predictor,
        POTSDAM_PALETTE,
        blending,
        model_pixel_size_m=None,
        model_bands=model_bands,
        **photo_options,
    )
    return read_map(out)


def described(path: Path, pixels: np.ndarray, names: tuple) -> Path:
    """A photo whose bands are described ``names``, none of them GDAL's alpha (which would mask)."""
    write(path, pixels, photometric="MINISBLACK")
    with rasterio.open(path, "r+") as dataset:
        dataset.descriptions = names
    return path


def test_a_photos_bands_are_reordered_to_the_models_by_name(tmp_path, model_file):
    red, green, blue, infrared = np.moveaxis(scene(7, bands=4), -1, 0)
    irrg = described(tmp_path / "irrg.tif", np.stack([infrared, red, green], -1), ("NIR", "red", "green"))
    rgbir = described(
        tmp_path / "rgbir.tif", np.stack([red, green, blue, infrared], -1), ("R", "G", "B", "near infrared")
    )
    as_trained = map_bands(tmp_path, irrg, model_file, ("IR", "R", "G"), "irrg_map.tif")
    assert set(np.unique(as_trained)) == {0, 1}
    np.testing.assert_array_equal(map_bands(tmp_path, rgbir, model_file, ("IR", "R", "G"), "rgbir_map.tif"), as_trained)
    by_rgb = map_bands(tmp_path, rgbir, model_file, ("R", "G", "B"), "rgb_map.tif")
    assert not np.array_equal(by_rgb, as_trained)  # the model's first band is red now, not infrared


def test_bands_named_by_the_command_line_override_the_files(tmp_path, model_file, capsys):
    """Potsdam's IRRG TIFFs say red, green, blue, as GDAL writes any 3-band 8-bit TIFF."""
    pixels = scene(8)
    photo = write(tmp_path / "irrg.tif", pixels)
    assert predict("--model", model_file, "--out", tmp_path / "maps", *CLI, "--bands", "IR,R,G", photo) == 1
    assert error_line(capsys) == (
        f"error: {photo}: has bands IR, R, G, but the model takes R, G, B (no B): name the photo's bands in file "
        "order with --bands (e.g. --bands R,G,B), or use a model trained on its bands"
    )
    irrg_model = Path(shutil.copy(model_file, tmp_path / "irrg.keras"))  # the same model, trained on IR, R, G
    irrg = repo_params({"data": {"bands": "irrg"}, "patches": {"patch_size": WINDOW}})
    write_card(irrg_model, card_from_params(irrg, 0.1))
    arguments = ["--model", irrg_model, *CLI, photo]
    assert predict(*arguments, "--out", tmp_path / "maps", "--bands", "IR,R,G") == 0
    assert predict(*arguments, "--out", tmp_path / "named", "--bands", "R,G,IR") == 0
    assert not np.array_equal(read_map(tmp_path / "maps/irrg.tif"), read_map(tmp_path / "named/irrg.tif"))


def test_a_photo_with_unnamed_bands_is_taken_as_rgb_with_a_note(tmp_path, model_file, capsys):
    pixels = scene(9)
    photo = write(tmp_path / "unnamed.tif", pixels, photometric="MINISBLACK")
    with rasterio.open(photo) as dataset:
        assert dataset.colorinterp == (ColorInterp.gray, ColorInterp.undefined, ColorInterp.undefined)
    assert predict("--model", model_file, "--out", tmp_path / "maps", *CLI, photo) == 0
    assert (
        f"note: {photo}: its bands are not named (no colour interpretation or description): taking bands 1 to 3 as "
        "R, G, B (if they are not, name them with --bands, e.g. --bands IR,R,G)"
    ) in capsys.readouterr().err
    rgb = write(tmp_path / "rgb.tif", pixels)
    assert predict("--model", model_file, "--out", tmp_path / "rgb", *CLI, rgb) == 0
    np.testing.assert_array_equal(read_map(tmp_path / "maps/unnamed.tif"), read_map(tmp_path / "rgb/rgb.tif"))


def test_a_photo_lacking_a_model_band_is_refused_naming_both_lists(tmp_path, model_file):
    photo = described(tmp_path / "rgb.tif", scene(10), ("red", "green", "blue"))
    with pytest.raises(BandError, match=r"rgb.tif: has bands R, G, B, but the model takes IR, R, G \(no IR\)"):
        map_bands(tmp_path, photo, model_file, ("IR", "R", "G"), "map.tif")
    with pytest.raises(BandError, match=r"rgb.tif: has 3 bands, but is named as having 4 \(R,G,B,IR\)"):
        map_bands(tmp_path, photo, model_file, ("R", "G", "B"), "map.tif", photo_bands=("R", "G", "B", "IR"))


# --- no-data in, no-data out ------------------------------------------------------------------


def test_empty_pixels_are_filled_before_predicting_and_empty_in_the_maps(tmp_path, model_file):
    pixels = scene(11, shape=(96, 80))
    empty = np.zeros(pixels.shape[:2], bool)
    empty[30:60, 20:50] = True
    with_hole = np.where(empty[..., None], 0, pixels).astype(np.uint8)
    photo = write(tmp_path / "hole.tif", with_hole, nodata=0)
    assert predict("--model", model_file, "--out", tmp_path / "maps", *CLI, "--probabilities", photo) == 0
    with rasterio.open(tmp_path / "maps/hole.tif") as index_map:
        assert index_map.nodata == 255
        classes = index_map.read(1)
    with rasterio.open(tmp_path / "maps/hole_probabilities.tif") as probability_map:
        assert probability_map.nodata == 0
        probabilities = probability_map.read()
    assert (classes[empty] == 255).all() and (classes[~empty] != 255).all()
    assert (probabilities[:, empty] == 0).all() and (probabilities[:, ~empty] >= 1).all()

    mean = np.rint(pixels[~empty].mean(0)).astype(np.uint8)  # what the hole is filled with
    filled = write(tmp_path / "filled.tif", np.where(empty[..., None], mean, pixels).astype(np.uint8))
    assert predict("--model", model_file, "--out", tmp_path / "filled", *CLI, filled) == 0
    np.testing.assert_array_equal(classes[~empty], read_map(tmp_path / "filled/filled.tif")[~empty])
