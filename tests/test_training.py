"""aerialseg.train.training in process: the epoch callback's order of work, the two training phases."""

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import repo_params

from aerialseg.train.augmentation import segmentation_model
from aerialseg.train.checkpoint import Checkpoint, TrainingState
from aerialseg.train.dataset import PatchSequence
from aerialseg.train.training import EpochEnd, final_summary, fit, fresh_model

TINY_TRAIN = {
    "patches": {"patch_size": 32},
    "train": {"base_filters": 4, "batch_size": 4, "epochs": 3, "snapshot_every": 2, "dropout": 0.0},
}


def patch_batches(count: int = 8, side: int = 32) -> PatchSequence:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, side, side, 3), dtype=np.uint8)
    labels = rng.integers(0, 6, (count, side, side), dtype=np.uint8)
    return PatchSequence(images, labels, batch_size=4, shuffle=True, augment=True, seed=1)


@pytest.fixture
def mlflow_run(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("training-unit")
    with mlflow.start_run() as run:
        yield run


@pytest.mark.slow
def test_epoch_end_snapshots_when_due_checkpoints_every_epoch_and_logs_each_once(tmp_path, mlflow_run):
    params = repo_params(TINY_TRAIN)
    batches = patch_batches()
    model = fresh_model(params, None, len(batches))
    state, checkpoint, snapshots = TrainingState(), Checkpoint(tmp_path / "checkpoint", "unit"), []
    callback = EpochEnd(
        state, checkpoint, lambda _, epoch: snapshots.append(epoch), snapshot_every=2, patches=len(batches.images)
    )

    fit(model, batches, patch_batches(4), state, [callback], params.train, 6, None)

    assert snapshots == [2]
    assert state.epoch == 3 and [row["epoch"] for row in state.history] == [1, 2, 3]
    assert all(row["patches_per_s"] > 0 for row in state.history)
    _, saved = checkpoint.load()
    assert saved.epoch == 3 and saved.history == state.history
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(mlflow_run.info.run_id, "val_loss")]
    assert sorted(steps) == [1, 2, 3]


class RecordEncoder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.trainable = []

    def on_epoch_begin(self, epoch, logs=None):
        self.trainable.append(segmentation_model(self.model).get_layer("encoder").trainable)


@pytest.mark.slow
def test_a_pretrained_encoder_is_frozen_first_then_fine_tuned(tmp_path, mlflow_run):
    params = repo_params(
        {**TINY_TRAIN, "train": {**TINY_TRAIN["train"], "encoder": "vgg16", "freeze_encoder_epochs": 1}}
    )
    batches = patch_batches()
    model = fresh_model(params, None, len(batches))
    state, recorder = TrainingState(), RecordEncoder()
    epoch_end = EpochEnd(state, Checkpoint(tmp_path / "checkpoint", "unit"), lambda *_: None, 3, len(batches.images))

    fit(model, batches, patch_batches(4), state, [recorder, epoch_end], params.train, 6, None)

    assert recorder.trainable == [False, True, True]


@pytest.mark.slow
def test_a_resumed_fit_trains_only_the_missing_epochs_and_traces_the_step_once():
    """Once: the optimizer's slots are made before the first step, which TensorFlow would
    otherwise trace a second time (training.compile_model)."""
    params = repo_params(TINY_TRAIN)
    batches = patch_batches()
    model = fresh_model(params, None, len(batches))
    traces, train_step = [], model.train_step
    model.train_step = lambda data: traces.append(data) or train_step(data)  # Python runs once per trace
    fit(model, batches, patch_batches(4), TrainingState(epoch=2), [], params.train, 6, None)
    assert model.optimizer.iterations.numpy() == len(batches)  # one epoch of steps, the third
    assert len(traces) == 1


def test_final_summary_is_the_last_epoch_with_the_median_speed():
    history = pd.DataFrame({"epoch": [1, 2, 3], "loss": [0.9, 0.5, 0.4], "patches_per_s": [10.0, 50.0, 40.0]})
    assert final_summary(history) == {"loss": 0.4, "epochs": 3, "patches_per_s": 40.0}


@pytest.mark.slow
def test_train_jit_compile_true_trains_the_step_with_xla(monkeypatch):
    """XLA compiles the step unoptimised, as in the JAX tests (pipeline_helpers.jax_environment):
    the flag is read at the first XLA compile of this process, and most of the test is compiling."""
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0")
    params = repo_params({**TINY_TRAIN, "train": {**TINY_TRAIN["train"], "jit_compile": True}})
    batches = patch_batches()
    model = fresh_model(params, None, len(batches))
    history = keras.callbacks.History()
    fit(model, batches, patch_batches(4), TrainingState(epoch=2), [history], params.train, 6, None)
    assert model.jit_compile is True
    assert np.isfinite(history.history["loss"]).all() and np.isfinite(history.history["val_loss"]).all()
