"""U-Net models: real Keras models built, run, frozen, saved and reloaded at tiny sizes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import repo_params

from aerialseg.train.model import (
    BACKBONES,
    ENCODERS,
    BatchNormalization,
    EncoderWeightsError,
    ImagenetPreprocessing,
    SpatialDropout2D,
    build_model,
    build_unet,
    set_encoder_trainable,
    stock_model,
)

NUM_CLASSES = 6
REPO_ROOT = Path(__file__).resolve().parents[1]


def random_rgb(*shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (*shape, 3)).astype("float32")


def layers_of(model, layer_type):
    return [layer for layer in model.layers if type(layer) is layer_type]


@pytest.fixture(scope="module")
def classic_unet():
    return build_unet(NUM_CLASSES, base_filters=4, dropout=0.1)


@pytest.mark.parametrize("height, width", [(64, 64), (64, 96)])
def test_classic_unet_returns_class_probabilities_at_input_resolution(classic_unet, height, width):
    probabilities = classic_unet.predict(random_rgb(2, height, width), verbose=0)

    assert probabilities.shape == (2, height, width, NUM_CLASSES)
    assert probabilities.min() >= 0
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)


def test_classic_unet_has_four_levels_and_the_requested_filters(classic_unet):
    convolutions = layers_of(classic_unet, keras.layers.Conv2D)

    assert len(layers_of(classic_unet, keras.layers.MaxPooling2D)) == 4
    assert len(layers_of(classic_unet, keras.layers.Conv2DTranspose)) == 4
    assert len(convolutions) == 4 * 2 + 2 + 4 * 2 + 1  # encoder, bridge, decoder, 1x1 head
    assert [conv.filters for conv in convolutions[:10:2]] == [4, 8, 16, 32, 64]
    assert convolutions[-1].filters == NUM_CLASSES
    assert len(layers_of(classic_unet, SpatialDropout2D)) == 9
    assert len(layers_of(classic_unet, BatchNormalization)) == 18


def test_batch_norm_and_dropout_can_be_left_out():
    model = build_unet(NUM_CLASSES, base_filters=2, batch_norm=False, dropout=0.0)

    assert not layers_of(model, BatchNormalization)
    assert not layers_of(model, SpatialDropout2D)


def test_classic_unet_reloads_from_keras_file_with_identical_predictions(classic_unet, tmp_path):
    path = tmp_path / "model.keras"
    classic_unet.save(path)
    images = random_rgb(1, 32, 48)

    reloaded = keras.saving.load_model(path)

    np.testing.assert_array_equal(reloaded.predict(images, verbose=0), classic_unet.predict(images, verbose=0))


def test_classic_unet_saved_as_stock_model_loads_without_aerialseg_and_predicts_the_same(classic_unet, tmp_path):
    """models/model.keras is written through stock_model: a Python that never imports aerialseg
    loads it with plain keras.saving.load_model, and it predicts exactly as the trained model."""
    stock_model(classic_unet).save(tmp_path / "model.keras")
    images = random_rgb(1, 32, 48)
    np.save(tmp_path / "images.npy", images)
    script = textwrap.dedent(
        """
        import sys
        import keras, numpy as np
        model = keras.saving.load_model("model.keras")
        np.save("probabilities.npy", model.predict(np.load("images.npy"), verbose=0))
        assert not [name for name in sys.modules if name.startswith("aerialseg")]
        """
    )
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True)

    np.testing.assert_array_equal(np.load(tmp_path / "probabilities.npy"), classic_unet.predict(images, verbose=0))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the fused kernel is TensorFlow's")
def test_fused_batch_normalization_trains_as_keras_own_does():
    """Same outputs, gradients and moving statistics as Keras' layer, through the fused kernel."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(3, 2, (4, 8, 8, 5)).astype("float32"))
    ours, keras_own = BatchNormalization(momentum=0.9), keras.layers.BatchNormalization(momentum=0.9)
    gamma, beta = rng.uniform(0.5, 2, 5), rng.normal(0, 1, 5)
    for layer in (ours, keras_own):
        layer.build(x.shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
    assert "FusedBatchNormV3" in {
        op.type for op in tf.function(lambda v: ours(v, training=True)).get_concrete_function(x).graph.get_operations()
    }
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        outputs = {layer: layer(x, training=True) for layer in (ours, keras_own)}
        losses = {layer: tf.reduce_sum(output**3) for layer, output in outputs.items()}
    gradients = {layer: tape.gradient(losses[layer], [x, layer.gamma, layer.beta]) for layer in (ours, keras_own)}

    np.testing.assert_allclose(outputs[ours], outputs[keras_own], atol=1e-5)
    for ours_gradient, keras_gradient in zip(gradients[ours], gradients[keras_own]):
        np.testing.assert_allclose(ours_gradient, keras_gradient, rtol=1e-4, atol=1e-3)
    for statistic in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(getattr(ours, statistic), getattr(keras_own, statistic), rtol=1e-5)
    np.testing.assert_allclose(ours(x, training=False), keras_own(x, training=False), atol=1e-5)


def test_spatial_dropout_drops_the_same_feature_maps_as_keras_own_does():
    """Draw after draw from the same seed: the same whole feature maps dropped and the others
    scaled by 1 / (1 - rate), as Keras' layer does; nothing dropped outside training."""
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 32)).astype("float32")
    ours, keras_own = SpatialDropout2D(0.3, seed=7), keras.layers.SpatialDropout2D(0.3, seed=7)
    for _ in range(3):
        dropped = keras.ops.convert_to_numpy(ours(x, training=True))
        np.testing.assert_array_equal(dropped, keras.ops.convert_to_numpy(keras_own(x, training=True)))
        kept = np.any(dropped != 0, axis=(1, 2), keepdims=True)  # (N, 1, 1, C): whole maps
        assert 0.5 < kept.mean() < 0.9
        np.testing.assert_allclose(dropped, np.where(kept, x / 0.7, 0.0), rtol=1e-6)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours(x, training=False)), x)


def test_input_sizes_that_cannot_be_halved_enough_are_refused():
    with pytest.raises(ValueError, match="multiples of 16"):
        build_unet(NUM_CLASSES, input_shape=(72, 64, 3))
    with pytest.raises(ValueError, match="multiples of 32"):
        build_unet(NUM_CLASSES, encoder="vgg16", input_shape=(48, 48, 3))


def test_classic_unet_takes_four_bands_and_keeps_them_in_the_saved_model(tmp_path):
    """RGBIR photos: the band count is the model's input shape, saved with it."""
    model = build_unet(NUM_CLASSES, base_filters=2, input_shape=(None, None, 4))
    photos = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 4)).astype("float32")
    assert model.predict(photos, verbose=0).shape == (1, 32, 32, NUM_CLASSES)
    model.save(tmp_path / "model.keras")
    assert keras.saving.load_model(tmp_path / "model.keras").input_shape == (None, None, None, 4)


def test_a_pretrained_encoder_refuses_other_than_three_bands():
    with pytest.raises(ValueError, match=r"pretrained encoder \(mobilenetv2\) takes 3 bands.*has 4.*encoder 'none'"):
        build_unet(NUM_CLASSES, encoder="mobilenetv2", input_shape=(None, None, 4))


@pytest.fixture(scope="module", params=list(BACKBONES))
def encoder_unet(request):
    """One U-Net per pretrained encoder, randomly initialised; built once per module."""
    return request.param, build_unet(NUM_CLASSES, encoder=request.param, base_filters=4)


def test_encoder_unet_returns_probabilities_at_full_resolution(encoder_unet):
    _, model = encoder_unet

    probabilities = model.predict(random_rgb(1, 64, 64), verbose=0)

    assert probabilities.shape == (1, 64, 64, NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)


def test_freezing_the_encoder_leaves_only_the_decoder_trainable(encoder_unet):
    _, model = encoder_unet
    encoder_weights = len(model.get_layer("encoder").trainable_weights)
    all_weights = len(model.trainable_weights)

    set_encoder_trainable(model, False)
    frozen = len(model.trainable_weights)
    set_encoder_trainable(model, True)

    assert encoder_weights > 0
    assert frozen == all_weights - encoder_weights
    assert len(model.trainable_weights) == all_weights


def test_encoder_weights_load_from_a_weights_file(encoder_unet, tmp_path):
    name, model = encoder_unet
    path = tmp_path / f"{name}.weights.h5"
    model.get_layer("encoder").save_weights(path)

    loaded = build_unet(NUM_CLASSES, encoder=name, encoder_weights=str(path), base_filters=4)

    saved_weights = model.get_layer("encoder").get_weights()
    loaded_weights = loaded.get_layer("encoder").get_weights()
    assert len(loaded_weights) == len(saved_weights)
    for saved, restored in zip(saved_weights, loaded_weights):
        np.testing.assert_array_equal(restored, saved)


def test_encoder_weights_load_from_a_keras_applications_h5_file(tmp_path):
    """The legacy .h5 layout of the ImageNet files Keras downloads."""
    path = tmp_path / "vgg16_notop.h5"
    vgg = keras.applications.VGG16(include_top=False, weights=None)
    vgg.save(path)

    loaded = build_unet(NUM_CLASSES, encoder="vgg16", encoder_weights=str(path), base_filters=2)

    for saved, restored in zip(vgg.get_weights(), loaded.get_layer("encoder").get_weights()):
        np.testing.assert_array_equal(restored, saved)


def test_missing_encoder_weights_file_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "resnet50.weights.h5"

    with pytest.raises(FileNotFoundError, match=str(missing)):
        build_unet(NUM_CLASSES, encoder="resnet50", encoder_weights=str(missing))


def test_corrupt_encoder_weights_file_is_named(tmp_path):
    corrupt = tmp_path / "mobilenetv2.weights.h5"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))

    with pytest.raises(EncoderWeightsError, match=str(corrupt)):
        build_unet(NUM_CLASSES, encoder="mobilenetv2", encoder_weights=str(corrupt), base_filters=2)


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras' per-layer notes on the mismatch
def test_weights_of_another_encoder_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "vgg16.weights.h5"
    build_unet(NUM_CLASSES, encoder="vgg16", base_filters=2).get_layer("encoder").save_weights(path)

    with pytest.raises(EncoderWeightsError, match=f"{path}: cannot load mobilenetv2 weights"):
        build_unet(NUM_CLASSES, encoder="mobilenetv2", encoder_weights=str(path), base_filters=2)


def test_imagenet_weights_offline_say_which_file_goes_into_which_folder(tmp_path):
    """Runs in a subprocess: Keras fixes its cache folder ($KERAS_HOME) when it is imported."""
    code = textwrap.dedent("""
        from aerialseg.train.model import EncoderWeightsError, build_unet
        try:
            build_unet(6, encoder="mobilenetv2", encoder_weights="imagenet", base_filters=2)
            print("DOWNLOADED")
        except EncoderWeightsError as error:
            print("ERROR:", error)
    """)
    env = {**os.environ, "KERAS_HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )

    assert run.returncode == 0, run.stderr
    file_name = BACKBONES["mobilenetv2"].imagenet_file
    if "DOWNLOADED" in run.stdout:  # a machine with internet: Keras cached the file in that folder
        assert (tmp_path / "models" / file_name).is_file()
    else:
        assert f"put {file_name} into the folder {tmp_path / 'models'}" in run.stdout


@pytest.mark.parametrize("encoder_unet", ["mobilenetv2"], indirect=True)
def test_encoder_unet_reloads_with_its_preprocessing_layer(encoder_unet, tmp_path):
    _, model = encoder_unet
    path = tmp_path / "model.keras"
    model.save(path)
    images = random_rgb(1, 32, 64)

    reloaded = keras.saving.load_model(path)  # safe mode: no Lambda layers

    assert isinstance(reloaded.get_layer("preprocessing"), ImagenetPreprocessing)
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)


@pytest.mark.parametrize(
    "encoder, expected",
    [
        ("resnet50", [0 - 103.939, 0 - 116.779, 255 - 123.68]),  # caffe: BGR, ImageNet mean removed
        ("vgg16", [0 - 103.939, 0 - 116.779, 255 - 123.68]),
        ("mobilenetv2", [1.0, -1.0, -1.0]),  # tf: -1..1
        ("efficientnetb0", [255.0, 0.0, 0.0]),  # rescales inside the network
    ],
)
def test_preprocessing_matches_what_each_encoder_was_trained_with(encoder, expected):
    red = np.array([[[[255.0, 0.0, 0.0]]]], dtype="float32")

    out = keras.ops.convert_to_numpy(ImagenetPreprocessing(encoder)(red))

    np.testing.assert_allclose(out[0, 0, 0], expected, rtol=1e-5)


def test_set_encoder_trainable_refuses_a_model_without_encoder(classic_unet):
    with pytest.raises(ValueError, match="no pretrained encoder"):
        set_encoder_trainable(classic_unet, False)


def test_unknown_encoder_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown encoder 'resnet18'; valid: " + ", ".join(ENCODERS)):
        build_unet(NUM_CLASSES, encoder="resnet18")


def test_encoder_weights_without_a_pretrained_encoder_are_refused():
    with pytest.raises(ValueError, match="'imagenet' needs a pretrained encoder"):
        build_unet(NUM_CLASSES, encoder="none", encoder_weights="imagenet")


def test_build_model_builds_what_the_train_params_say():
    train = repo_params({"train": {"base_filters": 2, "batch_norm": False, "dropout": 0.1}}).train
    model = build_model(train, 3, bands=4)

    assert model.input_shape == (None, None, None, 4)
    assert model.output_shape == (None, None, None, 3)
    assert layers_of(model, keras.layers.Conv2D)[0].filters == 2
    assert not layers_of(model, BatchNormalization)
    assert {layer.rate for layer in layers_of(model, SpatialDropout2D)} == {0.1}
