"""Data-parallel training for real on this CPU-only machine: two virtual devices under JAX
(XLA_FLAGS) and TensorFlow (two logical CPU devices), and two JAX processes on 127.0.0.1 that
each hold one device and their own copy of the project, as two hosts would.

Each run trains the tiny project for 2 epochs with the same global batch (8) as a one-device run
of the same backend, and its loss and val_loss of both epochs must match that run's: under JAX
within a relative 1e-4 (RTOL_JAX; pixel accuracy and jaccard within 1e-3, a few dozen of the
32768 pixels), since DataParallel computes the very same global batch, only spread over devices;
under TensorFlow within a relative 3e-2 (RTOL_TF), since tf.distribute computes the
BatchNormalization statistics and the Dice loss per replica (half a batch each, here 4 patches)
and averages the replicas' gradients (measured: 1.2 % apart at most).
"""

import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import textwrap

import keras
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from pipeline_helpers import TINY, deep_update, environment, jax_environment, make_project, run_stages

import aerialseg.train.model  # noqa: F401  registers the encoder preprocessing layer of saved models

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(__name__)]  # one worker trains the fixtures once

RTOL_JAX = 1e-4
RTOL_TF = 3e-2
ATOL_JAX_PIXELS = 1e-3
LOSSES, PIXEL_SCORES = ["loss", "val_loss"], ["accuracy", "jaccard", "val_accuracy", "val_jaccard"]
CHANGES = deep_update(json.loads(json.dumps(TINY)), {"train": {"snapshot_every": 2}})  # 32 train, 16 val patches

# One process trains each project folder it is given, in order. TensorFlow's logical devices
# must be set before TensorFlow starts. mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI,
# which the next training would take for the user's own setting, so it is cleared in between.
DRIVER = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    if sys.argv[1] == "tensorflow":
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from aerialseg.pipeline.params import load_params
    from aerialseg.pipeline.paths import Layout
    from aerialseg.train.training import train
    for folder in map(Path, sys.argv[2:]):
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        train(Layout(folder), load_params(folder / "params.yaml"))
""")


@pytest.fixture(scope="module")
def patches(tmp_path_factory):
    folder = make_project(tmp_path_factory.mktemp("distributed") / "patches", CHANGES, git=False)
    run_stages(["download", "resize", "patches"], folder)
    return folder


def copy_project(patches, folder, **train):
    """A copy of the prepared project with ``train`` params changed. It logs to the MLflow store
    beside ``patches`` (made once, not once per copy) in an experiment named after the folder."""
    shutil.copytree(patches, folder)
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params["train"].update(train)
    params["mlflow"] = {"tracking_uri": store(patches), "experiment": folder.name}
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder


def store(patches) -> str:
    return f"sqlite:///{patches.parent / 'mlflow.db'}"


def backend_env(backend: str, devices: int = 2, **extra) -> dict:
    base = jax_environment(devices) if backend == "jax" else dict(environment(), KERAS_BACKEND=backend)
    return dict(base, **extra)


def train_in_one_process(backend: str, *folders) -> str:
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, backend, *map(str, folders)],
        env=backend_env(backend),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def history(folder) -> pd.DataFrame:
    return pd.read_csv(folder / "metrics/train_history.csv")


def assert_trained_once(folder, patches) -> None:
    """One finished training: the model, the snapshot and one MLflow run with every epoch."""
    model = keras.saving.load_model(folder / "models/model.keras")
    assert model.output_shape[-1] == 6
    assert sorted(path.name for path in (folder / "models/snapshots").iterdir()) == [
        "epoch_002.weights.h5",
        "epoch_002_plain.png",
    ]
    assert not (folder / "models/checkpoint").exists()
    client = MlflowClient(store(patches))
    runs = client.search_runs([client.get_experiment_by_name(folder.name).experiment_id])
    assert len(runs) == 1
    assert sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, "val_loss")) == [1, 2]
    assert "images" in {a.path for a in client.list_artifacts(runs[0].info.run_id)}  # the snapshot's maps


def assert_same_history(folder, reference, rtol: float, pixels_atol: float | None = None) -> None:
    """The same epochs with the same losses, within ``rtol``; and pixel scores within ``pixels_atol``."""
    ours, theirs = history(folder), history(reference)
    assert ours["epoch"].tolist() == theirs["epoch"].tolist() == [1, 2]
    pd.testing.assert_frame_equal(ours[LOSSES], theirs[LOSSES], rtol=rtol, atol=0)
    if pixels_atol is not None:
        pd.testing.assert_frame_equal(ours[PIXEL_SCORES], theirs[PIXEL_SCORES], rtol=0, atol=pixels_atol)


@pytest.fixture(scope="module")
def jax_runs(patches, tmp_path_factory):
    """The same training under JAX on one device and data-parallel on two virtual devices."""
    root = tmp_path_factory.mktemp("jax")
    one = copy_project(patches, root / "jax_one")
    two = copy_project(patches, root / "jax_two", distribution="data_parallel")
    output = train_in_one_process("jax", one, two)
    return one, two, output


def test_jax_data_parallel_on_two_devices_matches_one_device(jax_runs, patches):
    one, two, output = jax_runs
    assert "data-parallel training on 2 devices, 1 process(es)" in output
    assert_same_history(two, one, RTOL_JAX, ATOL_JAX_PIXELS)
    assert_trained_once(two, patches)


def test_tensorflow_mirrored_on_two_devices_matches_one_device(patches, tmp_path):
    one = copy_project(patches, tmp_path / "tf_one")
    two = copy_project(patches, tmp_path / "tf_two", distribution="data_parallel")
    output = train_in_one_process("tensorflow", one, two)
    assert "data-parallel training on 2 devices, 1 process(es)" in output
    assert_same_history(two, one, RTOL_TF)
    assert_trained_once(two, patches)


def jax_multi_process_unsupported() -> str | None:
    """Why the installed JAX cannot run processes together on CPUs, or None if it can."""
    if importlib.util.find_spec("jax") is None:
        return "JAX is not installed"
    import jax

    collectives = getattr(jax.config, "jax_cpu_collectives_implementation", None)
    if collectives not in ("gloo", "mpi"):
        return f"JAX {jax.__version__} has no CPU collectives (jax_cpu_collectives_implementation={collectives!r})"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_jax_processes_train_together_and_only_the_chief_writes(jax_runs, patches, tmp_path):
    reason = jax_multi_process_unsupported()
    if reason:
        pytest.skip(reason)
    hosts = [copy_project(patches, tmp_path / f"host{index}", distribution="data_parallel") for index in (0, 1)]
    address = f"127.0.0.1:{free_port()}"
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "stages.train"],
            cwd=folder,
            env=backend_env(
                "jax",
                devices=1,
                KERAS_DISTRIBUTION_JOB_ADDRESSES=address,
                KERAS_DISTRIBUTION_NUM_PROCESSES="2",
                KERAS_DISTRIBUTION_PROCESS_ID=str(index),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index, folder in enumerate(hosts)
    ]
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    assert all("data-parallel training on 2 devices, 2 process(es)" in output for output in outputs)

    chief, worker = hosts
    assert_same_history(chief, jax_runs[0], RTOL_JAX, ATOL_JAX_PIXELS)
    assert_trained_once(chief, patches)
    assert project_files(worker) == project_files(patches)  # the worker wrote nothing
    assert MlflowClient(store(patches)).get_experiment_by_name(worker.name) is None  # and logged nothing


def project_files(folder) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if "__pycache__" not in path.parts)


def test_a_batch_that_does_not_split_over_the_devices_is_refused(patches, tmp_path):
    folder = copy_project(patches, tmp_path / "odd", distribution="data_parallel", batch_size=7)
    result = subprocess.run(
        [sys.executable, "-m", "stages.train"], cwd=folder, env=backend_env("jax"), capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "error: train.batch_size 7 cannot be split evenly over 2 devices" in result.stderr
    assert "Traceback" not in result.stderr
    assert "multiple of 2, e.g. 6 or 8" in result.stderr
    assert not (folder / "models").exists()
