"""aerialseg-export on a real (small) U-Net of the project: the ONNX file run by onnxruntime and
the SavedModel loaded by TensorFlow give Keras' probabilities."""

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import onnxruntime
import output_helpers
import pytest
import tensorflow as tf
from conftest import repo_params
from pipeline_helpers import REPO, environment

from aerialseg.pipeline.atomic import PARTIAL
from aerialseg.predict.export import main
from aerialseg.train.card import card_from_params, read_card, write_card
from aerialseg.train.model import build_unet, stock_model

CLASSES = 6
tiny_disk = output_helpers.tiny_disk  # a fixture
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


def tree_hash(folder: Path) -> str:
    """One hash of every file's path and bytes under ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.mark.slow
def test_an_export_killed_between_its_two_writes_leaves_the_earlier_pair(unet, tmp_path):
    """SIGKILL once the new SavedModel is written and the ONNX file not yet: the old SavedModel
    and ONNX file stay, byte for byte; the next export removes the killed one's temporary."""
    _, path = unet
    out = tmp_path / "export"
    assert main(["--model", str(path), "--out", str(out)]) == 0
    before = tree_hash(out)
    command = [sys.executable, "-m", "aerialseg.predict.export", "--model", str(path), "--out", str(out), "--overwrite"]
    export = subprocess.Popen(command, cwd=REPO, env=environment(), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(f".export{PARTIAL}*/saved_model/saved_model.pb")):  # its last file
        assert export.poll() is None and time.monotonic() < deadline, "the export ended before it could be killed"
        time.sleep(0.02)
    output_helpers.kill(export)
    assert not list(tmp_path.glob(f".export{PARTIAL}*/model.onnx"))  # killed between the two writes
    assert tree_hash(out) == before
    assert main(["--model", str(path), "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


@pytest.mark.parametrize("given", ["a file", "a folder of other files"])
def test_an_out_that_is_not_an_export_folder_is_refused_before_the_model_loads(tmp_path, capsys, given):
    out = tmp_path / "out"
    if given == "a file":
        out.write_text("notes")
        message = f"error: {out}: is a file, not a folder (choose a folder with --out)\n"
    else:
        (out / "notes").mkdir(parents=True)
        message = (
            f"error: {out}: holds notes besides an export, and an export replaces its folder as a whole (export into "
            "a new or empty folder with --out)\n"
        )
    assert main(["--model", str(tmp_path / "no-model.keras"), "--out", str(out)]) == 1  # no model: not loaded
    assert capsys.readouterr().err == message


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux setpriv to drop root's DAC override")
def test_a_read_only_folder_is_refused_in_one_line(unet, tmp_path):
    """As a real process, without root's power to write anywhere (tests run as root)."""
    _, path = unet
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o555)
    command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", sys.executable]
    command += ["-m", "aerialseg.predict.export", "--model", str(path), "--out", str(read_only / "export")]
    result = subprocess.run(command, cwd=REPO, env=environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1  # besides TensorFlow's start-up log, one line and no traceback:
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {read_only}: cannot write an export into this folder (Permission denied) (choose a folder you can "
        "write to with --out)"
    )
    assert "Traceback" not in result.stderr
    assert os.listdir(read_only) == []


def test_a_full_disk_is_one_line_and_keeps_nothing(unet, tiny_disk, capsys):
    _, path = unet
    assert main(["--model", str(path), "--out", str(tiny_disk / "export")]) == 1
    free = shutil.disk_usage(tiny_disk).free // 1024
    assert capsys.readouterr().err == (
        f"error: {tiny_disk}/export: cannot write it: No space left on device; {free}.0 KiB free in {tiny_disk} "
        "(free some space there, or write to another disk)\n"
    )
    assert os.listdir(tiny_disk) == []
