"""D4 augmentation in the training model: the eight symmetries, undone exactly, and a training
model whose loss on a turned photo is the loss a turned photo and label would give."""

import keras
import numpy as np
import pytest

from aerialseg.augmentation import D4, SYMMETRIES, draw_symmetries, segmentation_model, training_model
from aerialseg.model import build_unet


def numpy_symmetry(array: np.ndarray, number: int) -> np.ndarray:
    """What D4 does to one (H, W, ...) sample, written with NumPy's own operations."""
    if number & 1:
        array = np.swapaxes(array, 0, 1)
    if number & 2:
        array = array[::-1]
    if number & 4:
        array = array[:, ::-1]
    return array


@pytest.fixture
def patches():
    return np.random.default_rng(0).normal(size=(SYMMETRIES, 6, 6, 3)).astype("float32")


def test_the_eight_numbers_are_the_eight_symmetries_of_the_square(patches):
    same = np.repeat(patches[:1], SYMMETRIES, axis=0)
    turned = keras.ops.convert_to_numpy(D4()(same, np.arange(SYMMETRIES, dtype="int32")))
    assert len({sample.tobytes() for sample in turned}) == SYMMETRIES
    quarter_turns_and_mirrors = [np.rot90(patches[0], k) for k in range(4)]
    quarter_turns_and_mirrors += [turn[:, ::-1] for turn in quarter_turns_and_mirrors]
    assert {sample.tobytes() for sample in turned} == {
        np.ascontiguousarray(t).tobytes() for t in quarter_turns_and_mirrors
    }


def test_each_sample_gets_its_own_symmetry_and_inverse_undoes_it(patches):
    numbers = np.array([3, 0, 7, 5, 1, 6, 2, 4], dtype="int32")
    turned = keras.ops.convert_to_numpy(D4()(patches, numbers))
    for sample, number, original in zip(turned, numbers, patches):
        np.testing.assert_array_equal(sample, numpy_symmetry(original, number))
    back = keras.ops.convert_to_numpy(D4(inverse=True)(turned, numbers))
    np.testing.assert_array_equal(back, patches)


def test_symmetries_are_drawn_evenly_and_reproducibly():
    drawn = draw_symmetries(8000, np.random.default_rng(1))
    assert drawn.dtype == np.int32
    np.testing.assert_array_equal(drawn, draw_symmetries(8000, np.random.default_rng(1)))
    assert np.bincount(drawn, minlength=SYMMETRIES).min() > 900  # about 1000 each


def test_the_training_model_predicts_the_turned_photo_and_turns_the_prediction_back():
    """Its output for (photo, s) is the U-Net's map of the turned photo, turned back: comparing
    it with the stored label is comparing the map of the turned photo with the turned label."""
    unet = build_unet(6, base_filters=4, input_shape=(None, None, 3))
    training = training_model(unet)
    assert segmentation_model(training) is unet
    photos = np.random.default_rng(2).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    numbers = np.array([0, 1, 5, 6], dtype="int32")
    got = keras.ops.convert_to_numpy(training.predict_on_batch([photos, numbers]))
    for photo, number, output in zip(photos, numbers, got):
        turned_map = keras.ops.convert_to_numpy(unet.predict_on_batch(numpy_symmetry(photo, number)[None].copy()))[0]
        np.testing.assert_allclose(numpy_symmetry(output, number), turned_map, atol=1e-5)


def test_a_saved_training_model_loads_back_with_its_layers(tmp_path):
    training = training_model(build_unet(6, base_filters=4, input_shape=(None, None, 3)))
    training.save(tmp_path / "training.keras")
    loaded = keras.saving.load_model(tmp_path / "training.keras")
    photos = np.random.default_rng(3).integers(0, 256, (2, 16, 16, 3)).astype("float32")
    numbers = np.array([2, 7], dtype="int32")
    np.testing.assert_allclose(
        loaded.predict_on_batch([photos, numbers]), training.predict_on_batch([photos, numbers]), atol=1e-6
    )
