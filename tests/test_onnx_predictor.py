"""aerialseg-predict with an ONNX model (aerialseg-export's model.onnx) on onnxruntime: the same
maps as the Keras model it was exported from, without TensorFlow or Keras ever imported, and
one-line errors for ONNX files that are not segmentation models."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import onnx
import pytest
import rasterio
import tomllib
from conftest import POTSDAM_PALETTE
from pipeline_helpers import REPO, environment
from test_predict_cli import PARAMS, WINDOW, error_line, files_in, photo, predict, write_geotiff

from aerialseg.errors import MissingExtraError
from aerialseg.predict.export import export_model
from aerialseg.predict.onnx_predictor import OnnxPredictor
from aerialseg.predict.runtimes import load_predictor
from aerialseg.train.model import build_unet, stock_model

RUNTIMES = ("keras", "onnx")  # the folders of each model's maps, named by its suffix

# Run in a fresh Python: the command with the train extra's heavy packages made impossible to import
# (as in an install of aerialseg[onnx]), then which of them were imported after all, and the
# distributions of every module imported.
WITHOUT_TRAIN_EXTRA = textwrap.dedent(
    """
    import sys

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "tf2onnx", "mlflow", "dvc", "jax"):
                raise ModuleNotFoundError(f"No module named {name!r} (refused by the test)", name=name)

    sys.meta_path.insert(0, Refuse())
    from aerialseg.predict.command import main

    code = main(sys.argv[1:])
    print("imported:", sorted({"tensorflow", "keras", "mlflow", "dvc", "jax"} & set(sys.modules)))
    from importlib.metadata import packages_distributions

    owners = packages_distributions()
    print("distributions:", " ".join(sorted({owner for name in sys.modules for owner in owners.get(name, [])})))
    sys.exit(code)
    """
)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    """(model.keras, model.onnx): the project's U-Net (batch norm, 4 base filters, untrained) and
    its export by aerialseg-export. Seed 4 gives an untrained U-Net that tells classes apart, as a
    trained one does; seed 0's last block is dead, and a map of 1/6 ties is float noise's to break."""
    keras.utils.set_random_seed(4)
    folder = tmp_path_factory.mktemp("model")
    stock_model(build_unet(POTSDAM_PALETTE.num_classes, base_filters=4)).save(folder / "model.keras")
    _, onnx_path = export_model(folder / "model.keras", folder / "export", params=PARAMS)
    return folder / "model.keras", onnx_path


def read_bands(path: Path) -> np.ndarray:
    with rasterio.open(path) as dataset:
        return dataset.read().astype(np.int16)


@pytest.mark.parametrize("options", [["--mode", "plain"], ["--mode", "smooth", "--tta", "d4"]])
def test_the_onnx_model_maps_a_photo_as_the_keras_model_does(tmp_path, models, options):
    scene = write_geotiff(tmp_path / "scene.tif", photo(20, shape=(150, 100)))
    for model in models:
        out = tmp_path / model.suffix[1:]
        arguments = ["--params", PARAMS, "--out", out, "--probabilities", *options, scene]
        assert predict("--model", model, *arguments) == 0
    keras_map, onnx_map = (read_bands(tmp_path / runtime / "scene.tif") for runtime in RUNTIMES)
    assert (keras_map == onnx_map).mean() >= 0.999
    keras_bytes, onnx_bytes = (read_bands(tmp_path / runtime / "scene_probabilities.tif") for runtime in RUNTIMES)
    assert np.abs(keras_bytes - onnx_bytes).max() <= 1  # probabilities 0..255: rounding apart at most
    assert np.ptp(keras_bytes, axis=0).mean() > 10  # classes told apart, not ties float noise breaks


def without_train_extra(*arguments) -> subprocess.CompletedProcess:
    """aerialseg-predict ``arguments`` in a fresh Python that cannot import the train extra's packages."""
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TRAIN_EXTRA, *map(str, arguments)],
        cwd=REPO,
        env={**environment(), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )


def test_the_command_on_an_onnx_model_needs_only_the_onnx_install(tmp_path, models):
    scene = write_geotiff(tmp_path / "scene.tif", photo(21, shape=(80, 60)))
    done = without_train_extra("--model", models[1], "--out", tmp_path / "maps", scene)
    assert done.returncode == 0, done.stderr
    imported, distributions = done.stdout.splitlines()[-2:]
    assert imported == "imported: []"
    assert files_in(tmp_path / "maps") == ["scene.tif"]
    # every project requirement it imported is one that `pip install "aerialseg[onnx]"` installs
    light, every = project_requirements("onnx"), project_requirements(*optional_dependencies())
    assert {normal(name) for name in distributions.split()[1:]} & set(every) - {"aerialseg"} <= set(light)


def test_a_keras_model_without_the_train_extra_is_one_line(tmp_path, models):
    scene = write_geotiff(tmp_path / "scene.tif", photo(22, shape=(40, 40)))
    done = without_train_extra("--model", models[0], "--params", PARAMS, "--out", tmp_path / "maps", scene)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {models[0]}: a Keras model runs on Keras and TensorFlow, not installed here "
        "(No module named 'keras' (refused by the test)) (pip install \"aerialseg[train]\", or map its ONNX export, "
        "written by aerialseg-export)"
    )


def test_an_mlflow_uri_without_the_train_extra_is_one_line():
    done = without_train_extra("--describe", "--model", "models:/aerialseg/1")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: models:/aerialseg/1: an MLflow model URI needs MLflow, not installed here (No module named "
        "'mlflow' (refused by the test)) (pip install \"aerialseg[train]\", or give the model's file)"
    )


def test_the_onnx_install_resolves_without_tensorflow_keras_dvc_or_mlflow():
    """What `pip install "aerialseg[onnx]"` installs, resolved from the package index by uv."""
    resolved = subprocess.run(
        [sys.executable, "-m", "uv", "pip", "compile", "--quiet", "--no-header", "--extra", "onnx", "pyproject.toml"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert resolved.returncode == 0, resolved.stderr
    names = {normal(re.match(r"[\w.-]+", line)[0]) for line in resolved.stdout.splitlines() if line[:1].isalnum()}
    assert {"onnxruntime", "rasterio", "numpy"} <= names
    assert not names & {"tensorflow", "keras", "dvc", "mlflow", "jax", "tf2onnx"}


def normal(name: str) -> str:
    """A distribution name as pip compares them (PyYAML is pyyaml, typing_extensions typing-extensions)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def optional_dependencies() -> dict[str, list[str]]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def project_requirements(*extras: str) -> dict[str, str]:
    """{name: requirement} of pyproject.toml's dependencies and those of ``extras``."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = [*project["dependencies"], *(line for extra in extras for line in optional_dependencies()[extra])]
    return {normal(re.match(r"[\w.-]+", line)[0]): line for line in lines}


def test_onnx_predictor_takes_the_bands_and_classes_of_the_export(models):
    predictor = load_predictor(models[1], POTSDAM_PALETTE.num_classes, WINDOW)
    assert isinstance(predictor, OnnxPredictor) and not hasattr(predictor, "predict_symmetries")
    assert (predictor.channels, predictor.num_classes) == (3, POTSDAM_PALETTE.num_classes)
    rgbir = np.random.default_rng(0).integers(0, 256, (2, WINDOW, WINDOW, 4)).astype(np.float32)
    probabilities = predictor(rgbir)  # RGBIR windows: the model gets their RGB bands
    assert probabilities.shape == (2, WINDOW, WINDOW, POTSDAM_PALETTE.num_classes)
    np.testing.assert_allclose(probabilities.sum(-1), 1, atol=1e-5)


def onnx_graph(path: Path, input_shape: list, output_shape: list, operator: str = "Identity") -> Path:
    """A one-operator ONNX model (``operator`` of float32 ``input_shape`` to ``output_shape``;
    strings are dimensions of any size), named "toy"."""
    node = onnx.helper.make_node(operator, ["pixels"], ["scores"])
    graph = onnx.helper.make_graph(
        [node],
        "toy",
        [onnx.helper.make_tensor_value_info("pixels", onnx.TensorProto.FLOAT, input_shape)],
        [onnx.helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, output_shape)],
    )
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize(
    "model, message",
    [
        (
            "classifier.onnx",
            "classifier.onnx: model 'toy' is not a segmentation model: inputs 'pixels' tensor(float) (None, 8), "
            "outputs 'scores' tensor(float) (None, 8) (use a model that maps H x W x C images to H x W x K class "
            "probabilities, its input float32 (N, H, W, C))",
        ),
        (
            "channels_first.onnx",
            "channels_first.onnx: model 'toy' is not a segmentation model: inputs 'pixels' tensor(float) "
            "(None, 3, None, None), outputs 'scores' tensor(float) (None, 3, None, None) (use",
        ),
        (
            "three_classes.onnx",
            "three_classes.onnx: model 'toy' outputs 3 classes per pixel, but 6 classes are expected (output shape "
            "(None, None, None, 3); use the model trained on these classes",
        ),
        ("notes.onnx", "notes.onnx: not an ONNX model ("),
        (
            "missing.onnx",
            "missing.onnx: no such model file (train one with `dvc repro`, or pass a .keras or .onnx file",
        ),
    ],
)
def test_an_onnx_file_that_cannot_map_is_named_in_one_line(tmp_path, capsys, model, message):
    onnx_graph(tmp_path / "classifier.onnx", ["n", 8], ["n", 8])
    onnx_graph(tmp_path / "channels_first.onnx", ["n", 3, "h", "w"], ["n", 3, "h", "w"])
    onnx_graph(tmp_path / "three_classes.onnx", ["n", "h", "w", 3], ["n", "h", "w", 3])
    (tmp_path / "notes.onnx").write_text("not a model")
    scene = write_geotiff(tmp_path / "scene.tif", photo(22, shape=(40, 40)))
    assert predict("--model", tmp_path / model, "--params", PARAMS, "--out", tmp_path / "maps", scene) == 1
    assert error_line(capsys).startswith(f"error: {tmp_path}/{message}")
    assert files_in(tmp_path / "maps") == []


def test_an_onnx_model_without_onnxruntime_says_how_to_get_it(tmp_path, monkeypatch, models):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime fails, as if not installed
    expected = (
        r'model.onnx: an ONNX model runs on onnxruntime, not installed here \(.+\) \(pip install "aerialseg\[onnx\]"\)$'
    )
    with pytest.raises(MissingExtraError, match=expected):
        load_predictor(models[1], POTSDAM_PALETTE.num_classes, WINDOW)
