"""Segmentation losses on real tensors, in a real training loop, and on the JAX backend."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from pipeline_helpers import jax_environment

from aerialseg.data.palette import IGNORE_INDEX
from aerialseg.train.losses import DiceFocalLoss, MaskedCrossEntropy, class_weights_from_counts, make_loss
from aerialseg.train.model import build_unet

K = 3
LOSSES = [DiceFocalLoss, MaskedCrossEntropy]
REPO_ROOT = Path(__file__).resolve().parents[1]


def value(loss, labels, probabilities):
    return float(keras.ops.convert_to_numpy(loss(labels, probabilities)))


@pytest.fixture
def labels():
    return np.random.default_rng(0).integers(0, K, (2, 8, 8)).astype("uint8")


def one_hot(labels):
    return np.eye(K, dtype="float32")[labels]


@pytest.mark.parametrize("loss_class", LOSSES)
def test_loss_is_near_zero_for_a_perfect_prediction_and_grows_with_the_error(loss_class, labels):
    loss = loss_class(K)
    uniform = np.full((*labels.shape, K), 1 / K, dtype="float32")

    perfect = value(loss, labels, one_hot(labels))
    unsure = value(loss, labels, uniform)
    wrong = value(loss, labels, one_hot((labels + 1) % K))

    assert perfect < 1e-3
    assert perfect < unsure < wrong


def reference_losses(labels, probabilities, weights, alpha=0.25, gamma=2.0, eps=1e-5):
    """Both losses written out per class in NumPy, as segmentation_models writes them: the
    focal and cross-entropy terms of every class, kept for the labelled one."""
    valid = (labels != IGNORE_INDEX)[..., None]
    hot = one_hot(np.where(valid[..., 0], labels, 0)) * valid
    log = np.log(np.clip(probabilities, eps, 1.0))
    pixel_weights = (hot * weights).sum(-1)

    def pixel_mean(per_class):
        return ((per_class * hot).sum(-1) * pixel_weights).sum() / max(pixel_weights.sum(), eps)

    dice = (2 * (hot * probabilities).sum((0, 1, 2)) + eps) / (
        hot.sum((0, 1, 2)) + (probabilities * valid).sum((0, 1, 2)) + eps
    )
    focal = pixel_mean(-alpha * (1 - probabilities) ** gamma * log)
    return {DiceFocalLoss: 1 - (dice * weights).sum() / weights.sum() + focal, MaskedCrossEntropy: pixel_mean(-log)}


@pytest.mark.parametrize("loss_class", LOSSES)
@pytest.mark.parametrize("weights", [None, [0.5, 2.0, 1.0]])
def test_losses_are_what_they_are_written_per_class_in_numpy(loss_class, weights, labels):
    probabilities = np.random.default_rng(2).dirichlet(np.ones(K), labels.shape).astype("float32")
    labels[0, :2] = IGNORE_INDEX
    expected = reference_losses(labels, probabilities, np.ones(K) if weights is None else np.array(weights))
    assert value(loss_class(K, weights), labels, probabilities) == pytest.approx(expected[loss_class], rel=1e-5)


@pytest.mark.parametrize("loss_class", LOSSES)
def test_ignored_pixels_do_not_count(loss_class, labels):
    loss = loss_class(K)
    probabilities = np.random.default_rng(1).dirichlet(np.ones(K), labels.shape).astype("float32")
    labels[:, :3] = IGNORE_INDEX
    changed = probabilities.copy()
    changed[:, :3] = one_hot((labels[:, :3] + 1) % K)  # any prediction where the label is ignored

    with_ignored = value(loss, labels, probabilities)

    assert with_ignored == pytest.approx(value(loss, labels, changed), rel=1e-6)
    assert with_ignored == pytest.approx(value(loss, labels[:, 3:], probabilities[:, 3:]), rel=1e-5)


@pytest.mark.parametrize("loss_class", LOSSES)
def test_labels_with_a_channel_axis_give_the_same_loss(loss_class, labels):
    probabilities = np.random.default_rng(2).dirichlet(np.ones(K), labels.shape).astype("float32")

    assert value(loss_class(K), labels[..., None], probabilities) == pytest.approx(
        value(loss_class(K), labels, probabilities), rel=1e-6
    )


@pytest.mark.parametrize("loss_class", LOSSES)
def test_weighting_the_badly_predicted_class_raises_the_loss(loss_class, labels):
    guess = np.where(labels == 2, 0, labels)  # class 2 always mistaken for class 0
    probabilities = 0.8 * one_hot(guess) + 0.2 / K

    plain = value(loss_class(K), labels, probabilities)
    stressed = value(loss_class(K, class_weights=[1.0, 1.0, 4.0]), labels, probabilities)
    relaxed = value(loss_class(K, class_weights=[1.0, 1.0, 0.25]), labels, probabilities)

    assert relaxed < plain < stressed


@pytest.mark.parametrize(
    "bad_weights, message", [([1.0, 2.0], "2 values for 3 classes"), ([1.0, -1.0, 1.0], "non-negative")]
)
def test_bad_class_weights_are_refused(bad_weights, message):
    with pytest.raises(ValueError, match=message):
        DiceFocalLoss(K, class_weights=bad_weights)


@pytest.mark.parametrize("loss_class", LOSSES)
def test_loss_round_trips_through_its_config(loss_class, labels):
    loss = loss_class(K, class_weights=[0.5, 1.0, 1.5], ignore_index=7)
    probabilities = np.random.default_rng(3).dirichlet(np.ones(K), labels.shape).astype("float32")

    restored = keras.losses.deserialize(keras.losses.serialize(loss))

    assert type(restored) is loss_class
    assert restored.get_config() == loss.get_config()
    assert value(restored, labels, probabilities) == value(loss, labels, probabilities)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # never trained: no slots
def test_model_saved_with_its_compile_state_reloads_the_loss(tmp_path):
    model = build_unet(K, base_filters=2)
    model.compile(optimizer="adam", loss=DiceFocalLoss(K, class_weights=[1.0, 2.0, 3.0]))
    path = tmp_path / "model.keras"
    model.save(path)

    reloaded = keras.saving.load_model(path)

    assert isinstance(reloaded.loss, DiceFocalLoss)
    assert reloaded.loss.class_weights == [1.0, 2.0, 3.0]


def test_make_loss_builds_each_loss_by_name():
    assert isinstance(make_loss("dice_focal", K), DiceFocalLoss)
    crossentropy = make_loss("crossentropy", K, class_weights=[1.0, 2.0, 3.0])
    assert isinstance(crossentropy, MaskedCrossEntropy)
    assert crossentropy.class_weights == [1.0, 2.0, 3.0]


def test_unknown_loss_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown loss 'lovasz'; valid: dice_focal, crossentropy"):
        make_loss("lovasz", K)


def test_class_weights_are_inverse_frequencies_with_mean_one():
    weights = class_weights_from_counts([100, 300, 600])

    assert np.mean(weights) == pytest.approx(1.0)
    assert weights[0] / weights[1] == pytest.approx(3.0)
    assert weights[0] / weights[2] == pytest.approx(6.0)


def test_absent_classes_get_zero_weight():
    weights = class_weights_from_counts([50, 0, 50])

    assert weights == pytest.approx([1.5, 0.0, 1.5])


@pytest.mark.parametrize("counts", [[], [0, 0], [5, -1]])
def test_impossible_pixel_counts_are_refused(counts):
    with pytest.raises(ValueError, match="pixel counts"):
        class_weights_from_counts(counts)


def learnable_batch(size=32, count=4, seed=0):
    """Bright pixels are class 1, dark ones class 0, and a band along the top is ignored."""
    rng = np.random.default_rng(seed)
    bright = rng.random((count, size, size)) < 0.5
    images = np.repeat(np.where(bright, 230.0, 25.0)[..., None], 3, axis=-1).astype("float32")
    labels = bright.astype("uint8")
    labels[:, :2] = IGNORE_INDEX
    return images, labels


@pytest.mark.parametrize("loss_name", ["dice_focal", "crossentropy"])
def test_training_a_tiny_unet_lowers_the_loss(loss_name):
    keras.utils.set_random_seed(0)
    images, labels = learnable_batch()
    model = build_unet(2, base_filters=4)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=make_loss(loss_name, 2))

    history = model.fit(images, labels, batch_size=4, epochs=10, verbose=0).history["loss"]

    assert history[-1] < 0.7 * history[0], history


@pytest.mark.slow
def test_the_loss_trains_a_unet_on_the_jax_backend():
    """Keras code stays backend-neutral: the same model and loss fit under JAX."""
    code = textwrap.dedent("""
        import keras, numpy as np
        from aerialseg.train.losses import DiceFocalLoss
        from aerialseg.train.model import build_unet
        assert keras.backend.backend() == "jax"
        rng = np.random.default_rng(0)
        images = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
        labels = rng.integers(0, 3, (4, 32, 32)).astype("uint8")
        labels[:, 0] = 255
        model = build_unet(3, base_filters=4)
        model.compile(optimizer="adam", loss=DiceFocalLoss(3, class_weights=[1.0, 2.0, 0.5]))
        loss = model.fit(images, labels, batch_size=2, epochs=1, verbose=0).history["loss"][0]
        assert np.isfinite(loss), loss
        print("jax loss", loss)
    """)
    run = subprocess.run(
        [sys.executable, "-c", code], env=jax_environment(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=240
    )

    assert run.returncode == 0, run.stderr[-3000:]
    print(run.stdout)
    assert "jax loss" in run.stdout
