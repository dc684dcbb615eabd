"""data.layout vaihingen: ISPRS Vaihingen's three archives as downloaded (a generated stand-in of
the real layout), read through download_raw. A photo and its label have the same file name, so
each test that stores tiles also checks that every file came from its own archive."""

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import POTSDAM_PALETTE, repo_params, without_members
from pipeline_helpers import REPO, TINY, deep_update, make_project, run_stages
from rasterio.io import MemoryFile

from aerialseg.data.sources import download_raw
from aerialseg.data.synthetic_vaihingen import ERODED_ZIP, LABELS_ZIP, PHOTOS_ZIP, write_vaihingen_zips
from aerialseg.data.tileset import DatasetError
from aerialseg.data.vaihingen import AREAS, MemberName, area_ids, parse_name
from aerialseg.pipeline.params import ParamsError
from aerialseg.pipeline.paths import Layout
from aerialseg.raster.georef import allow_plain
from aerialseg.raster.pictures import read_image, write_image

TILES = ["area1", "area2", "area10"]  # area2 before area10: natural order
VAIHINGEN = {"layout": "vaihingen", "bands": "irrg"}


@pytest.fixture(scope="session")
def zips(tmp_path_factory) -> dict[str, Path]:
    """The three zips of TILES, by archive name. Read only: copy one to change it."""
    paths = write_vaihingen_zips(tmp_path_factory.mktemp("vaihingen"), TILES, 64, POTSDAM_PALETTE)
    return {path.name: path for path in paths}


@pytest.fixture
def download(tmp_path):
    """Runs download_raw into ``tmp_path`` with the vaihingen layout and these data settings."""

    def run(scored: str = "no_boundary", **data):
        params = repo_params({"data": {**VAIHINGEN, **data}})
        download_raw(Layout(tmp_path), params.data, params.palette, scored)
        return tmp_path / "data/raw"

    return run


def local(*paths: Path) -> dict:
    return {"source": "local", "local": {"paths": [str(path) for path in paths]}}


def member(archive: Path, name: str) -> bytes:
    with zipfile.ZipFile(archive) as zipped:
        return zipped.read(name)


def decoded(data: bytes) -> np.ndarray:
    """A TIFF's pixels, H x W x bands."""
    with allow_plain(), MemoryFile(data) as memory, memory.open() as dataset:
        return np.moveaxis(dataset.read(), 0, -1)


def replaced(archive: Path, target: Path, name: str, data: bytes) -> Path:
    """A copy of ``archive`` with member ``name`` holding ``data``."""
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(target, "w") as copy:
        for info in source.infolist():
            copy.writestr(info, data if info.filename == name else source.read(info))
    return target


def manifest(raw: Path) -> pd.DataFrame:
    return pd.read_csv(raw / "manifest.csv", dtype={"tile": str})


def assert_from_their_archives(raw: Path, zips: dict[str, Path], tiles=TILES) -> None:
    """Each stored file is the member of its own archive: the photo top/'s, the label the ground
    truth's, though all three have one name (and gts_for_participants/ holds a label under it too)."""
    for tile in tiles:
        name = f"top_mosaic_09cm_{tile}"
        photo = (raw / f"images/top_potsdam_{tile}_IRRG.tif").read_bytes()
        assert photo == member(zips[PHOTOS_ZIP], f"top/{name}.tif") != member(zips[LABELS_ZIP], f"{name}.tif")
        assert (raw / f"labels/top_potsdam_{tile}_label.tif").read_bytes() == member(zips[LABELS_ZIP], f"{name}.tif")
        eroded = (raw / f"labels_no_boundary/top_potsdam_{tile}_label_noBoundary.tif").read_bytes()
        assert eroded == member(zips[ERODED_ZIP], f"{name}_noBoundary.tif")


# --- names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, name",
    [
        ("top/top_mosaic_09cm_area1.tif", MemberName("area1", False)),
        ("top_mosaic_09cm_area38.tif", MemberName("area38", False)),
        ("top_mosaic_09cm_area10_noBoundary.tif", MemberName("area10", True)),
        ("TOP_MOSAIC_09CM_AREA3_NOBOUNDARY.TIF", MemberName("AREA3", True)),
        ("dsm/dsm_09cm_matching_area1.tif", None),
        ("top_potsdam_2_10_RGB.tif", None),
        ("top_mosaic_09cm_area1.tfw", None),
    ],
)
def test_member_names_give_the_tile_and_whether_boundary_free(path, name):
    assert parse_name(path) == name


def test_the_33_areas_and_synthetic_ids():
    assert len(AREAS) == 33 and not {9, 18, 19, 25, 36} & set(AREAS)
    assert area_ids(9)[-2:] == ["area8", "area10"]
    with pytest.raises(DatasetError, match="data.synthetic.tiles is 34, but Vaihingen has 33 areas"):
        area_ids(34)


def test_the_stand_in_is_laid_out_as_the_download(zips):
    with zipfile.ZipFile(zips[PHOTOS_ZIP]) as photos:
        names = set(photos.namelist())
    assert {"top/top_mosaic_09cm_area1.tif", "gts_for_participants/top_mosaic_09cm_area1.tif"} <= names
    assert "dsm/dsm_09cm_matching_area1.tif" in names
    assert "top_mosaic_09cm_area9_noBoundary.tif" in zipfile.ZipFile(zips[ERODED_ZIP]).namelist()
    sizes = {decoded(member(zips[PHOTOS_ZIP], f"top/top_mosaic_09cm_{tile}.tif")).shape for tile in TILES}
    assert len(sizes) == 3 and all(height != width and bands == 3 for height, width, bands in sizes)


# --- reading the archives --------------------------------------------------------------------------


def test_archives_are_paired_by_archive_not_by_name(download, zips):
    raw = download(**local(*zips.values()))
    assert list(manifest(raw)["tile"]) == TILES
    assert list(manifest(raw)["pixel_size_m"]) == [0.09] * len(TILES)  # Vaihingen's 9 cm, not Potsdam's 5
    assert_from_their_archives(raw, zips)
    assert {path.name for path in (raw / "images").iterdir()} == {f"top_potsdam_{tile}_IRRG.tif" for tile in TILES}


def test_folders_extracted_under_the_archives_names_read_the_same(download, zips, tmp_path):
    folders = []
    for archive in zips.values():
        folder = tmp_path / "extracted" / archive.stem
        zipfile.ZipFile(archive).extractall(folder)
        folders.append(folder)
    raw = download(**local(*reversed(folders)))  # in any order: the name says which archive a folder is
    assert list(manifest(raw)["tile"]) == TILES
    assert_from_their_archives(raw, zips)


def test_the_url_source_checks_and_reads_the_downloads(download, zips, file_server, tmp_path):
    files = [
        {"url": file_server.add(zip.name, zip.read_bytes()), "sha256": hashlib.sha256(zip.read_bytes()).hexdigest()}
        for zip in zips.values()
    ]
    raw = download(source="url", url={"files": files})
    assert_from_their_archives(raw, zips)
    assert sorted(p.name for p in (tmp_path / "data/downloads").iterdir()) == sorted(zips)


def test_the_synthetic_source_reads_generated_archives(download, capsys):
    raw = download(source="synthetic", synthetic={"tiles": 3, "size": 64, "seed": 0})
    table = manifest(raw)
    assert list(table["tile"]) == ["area1", "area2", "area3"] and set(table["source"]) == {"synthetic"}
    assert (table["height"] != table["width"]).all()
    assert read_image(raw / "images/top_potsdam_area2_IRRG.tif").shape[2] == 3
    assert "ISPRS_semantic_labeling_Vaihingen.zip" in capsys.readouterr().out  # read as the real archives are


def test_excluded_areas_are_left_out(download, zips):
    raw = download(exclude=["area2"], **local(*zips.values()))
    assert list(manifest(raw)["tile"]) == ["area1", "area10"]


def test_the_eroded_labels_may_be_absent_when_scored_on_the_full_ones(download, zips):
    raw = download("full", **local(zips[PHOTOS_ZIP], zips[LABELS_ZIP]))
    assert list(manifest(raw)["tile"]) == TILES and not (raw / "labels_no_boundary").exists()


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "archive, holds",
    [(PHOTOS_ZIP, "the IRRG photos, top/top_mosaic_09cm_area<N>.tif"), (LABELS_ZIP, "the labels")],
)
def test_a_missing_archive_is_named_with_what_it_holds(download, zips, archive, holds):
    others = [path for name, path in zips.items() if name != archive]
    with pytest.raises(DatasetError, match=rf"data\.local\.paths: {archive} is missing \(it holds {holds}"):
        download(**local(*others))


def test_the_eroded_archive_is_needed_to_score_on_its_labels(download, zips):
    with pytest.raises(DatasetError, match=rf"evaluate\.labels is no_boundary, .*{ERODED_ZIP} holds Vaihingen's"):
        download("no_boundary", **local(zips[PHOTOS_ZIP], zips[LABELS_ZIP]))


def test_a_path_that_is_no_vaihingen_archive_is_named(download, zips, tmp_path):
    other = tmp_path / "labels.zip"
    other.write_bytes(zips[LABELS_ZIP].read_bytes())
    with pytest.raises(DatasetError, match=r"labels\.zip: not one of Vaihingen's archives"):
        download(**local(zips[PHOTOS_ZIP], other))


def test_a_photo_without_its_label_is_named(download, zips, tmp_path):
    labels = without_members(zips[LABELS_ZIP], tmp_path / LABELS_ZIP, "top_mosaic_09cm_area2.tif")
    message = (
        rf"photo\(s\) without their label: .*{PHOTOS_ZIP}!top/top_mosaic_09cm_area2\.tif "
        rf"\(no top_mosaic_09cm_area2\.tif in {LABELS_ZIP}\)\. Add the missing files, or leave the tiles out with "
        r'data\.exclude: \["area2"\]$'
    )
    with pytest.raises(DatasetError, match=message):
        download(**local(zips[PHOTOS_ZIP], labels, zips[ERODED_ZIP]))


def test_a_label_without_its_photo_is_named(download, zips, tmp_path):
    photos = without_members(zips[PHOTOS_ZIP], tmp_path / PHOTOS_ZIP, "top/top_mosaic_09cm_area10.tif")
    with pytest.raises(DatasetError) as error:
        download(**local(photos, zips[LABELS_ZIP], zips[ERODED_ZIP]))
    assert str(error.value) == (  # one line; the gts_for_participants/ label, which keeps its name, is no photo
        f"Vaihingen's tiles do not pair up: label(s) without their photo: "
        f"{zips[LABELS_ZIP]}!top_mosaic_09cm_area10.tif (no top/top_mosaic_09cm_area10.tif in {PHOTOS_ZIP}), "
        f"{zips[ERODED_ZIP]}!top_mosaic_09cm_area10_noBoundary.tif (no top/top_mosaic_09cm_area10.tif in "
        f'{PHOTOS_ZIP}). Add the missing files, or leave the tiles out with data.exclude: ["area10"]'
    )


def test_a_label_of_another_size_than_its_photo_is_named(download, zips, tmp_path):
    label = decoded(member(zips[LABELS_ZIP], "top_mosaic_09cm_area1.tif"))
    write_image(tmp_path / "small.tif", label[:-2])
    small = (tmp_path / "small.tif").read_bytes()
    labels = replaced(zips[LABELS_ZIP], tmp_path / LABELS_ZIP, "top_mosaic_09cm_area1.tif", small)
    height, width = label.shape[:2]
    sizes = rf"is {width}x{height} px but label .*{LABELS_ZIP}!top_mosaic_09cm_area1\.tif is {width}x{height - 2} px"
    with pytest.raises(DatasetError, match=rf"tile area1: photo .*!top/top_mosaic_09cm_area1\.tif {sizes}"):
        download(**local(zips[PHOTOS_ZIP], labels, zips[ERODED_ZIP]))


def test_an_archive_listed_twice_is_named(download, zips, tmp_path):
    folder = tmp_path / PHOTOS_ZIP.removesuffix(".zip")
    zipfile.ZipFile(zips[PHOTOS_ZIP]).extractall(folder)
    with pytest.raises(DatasetError, match=rf"and {folder} are both {PHOTOS_ZIP}: list it once"):
        download(**local(*zips.values(), folder))


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"bands": "rgb"}, r"data\.bands is 'rgb', but Vaihingen's photos are IRRG .* set data\.bands to irrg"),
        ({"participants_labels": ["area1"]}, r"data\.participants_labels is for the potsdam layout"),
    ],
)
def test_params_refuse_what_vaihingen_does_not_have(data, fragment):
    with pytest.raises(ParamsError, match=fragment):
        repo_params({"data": {**VAIHINGEN, **data}})


# --- the whole pipeline ----------------------------------------------------------------------------

STAGES = ("validate", "download", "resize", "patches", "train", "predict", "evaluate", "report")
PIPELINE_AREAS = ["area1", "area2", "area3", "area4"]
SCALED_DOWN = deep_update(
    json.loads(json.dumps(TINY)),
    {
        "patches": {"split": {"train": ["area1", "area2"], "val": ["area3"], "test": ["area4"]}},
        "train": {"encoder": "none", "encoder_weights": "none", "freeze_encoder_epochs": 0},
    },
)


@pytest.mark.slow
def test_the_preset_scaled_down_runs_from_the_archives_to_the_report(tmp_path):
    """Download to report on the three archives (generated, under the names params-vaihingen.yaml lists
    at the repository root) with the preset's settings scaled down: tiny tiles, four areas, two epochs,
    no pretrained encoder."""
    preset = yaml.safe_load((REPO / "params-vaihingen.yaml").read_text())
    project = make_project(tmp_path / "vaihingen", deep_update(preset, SCALED_DOWN), git=False)
    write_vaihingen_zips(project, PIPELINE_AREAS, 256, POTSDAM_PALETTE)  # named as the preset lists them
    run_stages(STAGES, project)

    layout = Layout(project)
    table = manifest(layout.raw.path)
    assert list(table["tile"]) == PIPELINE_AREAS and (table["height"] != table["width"]).all()
    assert read_image(layout.raw.photo("area4")).shape[2] == 3 and layout.raw.photo("area4").name.endswith("IRRG.tif")
    assert layout.raw.label("area4", "no_boundary").is_file()
    evaluation = json.loads((project / "metrics/evaluate.json").read_text())
    for key in ("oa", "miou", "mf1", "oa_no_clutter", "miou_no_clutter", "mf1_no_clutter"):
        assert 0 <= evaluation["plain"][key] <= 1, key
    assert layout.report.is_file() and layout.predictions.map("plain", "area4", ".tif").is_file()
