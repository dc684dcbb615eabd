"""tracking.log_model, which the train stage calls on its final model: a real SQLite MLflow store,
the model registered under the experiment's name with a signature, loaded back by MLflow."""

from importlib.metadata import version
from pathlib import Path

import keras
import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from aerialseg.pipeline import tracking
from aerialseg.train.model import build_unet, stock_model

CLASSES = 6


def test_the_final_model_is_registered_with_a_signature_and_loads_through_mlflow(tmp_path):
    keras.utils.set_random_seed(0)
    model = stock_model(build_unet(CLASSES, base_filters=4))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with tracking.start_run(uri, "aerialseg-test") as run:
        tracking.log_model(model, "aerialseg-test")

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
