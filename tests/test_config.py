import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import repo_params
from pipeline_helpers import REPO, deep_update

from aerialseg.pipeline import choices
from aerialseg.pipeline.params import ParamsError, load_params, parse_params
from aerialseg.train import losses, model

REPO_PARAMS = Path(__file__).parents[1] / "params.yaml"


@pytest.fixture
def raw():
    return yaml.safe_load(REPO_PARAMS.read_text())


def test_repository_params_are_valid():
    params = load_params(REPO_PARAMS)
    assert params.palette.names[1] == "building"
    assert params.palette.colours[1] == (0, 0, 255)


@pytest.mark.parametrize(
    "section, key, value, fragment",
    [
        ("train", "epochs", "many", "train.epochs"),
        ("train", "epocs", 3, "train.epocs"),
        ("patches", "patch_size", 100, "patches.patch_size"),
        ("data", "source", "ftp", "data.source"),
        ("predict", "tta", "all", "predict.tta"),
        ("train", "encoder", "resnet18", "train.encoder"),
        ("train", "jit_compile", "sometimes", "train.jit_compile"),
        ("resize", "pixel_size", 0, "resize.pixel_size"),
        ("data", "pixel_size", -0.1, "data.pixel_size"),
    ],
)
def test_bad_param_names_the_key(raw, section, key, value, fragment):
    raw[section][key] = value
    with pytest.raises(ParamsError, match=fragment.replace(".", r"\.")):
        parse_params(raw)


@pytest.mark.parametrize(
    "resize, named",
    [
        ({"scale": 0.5, "size": [64, 64], "pixel_size": None}, "set: resize.scale, resize.size"),
        ({"scale": 0.5, "size": None, "pixel_size": 0.1}, "set: resize.scale, resize.pixel_size"),
        ({"scale": None, "size": None, "pixel_size": None}, "set: none"),
    ],
)
def test_resize_takes_exactly_one_of_scale_size_and_pixel_size(raw, resize, named):
    raw["resize"] = resize
    with pytest.raises(ParamsError, match=rf"resize: set exactly one of resize.scale, .*\({named}\)"):
        parse_params(raw)
    raw["resize"] = {"pixel_size": 0.2}
    assert parse_params(raw).resize.pixel_size == 0.2


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"classes": {"tree": [0, 300, 0]}}, "classes"),
        ({"data": {"sorce": "url"}}, "data.sorce"),
        ({"resize": {"scael": 0.5}}, "resize.scael"),
        ({"patches": {"split": {"tset": []}}}, "patches.split.tset"),
        ({"train": {"epoch": 3}}, "train.epoch"),
        ({"mlflow": {"experimnet": "x"}}, "mlflow.experimnet"),
        ({"predict": {"tta": "d8"}}, "predict.tta"),
        ({"evaluate": {"erode": 1}}, "evaluate.erode"),
        ({"report": {"video_fps": 0}}, "report.video_fps"),
        ({"trian": {"epochs": 3}}, "trian"),
    ],
)
def test_a_typo_or_bad_value_in_any_section_is_named_by_its_key(raw, changes, key):
    """The message the validate stage prints when `dvc repro` meets it (test_pipeline)."""
    with pytest.raises(ParamsError) as refused:
        parse_params(deep_update(raw, changes))
    assert str(refused.value).startswith(f"params.yaml: {key}:")


def test_snapshot_interval_larger_than_epochs(raw):
    raw["train"].update(epochs=3, snapshot_every=5)
    with pytest.raises(ParamsError, match=r"snapshot_every \(5\) is larger than epochs \(3\)"):
        parse_params(raw)


def test_freezing_needs_an_encoder_and_epochs_after_it(raw):
    raw["train"].update(encoder="none", freeze_encoder_epochs=2)
    with pytest.raises(ParamsError, match="freeze_encoder_epochs needs a pretrained encoder"):
        parse_params(raw)
    raw["train"].update(encoder="mobilenetv2", freeze_encoder_epochs=raw["train"]["epochs"])
    with pytest.raises(ParamsError, match="must be below epochs"):
        parse_params(raw)


def test_bad_colour_and_missing_file(raw, tmp_path):
    raw["classes"]["car"] = [300, 0, 0]
    with pytest.raises(ParamsError, match="classes"):
        parse_params(raw)
    with pytest.raises(ParamsError, match="no such file"):
        load_params(tmp_path / "params.yaml")


def test_classes_need_at_least_one_class(raw):
    raw["classes"] = {}
    with pytest.raises(ParamsError, match="classes: .*at least one class is needed"):
        parse_params(raw)


def test_two_classes_with_the_same_colour_are_named(raw):
    raw["classes"]["tree"] = [0, 0, 255]  # building's colour
    raw["classes"]["car"] = [0, 0, 255]
    with pytest.raises(ParamsError, match=r"classes: .*building, tree and car have the same colour \(0, 0, 255\)"):
        parse_params(raw)


def test_encoder_needs_patches_divisible_by_its_stride(raw):
    raw["train"]["encoder"] = "resnet50"
    raw["patches"]["patch_size"] = 48
    with pytest.raises(ParamsError, match=r"patches.patch_size \(48\) must be a multiple of 32"):
        parse_params(raw)


@pytest.mark.parametrize(
    "section, key, value, module_choices",
    [
        ("train", "encoder", "resnet18", "aerialseg.pipeline.choices.ENCODERS"),
        ("train", "model", "segformer", "aerialseg.pipeline.choices.MODELS"),
        ("train", "loss", "lovasz", "aerialseg.pipeline.choices.LOSSES"),
        ("train", "distribution", "model_parallel", "aerialseg.pipeline.choices.DISTRIBUTIONS"),
        ("predict", "tta", "d8", "aerialseg.d4.TTA_SETS"),
        ("predict", "window_function", "gauss", "aerialseg.predict.blending.WINDOW_FUNCTIONS"),
        ("data", "bands", "rgbn", "aerialseg.data.potsdam.BANDS"),
        ("evaluate", "labels", "eroded", "aerialseg.data.potsdam.LABEL_KINDS"),
    ],
)
def test_choices_come_from_one_list(raw, section, key, value, module_choices):
    """Each list of valid names exists once: in the module that implements the choices, or in
    aerialseg.pipeline.choices where that module loads Keras."""
    module, name = module_choices.rsplit(".", 1)
    valid = tuple(getattr(importlib.import_module(module), name))
    raw[section][key] = value
    with pytest.raises(ParamsError, match=rf"{section}\.{key}:") as error:
        parse_params(raw)
    assert all(choice in str(error.value) for choice in valid)
    raw[section][key] = valid[-1]
    assert getattr(getattr(parse_params(raw), section), key) == valid[-1]


def test_scores_without_classes_must_name_classes(raw):
    raw["evaluate"]["without_classes"] = ["clutter", "water"]
    with pytest.raises(ParamsError, match=r"evaluate.without_classes: \['water'\] are not among the classes"):
        parse_params(raw)


def test_tile_ids_must_be_quoted_text(raw):
    raw["data"]["exclude"] = yaml.safe_load("[7_10]")  # YAML reads 7_10 as the number 710
    with pytest.raises(ParamsError, match=r'data\.exclude\.0: .*710 is a number: write tile ids in quotes \("7_10"\)'):
        parse_params(raw)
    raw["data"]["exclude"] = ["7/10"]  # a tile id becomes part of a file name
    with pytest.raises(ParamsError, match=r"data\.exclude\.0: String should match pattern"):
        parse_params(raw)
    raw["data"]["exclude"] = ["7_10", "image_001", "area1", "tile-3.b"]  # any photo's stem
    assert parse_params(raw).data.exclude == ["7_10", "image_001", "area1", "tile-3.b"]


def test_four_bands_need_the_classic_unet(raw):
    raw["data"]["bands"] = "rgbir"
    raw["train"]["encoder"] = "resnet50"
    raw["patches"]["patch_size"] = 128
    with pytest.raises(ParamsError, match=r"data.bands 'rgbir' has 4 bands, but a pretrained encoder .* takes 3"):
        parse_params(raw)
    raw["data"]["bands"] = "irrg"
    assert parse_params(raw).train.encoder == "resnet50"


def test_an_excluded_tile_cannot_be_in_the_split(raw):
    raw["data"]["exclude"] = ["7_10"]
    raw["patches"]["split"].update(train=["2_10", "7_10"], val=["2_11"], test=["2_12"])
    with pytest.raises(ParamsError, match=r"data.exclude leaves out tile\(s\) that the split lists: 7_10 \(in patches"):
        parse_params(raw)


@pytest.mark.parametrize("labels", ["full", "no_boundary"])
def test_black_is_no_class_colour(raw, labels):
    """Black marks ignored pixels in every stored label, full ones of pairs too."""
    raw["classes"]["clutter"] = [0, 0, 0]
    raw["evaluate"]["labels"] = labels
    with pytest.raises(ParamsError, match=r"classes: clutter: \[0, 0, 0\] \(black\) marks pixels without a label"):
        parse_params(raw)


def pairs(raw, **keys) -> dict:
    """``raw`` set to the pairs layout (local source, full labels) with these data.pairs keys."""
    raw["data"].update(layout="pairs", source="local")
    raw["data"]["pairs"].update(keys)
    raw["evaluate"]["labels"] = "full"
    return raw


def test_the_pairs_layout_validates(raw):
    data = parse_params(pairs(raw, label_values=[10, 20, 30, 40, 50, 60], ignore_value=0)).data
    assert (data.layout, data.pairs.photos, data.pairs.labels) == ("pairs", "images/*.tif", "masks/{stem}.png")
    assert data.pairs.class_values(6) == (10, 20, 30, 40, 50, 60)
    assert parse_params(pairs(raw, label_values=None, ignore_value=255)).data.pairs.class_values(3) == (0, 1, 2)


@pytest.mark.parametrize(
    "data, keys, fragment",
    [
        ({"layout": "loveda"}, {}, r"data\.layout: 'loveda' is not one of \('potsdam', 'pairs', 'vaihingen'\)"),
        ({"source": "url"}, {}, r"data\.layout 'pairs' reads .* set data\.source to local \(it is 'url'\)"),
        ({"participants_labels": ["4_12"]}, {}, r"data\.participants_labels is for the potsdam layout"),
        ({"ignore_unknown_colours": True}, {}, r"data\.ignore_unknown_colours is for the potsdam layout"),
        ({}, {"labels": "masks/mask.png"}, r"data\.pairs\.labels: .*with \{stem\} once"),
        ({}, {"labels": "masks/{stem}_{kind}.png"}, r"data\.pairs\.labels: .*no other field"),
        ({}, {"label_encoding": "rgb"}, r"data\.pairs\.label_encoding: 'rgb' is not one of \('colour', 'index'\)"),
        ({}, {"label_values": [0, 1, 2]}, r"data\.pairs\.label_values has 3 value\(s\) but there are 6 classes"),
        ({}, {"label_values": [0, 1, 2, 3, 4, 4]}, r"data\.pairs: .*label_values \[0, 1, 2, 3, 4, 4\] give two"),
        ({}, {"label_values": [0, 1, 2, 3, 4, 256]}, r"data\.pairs\.label_values\.5: .*less than or equal to 255"),
        ({}, {"label_values": [1, 2, 3, 4, 5, 6], "label_encoding": "colour"}, r"label_values are for label_enc"),
        ({}, {"ignore_value": 5}, r"data\.pairs\.ignore_value 5: index labels need a value that is no class's"),
        ({}, {"ignore_value": [0, 0, 0]}, r"data\.pairs\.ignore_value \[0, 0, 0\]: index labels need a value"),
        ({}, {"label_encoding": "colour", "ignore_value": 255}, r"ignore_value 255: colour labels need an \[R, G"),
        (
            {},
            {"label_encoding": "colour", "ignore_value": [0, 0, 255]},
            r"ignore_value \[0, 0, 255\]: colour labels need .* no class's \(building has it\)",
        ),
    ],
)
def test_bad_pairs_keys_are_named(raw, data, keys, fragment):
    raw = pairs(raw, **keys)
    raw["data"].update(data)
    with pytest.raises(ParamsError, match=fragment):
        parse_params(raw)


def test_pairs_keys_are_not_checked_for_the_potsdam_layout(raw):
    raw["data"]["pairs"]["label_values"] = [0, 1, 2]  # for another set of classes: unused here
    assert parse_params(raw).data.layout == "potsdam"


def test_a_colour_ignore_value_for_colour_labels(raw):
    params = parse_params(pairs(raw, label_encoding="colour", ignore_value=[0, 0, 0]))
    assert params.data.pairs.ignore_value == (0, 0, 0)


OFFICIAL_TRAINING_TILES = (
    "2_10 2_11 2_12 3_10 3_11 3_12 4_10 4_11 4_12 5_10 5_11 5_12 6_7 6_8 6_9 6_10 6_11 6_12 7_7 7_8 7_9 7_10 7_11 7_12"
)
OFFICIAL_TEST_TILES = "2_13 2_14 3_13 3_14 4_13 4_14 4_15 5_13 5_14 5_15 6_13 6_14 6_15 7_13"


def keys(mapping: dict, prefix: str = "") -> set[str]:
    return {
        key
        for name, value in mapping.items()
        for key in ({f"{prefix}{name}"} | (keys(value, f"{prefix}{name}.") if isinstance(value, dict) else set()))
        if not key.startswith("classes.")
    }


def test_the_official_protocol_params_validate_and_split_the_tiles_as_published():
    path = REPO_PARAMS.with_name("params-potsdam.yaml")
    params = load_params(path)
    split = params.patches.split
    assert sorted(split.test) == sorted(OFFICIAL_TEST_TILES.split())
    assert split.val == ["2_10"] and params.data.exclude == ["7_10"] and params.data.participants_labels == ["4_12"]
    assert sorted(split.train + split.val + params.data.exclude) == sorted(OFFICIAL_TRAINING_TILES.split())
    assert (params.evaluate.labels, params.evaluate.without_classes) == ("no_boundary", ("clutter",))
    assert (params.data.source, params.data.local.paths) == ("local", [Path("Potsdam.zip")])
    assert params.classes == load_params(REPO_PARAMS).classes
    # it replaces params.yaml (cp params-potsdam.yaml params.yaml): every key of params.yaml, no other
    assert keys(yaml.safe_load(path.read_text())) == keys(yaml.safe_load(REPO_PARAMS.read_text()))


def test_keras_backed_choices_are_exactly_what_their_modules_implement():
    assert model.ENCODERS == choices.ENCODERS
    assert tuple(model.MODELS) == choices.MODELS
    assert tuple(losses.LOSSES) == choices.LOSSES


@pytest.mark.parametrize("stage", ["validate", "download", "resize", "patches", "report"])
def test_stages_without_a_model_check_params_without_keras(stage):
    """The stages that never touch a model start without Keras and TensorFlow (seconds each)."""
    check = (
        f"import sys, stages.{stage}; from aerialseg.pipeline.params import load_params; "
        f"load_params({str(REPO_PARAMS)!r}); "
        "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True, cwd=REPO_PARAMS.parent
    )
    assert loaded.stdout.strip() == "[]"


@pytest.mark.parametrize("section", ["train", "evaluate"])
@pytest.mark.parametrize("modes, problem", [([], "at least 1 item"), (["plain", "blurred"], "'blurred' is not one of")])
def test_snapshot_modes_are_known_and_not_empty(raw, section, modes, problem):
    raw[section]["snapshot_modes"] = modes
    with pytest.raises(ParamsError, match=rf"{section}\.snapshot_modes.*{problem}"):
        parse_params(raw)


VAIHINGEN_TRAINING_AREAS = "1 3 5 7 11 13 15 17 21 23 26 28 30 32 34 37"  # published: mmsegmentation's, torchgeo's
VAIHINGEN_TEST_AREAS = "2 4 6 8 10 12 14 16 20 22 24 27 29 31 33 35 38"


def areas(numbers: str) -> list[str]:
    return sorted(f"area{number}" for number in numbers.split())


def test_the_vaihingen_protocol_params_validate_and_split_the_areas_as_published():
    path = REPO_PARAMS.with_name("params-vaihingen.yaml")
    params = load_params(path)
    split = params.patches.split
    assert sorted(split.test) == areas(VAIHINGEN_TEST_AREAS)
    assert sorted(split.train + split.val) == areas(VAIHINGEN_TRAINING_AREAS) and split.val == ["area30"]
    assert (params.data.layout, params.data.bands, params.data.exclude) == ("vaihingen", "irrg", [])
    assert (params.evaluate.labels, params.evaluate.without_classes) == ("no_boundary", ("clutter",))
    assert params.data.source == "local" and [path.name for path in params.data.local.paths] == [
        "ISPRS_semantic_labeling_Vaihingen.zip",
        "ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE.zip",
        "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE.zip",
    ]
    assert params.classes == load_params(REPO_PARAMS).classes
    assert keys(yaml.safe_load(path.read_text())) == keys(yaml.safe_load(REPO_PARAMS.read_text()))


def test_more_subdivisions_than_window_pixels_are_refused_by_their_keys(raw):
    raw["predict"]["subdivisions"] = 100
    with pytest.raises(ParamsError, match=r"predict.subdivisions 100 is more than patches.patch_size 64"):
        parse_params(raw)


def test_the_readmes_own_data_example_is_valid_params():
    readme = (REPO / "README.md").read_text()
    example = yaml.safe_load(readme.split("## Your own data")[1].split("```yaml")[1].split("```")[0])
    params = repo_params(example)
    assert params.data.layout == "pairs" and params.evaluate.labels == "full"
    assert (params.data.pairs.label_encoding, params.data.pairs.ignore_value) == ("index", 255)
