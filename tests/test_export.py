"""aerialseg-export on a real (small) U-Net of the project: the ONNX file run by onnxruntime and
the SavedModel loaded by TensorFlow give Keras' probabilities."""

from pathlib import Path

import keras
import numpy as np
import onnxruntime
import pytest
import tensorflow as tf
from conftest import repo_params
from pipeline_helpers import REPO

from aerialseg.predict.export import main
from aerialseg.train.card import card_from_params, read_card, write_card
from aerialseg.train.model import build_unet, stock_model

CLASSES = 6
CARD = card_from_params(repo_params(), pixel_size_m=0.05)


@pytest.fixture(scope="module")
def unet(tmp_path_factory) -> tuple[keras.Model, Path]:
    """The project's U-Net with batch norm and 4 base filters, saved as the train stage saves it."""
    keras.utils.set_random_seed(0)
    model = stock_model(build_unet(CLASSES, base_filters=4))
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    write_card(path, CARD)
    return model, path


def windows(count: int = 4, size: int = 32) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, size, size, 3)).astype(np.float32)


def test_export_writes_onnx_and_saved_model_that_match_keras(unet, tmp_path, capsys):
    model, path = unet
    assert main(["--model", str(path), "--out", str(tmp_path / "export")]) == 0
    assert capsys.readouterr().out.split() == [
        str(tmp_path / "export/saved_model"),
        str(tmp_path / "export/model.onnx"),
    ]
    batch = windows()
    expected = keras.ops.convert_to_numpy(model(batch, training=False))

    session = onnxruntime.InferenceSession(tmp_path / "export/model.onnx")
    (onnx_input,) = session.get_inputs()
    assert onnx_input.name == "photo" and onnx_input.shape[-1] == 3  # any batch and window size
    (onnx_output,) = session.run(None, {onnx_input.name: batch})
    np.testing.assert_allclose(onnx_output, expected, atol=1e-4)
    (larger,) = session.run(None, {onnx_input.name: windows(2, 64)})  # another window size, same file
    assert larger.shape == (2, 64, 64, CLASSES)

    served = tf.saved_model.load(str(tmp_path / "export/saved_model")).signatures["serving_default"]
    (served_output,) = served(tf.constant(batch)).values()  # what TF Serving calls
    np.testing.assert_allclose(served_output.numpy(), expected, atol=1e-5)

    assert read_card(tmp_path / "export/model.onnx") == CARD  # both carry the model's card
    assert read_card(tmp_path / "export/saved_model") == CARD


def test_an_existing_export_is_kept_unless_overwrite(unet, tmp_path, capsys):
    _, path = unet
    (tmp_path / "export/saved_model").mkdir(parents=True)
    arguments = ["--model", str(path), "--out", str(tmp_path / "export")]
    assert main(arguments) == 1
    assert capsys.readouterr().err == (
        f"error: {tmp_path}/export/saved_model: already exists (pass --overwrite to replace it)\n"
    )
    assert main([*arguments, "--overwrite"]) == 0
    assert (tmp_path / "export/saved_model/saved_model.pb").is_file()


def test_a_model_that_is_not_a_segmentation_model_is_refused(tmp_path, capsys):
    classifier = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(CLASSES)], name="classifier"
    )
    classifier.save(tmp_path / "classifier.keras")
    arguments = ["--model", str(tmp_path / "classifier.keras"), "--out", str(tmp_path / "export")]
    assert main([*arguments, "--params", str(REPO / "params.yaml")]) == 1
    assert capsys.readouterr().err.startswith(
        f"error: {tmp_path}/classifier.keras: model 'classifier' is not a segmentation model"
    )
    assert not (tmp_path / "export").exists()
