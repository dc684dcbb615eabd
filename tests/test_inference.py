"""mapping.predict_test_tiles, the predict stage's work, on real files: a saved Keras model,
resized photos and splits.json."""

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from affine import Affine
from conftest import repo_params
from rasterio.crs import CRS

from aerialseg.data.potsdam import photo_name
from aerialseg.pipeline.paths import Layout
from aerialseg.predict.blending import Blending, predict_probabilities
from aerialseg.predict.inference import predict_map
from aerialseg.predict.keras_predictor import KerasPredictor
from aerialseg.predict.mapping import predict_test_tiles
from aerialseg.raster.georef import Georeference, read_georef, world_file_path, write_world_file
from aerialseg.raster.pictures import read_image, write_image

PARAMS = repo_params({"patches": {"patch_size": 32, "step": 32}, "predict": {"tta": "flips"}})
CLASSES = PARAMS.palette.num_classes
WINDOW = PARAMS.patches.patch_size
PLACED = Georeference(CRS.from_epsg(25833), Affine(0.05, 0.0, 366682.0, 0.0, -0.05, 5808338.0))  # 5 cm, in UTM 33N


def save_model(path: Path, classes: int = 6) -> keras.Model:
    """A per-pixel (1 x 1 convolution) softmax model, so the right maps are known exactly."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((None, None, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(classes, 1, activation="softmax"),
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return model


def write_photo(path: Path, pixels: np.ndarray, geotagged: bool) -> None:
    write_image(path, pixels, PLACED if geotagged else None)


def predict(root: Path) -> None:
    predict_test_tiles(Layout(root), PARAMS.palette, window=PARAMS.patches.patch_size, options=PARAMS.predict)


@pytest.fixture
def project(tmp_path):
    """A project folder with splits.json and three resized photos (the model is up to each test)."""
    rng = np.random.default_rng(0)
    for tile, shape, geotagged in [("2_10", (70, 45), True), ("2_11", (40, 40), False), ("2_12", (64, 64), False)]:
        write_photo(
            tmp_path / "data/resized/images" / photo_name(tile),
            rng.integers(0, 256, shape + (3,), dtype=np.uint8),
            geotagged,
        )
    write_splits(tmp_path, test=["2_10", "2_11"])
    return tmp_path


def write_splits(root: Path, test: list[str]) -> None:
    splits = root / "data/patches/splits.json"
    splits.parent.mkdir(parents=True, exist_ok=True)
    splits.write_text(json.dumps({"train": ["2_12"], "val": [], "test": test}))


def test_stage_writes_plain_and_smooth_maps_of_every_test_tile(project):
    model = save_model(project / "models/model.keras")
    palette = PARAMS.palette
    predict(project)

    out = project / "data/predictions"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        f"{mode}/top_potsdam_{tile}_pred.{kind}"
        for mode in ("plain", "smooth")
        for tile in ("2_10", "2_11")
        for kind in ("png", "tif")
    ]
    for tile in ("2_10", "2_11"):
        photo = project / "data/resized/images" / photo_name(tile)
        pixels = read_image(photo).astype(np.float32)
        expected = keras.ops.convert_to_numpy(model(pixels[None], training=False))[0].argmax(-1)
        for mode in ("plain", "smooth"):
            index = read_image(out / mode / f"top_potsdam_{tile}_pred.tif")[..., 0]
            colours = read_image(out / mode / f"top_potsdam_{tile}_pred.png")
            assert index.dtype == np.uint8
            np.testing.assert_array_equal(index, expected)  # a per-pixel model must be reproduced exactly
            np.testing.assert_array_equal(palette.rgb_to_index(colours), index)  # palette colours only
            assert read_georef(out / mode / f"top_potsdam_{tile}_pred.tif") == read_georef(photo)

    assert read_georef(out / "smooth/top_potsdam_2_10_pred.tif") == PLACED


def test_maps_get_the_photo_world_file_and_a_photo_without_one_is_warned_about(project, capsys):
    save_model(project / "models/model.keras")
    photo_path = project / "data/resized/images" / photo_name("2_10")
    write_world_file(photo_path, PLACED.transform)  # where its GeoTIFF tags place it too
    predict(project)

    out = project / "data/predictions"
    for mode in ("plain", "smooth"):
        for map_path in (out / mode / "top_potsdam_2_10_pred.tif", out / mode / "top_potsdam_2_10_pred.png"):
            assert world_file_path(map_path).read_text() == world_file_path(photo_path).read_text()
            assert read_georef(map_path).transform.almost_equals(PLACED.transform)
        assert not list((out / mode).glob("top_potsdam_2_11_pred.?[gf]w"))  # its photo has none
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {project / 'data/resized/images' / photo_name('2_11')} has no world file "
        "(top_potsdam_2_11_RGB.tfw): the maps of tile 2_11 are written without one, so a GIS cannot place them "
        "(GeoTIFF tags, if any, are kept in the .tif)"
    ]


def test_missing_splits_file_is_named(project):
    save_model(project / "models/model.keras")
    (project / "data/patches/splits.json").unlink()
    with pytest.raises(FileNotFoundError, match="data/patches/splits.json: no such file"):
        predict(project)


def test_splits_without_test_tiles_are_refused(project):
    save_model(project / "models/model.keras")
    write_splits(project, test=[])
    with pytest.raises(ValueError, match="data/patches/splits.json: no test tiles"):
        predict(project)


def keep_old_predictions(project: Path) -> Path:
    old = project / "data/predictions/smooth/top_potsdam_2_10_pred.png"
    write_image(old, np.zeros((4, 4, 3), np.uint8))
    return old


def test_a_missing_photo_is_named_and_old_predictions_are_kept(project):
    save_model(project / "models/model.keras")
    old = keep_old_predictions(project)
    write_splits(project, test=["2_10", "9_99"])
    with pytest.raises(FileNotFoundError, match="top_potsdam_9_99_RGB.tif: no such file"):
        predict(project)
    assert sorted(p.name for p in (project / "data/predictions").rglob("*")) == ["smooth", old.name]


def test_a_photo_with_too_few_channels_is_named(project):
    save_model(project / "models/model.keras")
    old = keep_old_predictions(project)
    write_photo(project / "data/resized/images" / photo_name("2_11"), np.zeros((40, 40, 2), np.uint8), False)
    with pytest.raises(ValueError, match="top_potsdam_2_11_RGB.tif: has 2 bands, but is named as having 3 \\(R,G,B\\)"):
        predict(project)
    assert old.is_file()


def test_a_model_with_other_classes_than_params_is_refused(project):
    save_model(project / "models/model.keras", classes=4)
    with pytest.raises(ValueError, match="outputs 4 classes per pixel, but 6 classes are expected"):
        predict(project)
    assert not (project / "data/predictions").exists()


def test_a_missing_model_is_named(project):
    with pytest.raises(ValueError, match="models/model.keras"):
        predict(project)


def test_rgbir_photos_are_predicted_from_their_rgb_bands(project):
    model = save_model(project / "models/model.keras")
    photo = project / "data/resized/images" / photo_name("2_11")
    rgb = read_image(photo)
    infrared = np.random.default_rng(3).integers(0, 256, rgb.shape[:2] + (1,), dtype=np.uint8)
    shutil.move(photo, photo.with_suffix(".rgb.tif"))
    write_photo(photo, np.concatenate([rgb, infrared], axis=-1), False)
    predict(project)
    expected = keras.ops.convert_to_numpy(model(rgb[None].astype(np.float32), training=False))[0].argmax(-1)
    np.testing.assert_array_equal(
        read_image(project / "data/predictions/smooth/top_potsdam_2_11_pred.tif")[..., 0], expected
    )


def random_image(shape, channels=3, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape + (channels,), dtype=np.uint8)


def tiny_keras_model(channels=3, classes=CLASSES) -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((None, None, channels)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(classes, 1, activation="softmax"),
        ]
    )


def test_keras_model_runs_through_KerasPredictor():
    model = tiny_keras_model()
    image = random_image((70, 45))
    probabilities = predict_probabilities(
        image, KerasPredictor(model, CLASSES), Blending(window=WINDOW, tta="flips"), CLASSES
    )
    # a 1 x 1 convolution is per pixel, so blending must give the model's own whole-image answer
    whole = keras.ops.convert_to_numpy(model(image[None].astype(np.float32), training=False))[0]
    np.testing.assert_allclose(probabilities, whole, atol=1e-5)
    plain = predict_map(KerasPredictor(model, CLASSES), image, Blending.from_params(PARAMS.predict, WINDOW, "plain"))
    np.testing.assert_array_equal(plain, whole.argmax(-1))


def test_model_with_the_wrong_number_of_classes_is_refused():
    with pytest.raises(ValueError, match="outputs 5 classes per pixel, but 6 classes are expected"):
        KerasPredictor(tiny_keras_model(classes=5), CLASSES)


@pytest.mark.parametrize("model_channels, image_channels", [(3, 2), (3, 1), (4, 5)])
def test_image_channels_the_model_cannot_take_are_refused(model_channels, image_channels):
    predictor = KerasPredictor(tiny_keras_model(channels=model_channels), CLASSES)
    with pytest.raises(ValueError, match=f"has {image_channels} channel\\(s\\) but the model takes {model_channels}"):
        predict_probabilities(random_image((40, 40), image_channels), predictor, Blending(window=WINDOW), CLASSES)


def test_rgba_and_rgbir_images_are_predicted_from_their_rgb_bands():
    model = tiny_keras_model()
    rgb = random_image((50, 40))
    extra_band = random_image((50, 40), channels=1, seed=7)
    four_bands = np.concatenate([rgb, extra_band], axis=-1)  # RGBA, or Potsdam's RGBIR (infrared last)
    from_rgb = predict_probabilities(rgb, KerasPredictor(model, CLASSES), Blending(window=WINDOW, tta="none"), CLASSES)
    from_four = predict_probabilities(
        four_bands, KerasPredictor(model, CLASSES), Blending(window=WINDOW, tta="none"), CLASSES
    )
    np.testing.assert_array_equal(from_four, from_rgb)


def edge_sensitive_keras_model(classes=CLASSES) -> keras.Model:
    """3 x 3 convolutions with zero padding: predictions change under flips and turns at window edges."""
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((None, None, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(classes, 3, padding="same", activation="softmax"),
        ],
        name="edge_sensitive",
    )


@pytest.mark.parametrize("tta", ["flips", "d4"])
def test_test_time_augmentation_on_the_device_matches_numpy(tta):
    """The same maps whether NumPy turns every window (any plain function) or the model does,
    in one compiled call per batch of windows."""
    predictor = KerasPredictor(edge_sensitive_keras_model(), CLASSES)
    image = random_image((70, 45))
    on_device = predict_probabilities(image, predictor, Blending(window=WINDOW, tta=tta, batch_size=8), CLASSES)
    in_numpy = predict_probabilities(
        image, lambda batch: predictor(batch), Blending(window=WINDOW, tta=tta, batch_size=8), CLASSES
    )
    np.testing.assert_allclose(on_device, in_numpy, atol=1e-5)
    assert (
        np.abs(in_numpy - predict_probabilities(image, predictor, Blending(window=WINDOW, tta="none"), CLASSES)).max()
        > 1e-3
    )


def test_smooth_prediction_takes_the_train_stage_model_with_its_output_in_a_list(tmp_path):
    """The train stage saves keras.Model(model.inputs, model.outputs): called, it returns a list of one."""
    inner = tiny_keras_model()
    keras.Model(inner.inputs, inner.outputs).save(tmp_path / "model.keras")
    predictor = KerasPredictor(keras.saving.load_model(tmp_path / "model.keras"), CLASSES)
    image = random_image((40, 40))
    smooth = predict_probabilities(image, predictor, Blending(window=WINDOW, tta="flips"), CLASSES)
    whole = keras.ops.convert_to_numpy(inner(image[None].astype(np.float32), training=False))[0]
    np.testing.assert_allclose(smooth, whole, atol=1e-5)  # a per-pixel model: blending changes nothing
