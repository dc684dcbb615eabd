"""tracking.log_model, which the train stage calls on its final model: a real SQLite MLflow store,
the model registered under the experiment's name with a signature and the model card, loaded back
by MLflow; the evaluation's scores as tags of that version."""

from importlib.metadata import version
from pathlib import Path

import keras
import mlflow
import numpy as np
from conftest import repo_params
from mlflow.tracking import MlflowClient

from aerialseg.evaluate.evaluation import version_tags
from aerialseg.pipeline import tracking
from aerialseg.train.card import card_from_params, read_card
from aerialseg.train.model import build_unet, stock_model

CLASSES = 6
CARD = card_from_params(repo_params(), pixel_size_m=0.1)


def test_the_final_model_is_registered_with_a_signature_and_loads_through_mlflow(tmp_path):
    keras.utils.set_random_seed(0)
    model = stock_model(build_unet(CLASSES, base_filters=4))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with tracking.start_run(uri, "aerialseg-test") as run:
        tracking.log_model(model, "aerialseg-test", CARD)

    client = MlflowClient(uri)
    versions = client.search_model_versions("name = 'aerialseg-test'")
    assert [(int(version.version), version.run_id) for version in versions] == [(1, run.info.run_id)]

    mlflow.set_tracking_uri(uri)
    loaded = mlflow.pyfunc.load_model("models:/aerialseg-test/1")  # as `mlflow models serve` loads it
    signature = loaded.metadata.signature
    assert [(spec.type, spec.shape) for spec in signature.inputs.inputs] == [(np.dtype("float32"), (-1, -1, -1, 3))]
    assert [spec.shape for spec in signature.outputs.inputs] == [(-1, -1, -1, CLASSES)]
    batch = np.random.default_rng(0).integers(0, 256, (2, 48, 32, 3)).astype(np.float32)  # any window size
    expected = keras.ops.convert_to_numpy(model(batch, training=False))
    np.testing.assert_allclose(loaded.predict(batch), expected, atol=1e-5)

    requirements = Path(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/model/requirements.txt"))
    pinned = dict(line.split("==") for line in requirements.read_text().split())
    assert {package: pinned.get(package) for package in ("mlflow", "keras", "tensorflow", "numpy")} == {
        package: version(package) for package in ("mlflow", "keras", "tensorflow", "numpy")
    }


def test_the_registered_version_carries_the_card_and_then_the_test_scores(tmp_path):
    model = stock_model(build_unet(CLASSES, base_filters=4))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with tracking.start_run(uri, "aerialseg-test") as run:
        tracking.log_model(model, "aerialseg-test", CARD)
    for model_uri in ("models:/aerialseg-test/1", f"runs:/{run.info.run_id}/model"):
        assert read_card(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp_path / "dl"))) == CARD
    client = MlflowClient(uri)
    assert client.get_model_version("aerialseg-test", "1").tags == {
        "aerialseg.classes": '["impervious_surfaces", "building", "low_vegetation", "tree", "car", "clutter"]',
        "aerialseg.bands": '["R", "G", "B"]',
        "aerialseg.pixel_size_m": "0.1",
        "aerialseg.window": "64",
    }

    results = {mode: {"oa": 0.9, "miou": 0.8, "per_class": {}} for mode in ("plain", "smooth")}
    tracking.tag_registered_versions(run.info.run_id, version_tags(results))
    tags = client.get_model_version("aerialseg-test", "1").tags
    assert {key: tags[key] for key in tags if key.startswith("test.")} == {
        "test.plain.oa": "0.9",
        "test.plain.miou": "0.8",
        "test.smooth.oa": "0.9",
        "test.smooth.miou": "0.8",
    }
