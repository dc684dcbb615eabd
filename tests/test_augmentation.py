"""D4 augmentation in the training model (the symmetries themselves: tests/test_d4.py): drawn
symmetry numbers, and a training model whose loss and metrics on a turned photo are those of the
U-Net on the turned photo and the turned label."""

import keras
import numpy as np
import pytest

from aerialseg import d4
from aerialseg.evaluate.metrics import training_metrics
from aerialseg.train.augmentation import D4TrainingModel, draw_symmetries, segmentation_model, training_model
from aerialseg.train.losses import make_loss
from aerialseg.train.model import build_unet


def test_symmetries_are_drawn_evenly_and_reproducibly():
    drawn = draw_symmetries(8000, np.random.default_rng(1))
    assert drawn.dtype == np.int32
    np.testing.assert_array_equal(drawn, draw_symmetries(8000, np.random.default_rng(1)))
    assert np.bincount(drawn, minlength=d4.SYMMETRIES).min() > 900  # about 1000 each


def compiled(model: keras.Model) -> keras.Model:
    model.compile(loss=make_loss("dice_focal", 6), metrics=training_metrics(6))
    return model


def photos_numbers_labels(seed: int, count: int, side: int):
    rng = np.random.default_rng(seed)
    photos = rng.integers(0, 256, (count, side, side, 3)).astype("float32")
    numbers = rng.permutation(d4.SYMMETRIES)[:count].astype("int32")
    return photos, numbers, rng.integers(0, 6, (count, side, side)).astype("uint8")


def test_the_training_model_scores_the_map_of_the_turned_photo_against_the_turned_label():
    """Loss and metrics of (photo, s) against the label as stored are those of the U-Net on the
    turned photo against the turned label: the same as turning both in the loader."""
    unet = build_unet(6, base_filters=4, input_shape=(None, None, 3))
    training = compiled(training_model(unet))
    assert segmentation_model(training) is unet
    photos, numbers, labels = photos_numbers_labels(2, 4, 32)
    turned_photos = np.concatenate([d4.apply(p[None], n) for p, n in zip(photos, numbers)])
    turned_labels = np.concatenate([d4.apply(lab[None], n) for lab, n in zip(labels, numbers)])
    np.testing.assert_allclose(training.predict_on_batch([photos, numbers]), unet.predict_on_batch(turned_photos))
    got = training.evaluate([photos, numbers], labels, verbose=0, return_dict=True)
    expected = compiled(unet).evaluate(turned_photos, turned_labels, verbose=0, return_dict=True)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-5), name
    against_stored_labels = compiled(unet).evaluate(turned_photos, labels, verbose=0)
    assert against_stored_labels != pytest.approx(got["loss"], rel=1e-4)  # so the labels were turned


def test_a_saved_training_model_loads_back_and_still_turns_the_labels(tmp_path):
    training = compiled(training_model(build_unet(6, base_filters=4, input_shape=(None, None, 3))))
    training.save(tmp_path / "training.keras")
    loaded = keras.saving.load_model(tmp_path / "training.keras")
    assert isinstance(loaded, D4TrainingModel)
    photos, numbers, labels = photos_numbers_labels(3, 2, 16)
    np.testing.assert_allclose(
        loaded.predict_on_batch([photos, numbers]), training.predict_on_batch([photos, numbers]), atol=1e-6
    )
    got = loaded.evaluate([photos, numbers], labels, verbose=0, return_dict=True)
    expected = training.evaluate([photos, numbers], labels, verbose=0, return_dict=True)
    assert got == pytest.approx(expected, rel=1e-5)
