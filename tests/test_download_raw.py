"""sources.download_raw, the download stage's work, for each source: params in, data/raw out."""

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from conftest import repo_params

from aerialseg.layout import Layout
from aerialseg.potsdam import label_name, photo_name
from aerialseg.sources import ChecksumError, download_raw
from aerialseg.tiles import read_image


@pytest.fixture
def project(tmp_path):
    """Returns a function that runs download_raw into ``tmp_path`` with these params.data settings."""

    def download(**data):
        params = repo_params({"data": data})
        download_raw(Layout(tmp_path), params.data, params.palette)
        return tmp_path

    return download


def manifest(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "data/raw/manifest.csv", dtype={"tile": str})


def test_url_source_downloads_unpacks_and_checks(project, file_server, potsdam_archives):
    archives, tiles = potsdam_archives
    files = [
        {"url": file_server.add(a.name, a.read_bytes()), "sha256": hashlib.sha256(a.read_bytes()).hexdigest()}
        for a in archives
    ]
    root = project(source="url", url={"files": files})
    for tile, (photo, label) in tiles.items():
        assert (root / "data/raw/images" / photo_name(tile)).read_bytes() == photo.read_bytes()
        assert (root / "data/raw/labels" / label_name(tile)).read_bytes() == label.read_bytes()
    assert manifest(root).to_dict("records") == [
        {"tile": "2_10", "height": 64, "width": 64, "source": "url"},
        {"tile": "2_11", "height": 64, "width": 64, "source": "url"},
    ]
    assert sorted(p.name for p in (root / "data/downloads").iterdir()) == ["2_Ortho_RGB.zip", "5_Labels_all.zip"]
    assert sorted(p.name for p in (root / "data").iterdir()) == ["downloads", "raw"]  # no work folder left


def test_wrong_checksum_keeps_the_old_raw_data_and_the_download(project, file_server, potsdam_archives, tmp_path):
    archives, _ = potsdam_archives
    files = [{"url": file_server.add(a.name, a.read_bytes()), "sha256": "ab" * 32} for a in archives]
    old = tmp_path / "data/raw/manifest.csv"
    old.parent.mkdir(parents=True)
    old.write_text("tile,height,width,source\n")
    with pytest.raises(ChecksumError, match="ab" * 32):
        project(source="url", url={"files": files})
    assert [p.name for p in (tmp_path / "data/downloads").iterdir()] == ["2_Ortho_RGB.zip"]  # complete, so kept
    assert [p.name for p in (tmp_path / "data/raw").iterdir()] == ["manifest.csv"]
    assert old.read_text() == "tile,height,width,source\n"

    for file, archive in zip(files, archives):  # the params were wrong: fixed, the kept file is used
        file["sha256"] = hashlib.sha256(archive.read_bytes()).hexdigest()
    project(source="url", url={"files": files})
    assert [path for path, _ in file_server.requests] == ["/2_Ortho_RGB.zip", "/5_Labels_all.zip"]
    assert list(manifest(tmp_path)["tile"]) == ["2_10", "2_11"]


def test_local_source_reads_archives_and_folders(project, potsdam_archives, make_potsdam_tiles, tmp_path):
    archives, _ = potsdam_archives
    make_potsdam_tiles(tmp_path / "more", ["5_12"], size=80)
    root = project(source="local", local={"paths": [str(a) for a in archives] + [str(tmp_path / "more")]})
    assert list(manifest(root)["tile"]) == ["2_10", "2_11", "5_12"]
    assert read_image(root / "data/raw/images" / photo_name("5_12")).shape == (80, 80, 3)


def test_synthetic_source_writes_checked_tiles(project):
    root = project(source="synthetic", synthetic={"tiles": 3, "size": 64, "seed": 0})
    table = manifest(root)
    assert len(table) == 3 and set(table["source"]) == {"synthetic"}
    assert (table[["height", "width"]] == 64).all().all()
    for tile in table["tile"]:
        assert read_image(root / "data/raw/images" / photo_name(tile)).shape == (64, 64, 3)
        assert (root / "data/raw/labels" / label_name(tile)).is_file()
