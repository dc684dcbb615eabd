"""The model card (aerialseg.train.card) in every file a model is kept in, on real files: a .keras
zip that Keras still loads, a snapshot's .weights.h5, the exported .onnx and SavedModel; a model
without one; and the card the train stage writes into its model and snapshots."""

import subprocess
import sys
import zipfile

import keras
import mlflow
import numpy as np
import pytest
import yaml
from conftest import repo_params
from pipeline_helpers import REPO

from aerialseg.data.resolution import TrainingResolution
from aerialseg.pipeline.paths import Layout
from aerialseg.predict.export import export_model
from aerialseg.train.augmentation import training_model
from aerialseg.train.card import (
    CARD_FILE,
    INPUT_SCALE,
    MissingCardError,
    card_from_params,
    data_version,
    params_hash,
    read_card,
    write_card,
)
from aerialseg.train.checkpoint import TrainingState
from aerialseg.train.distribution import ONE_DEVICE
from aerialseg.train.training import snapshot_writer, write_outputs

CARD = card_from_params(repo_params({"data": {"bands": "irrg"}}), 0.1, "61eca3cd.dir", "abc123")
OTHER = card_from_params(repo_params({"patches": {"patch_size": 32}}), None)


def tiny_model(bands: int = 3) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, bands), name="photo")
    return keras.Model(inputs, keras.layers.Conv2D(6, 1, activation="softmax")(inputs))


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.keras"
    tiny_model().save(path)
    return path


@pytest.fixture(scope="module")
def exports(tmp_path_factory, keras_file):
    """model.onnx and saved_model/ of a tiny model with CARD, through aerialseg-export."""
    write_card(keras_file, CARD)
    return export_model(keras_file, tmp_path_factory.mktemp("export"))


def test_the_card_says_classes_bands_scale_resolution_window_settings_and_origin():
    params = repo_params({"data": {"bands": "irrg"}})
    assert [(c.name, c.colour, c.value) for c in CARD.classes] == [
        (name, colour, value) for value, (name, colour) in enumerate(zip(params.palette.names, params.palette.colours))
    ]
    assert CARD.palette == params.palette
    assert CARD.bands == ("IR", "R", "G") and OTHER.bands == ("R", "G", "B")
    assert card_from_params(repo_params({"data": {"bands": "rgbir"}}), None).bands == ("R", "G", "B", "IR")
    assert (CARD.input_scale, CARD.pixel_size_m, CARD.window, OTHER.window) == (INPUT_SCALE, 0.1, 64, 32)
    assert CARD.predict == params.predict.model_dump(mode="json")
    assert CARD.params_hash == params_hash(params) != params_hash(repo_params())
    assert (CARD.data_version, CARD.git_commit, CARD.card_version) == ("61eca3cd.dir", "abc123", 1)


def lock_entry(path: str, md5: str) -> dict:
    return {"path": path, "hash": "md5", "md5": md5, "size": 1}


def test_data_version_is_the_patches_md5_in_dvc_lock(tmp_path):
    """A dvc.lock as DVC writes it, where every other md5 differs: the patches stage's other
    outputs (listed first), the resize stage's output, and the train stage's record of
    data/patches as a dependency, stale here (as before the train stage reruns)."""
    assert data_version(tmp_path) is None
    lock = {
        "schema": "2.0",
        "stages": {
            "resize": {"cmd": "python -m stages.resize", "outs": [lock_entry("data/resized", "aaaa.dir")]},
            "patches": {
                "cmd": "python -m stages.patches",
                "deps": [lock_entry("data/resized", "aaaa.dir")],
                "outs": [
                    lock_entry("metrics/class_distribution.json", "bbbb"),
                    lock_entry("data/patches", "cccc.dir"),
                    lock_entry("metrics/class_distribution.png", "dddd"),
                ],
            },
            "train": {"cmd": "python -m stages.train", "deps": [lock_entry("data/patches", "eeee.dir")]},
        },
    }
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    assert data_version(tmp_path) == "cccc.dir"


def test_a_keras_file_keeps_its_card_and_still_loads(tmp_path, keras_file):
    path = tmp_path / "model.keras"
    path.write_bytes(keras_file.read_bytes())
    write_card(path, CARD)
    assert read_card(path) == CARD
    write_card(path, OTHER)  # replaced, not added
    assert read_card(path) == OTHER
    assert zipfile.ZipFile(path).namelist().count(CARD_FILE) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no temporary left
    batch = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(keras.saving.load_model(path).predict(batch, verbose=0), tiny_model()(batch))


def test_a_snapshot_weights_file_keeps_its_card_and_still_loads(tmp_path):
    path = tmp_path / "epoch_001.weights.h5"
    tiny_model().save_weights(path)
    write_card(path, CARD)
    assert read_card(path) == CARD
    tiny_model().load_weights(path)


def test_the_exports_keep_the_card_and_a_new_one_replaces_it(exports, tmp_path):
    saved_model, onnx = exports
    assert read_card(onnx) == CARD and read_card(saved_model) == CARD
    copy = tmp_path / "model.onnx"
    copy.write_bytes(onnx.read_bytes())
    write_card(copy, OTHER)
    assert read_card(copy) == OTHER


def test_reading_a_card_imports_no_keras_or_tensorflow(exports):
    """What an install with onnxruntime only (no TensorFlow, no Keras) does to read a card."""
    code = f"import sys; from aerialseg.train.card import read_card; read_card({str(exports[1])!r}); " + (
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow')))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_model_without_a_card_is_one_line_naming_it(tmp_path, keras_file):
    old = tmp_path / "old.keras"  # the model without aerialseg_card.json, as saved before cards
    with zipfile.ZipFile(keras_file) as source, zipfile.ZipFile(old, "w") as target:
        for member in source.infolist():
            if member.filename != CARD_FILE:
                target.writestr(member, source.read(member))
    weights = tmp_path / "old.weights.h5"
    tiny_model().save_weights(weights)
    (tmp_path / "saved_model").mkdir()
    for path in (old, weights, tmp_path / "saved_model"):
        with pytest.raises(MissingCardError) as error:
            read_card(path)
        assert str(error.value) == (
            f"{path}: the model carries no model card, so its classes and window are unknown (pass --params with "
            "the params.yaml it was trained with)"
        )


def test_the_train_stage_writes_the_card_into_its_model_and_every_snapshot(tmp_path):
    params, layout = repo_params({"train": {"snapshot_modes": ["plain"]}}), Layout(tmp_path)
    model = training_model(tiny_model())  # as the train stage holds it
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("card")  # in this store: an experiment another test made active is in another
    with mlflow.start_run() as run:
        snapshot = snapshot_writer(layout.snapshots, params, np.zeros((64, 64, 3), np.uint8), ONE_DEVICE, CARD)
        snapshot(model, 2)
    state = TrainingState(epoch=1, history=[{"epoch": 1, "loss": 0.5, "patches_per_s": 10.0}])
    write_outputs(layout, model, state, run.info.run_id, "sqlite:///x", TrainingResolution(0.1, 0.1, 0.1), CARD)
    assert read_card(layout.snapshots.weights(2)) == CARD
    assert read_card(layout.model) == CARD
    keras.saving.load_model(layout.model)
