"""The eight symmetries of the square, in NumPy and keras.ops alike, one symmetry for the whole
batch or one per sample; and the test-time augmentation sets made of them."""

import subprocess
import sys

import keras
import numpy as np
import pytest
from pipeline_helpers import REPO

from aerialseg import d4

NUMBERS = range(d4.SYMMETRIES)


def numpy_symmetry(array: np.ndarray, number: int) -> np.ndarray:
    """What symmetry ``number`` does to one (H, W, ...) sample, written with NumPy's own indexing."""
    if number & 1:
        array = np.swapaxes(array, 0, 1)
    if number & 2:
        array = array[::-1]
    if number & 4:
        array = array[:, ::-1]
    return array


@pytest.fixture
def patches():
    return np.random.default_rng(0).normal(size=(d4.SYMMETRIES, 6, 6, 3)).astype("float32")


def test_the_eight_numbers_are_the_eight_symmetries_of_the_square(patches):
    turned = [d4.apply(patches[:1], number)[0] for number in NUMBERS]
    assert len({np.ascontiguousarray(t).tobytes() for t in turned}) == d4.SYMMETRIES
    quarter_turns_and_mirrors = [np.rot90(patches[0], k) for k in range(4)]
    quarter_turns_and_mirrors += [turn[:, ::-1] for turn in quarter_turns_and_mirrors]
    assert {np.ascontiguousarray(t).tobytes() for t in turned} == {
        np.ascontiguousarray(t).tobytes() for t in quarter_turns_and_mirrors
    }


@pytest.mark.parametrize("number", NUMBERS)
def test_each_number_means_its_bits(patches, number):
    expected = [numpy_symmetry(patch, number) for patch in patches]
    np.testing.assert_array_equal(d4.apply(patches, number), expected)


@pytest.mark.parametrize("number", NUMBERS)
def test_keras_ops_turn_as_numpy_does(patches, number):
    for function in (d4.apply, d4.undo):
        on_device = keras.ops.convert_to_numpy(function(keras.ops.convert_to_tensor(patches), number, ops=keras.ops))
        np.testing.assert_array_equal(on_device, function(patches, number))


@pytest.mark.parametrize("number", NUMBERS)
def test_undo_gives_back_what_apply_turned(patches, number):
    np.testing.assert_array_equal(d4.undo(d4.apply(patches, number), number), patches)
    np.testing.assert_array_equal(d4.apply(d4.undo(patches, number), number), patches)


def test_each_sample_gets_its_own_symmetry_whatever_its_channels(patches):
    numbers = np.array([3, 0, 7, 5, 1, 6, 2, 4], dtype="int32")
    labels = (patches[..., 0] > 0).astype("uint8")  # (N, H, W), as the labels come
    for batch in (patches, labels):
        turned = keras.ops.convert_to_numpy(d4.apply_each(batch, numbers))
        for sample, number, original in zip(turned, numbers, batch):
            np.testing.assert_array_equal(sample, numpy_symmetry(original, number))


def test_the_tta_sets():
    assert d4.TTA_SETS["none"] == (0,)
    assert d4.TTA_SETS["d4"] == tuple(NUMBERS)
    window = np.arange(16).reshape(4, 4)
    flips = [d4.apply(window[None], number)[0] for number in d4.TTA_SETS["flips"]]
    np.testing.assert_array_equal(flips, [window, window[:, ::-1], window[::-1], window[::-1, ::-1]])


def test_importing_d4_does_not_import_keras():
    """The data stages use no model: Keras (seconds to load) must stay out of their imports."""
    code = "import sys, aerialseg.d4; print('keras' in sys.modules)"
    child = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert child.stdout.split() == ["False"]
