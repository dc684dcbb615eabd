"""sources.download_raw, the download stage's work, for each source: params in, data/raw out."""

import hashlib
import io
import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from conftest import repo_params

from aerialseg.data.archives import ArchiveError
from aerialseg.data.fetch import ChecksumError
from aerialseg.data.potsdam import PIXEL_SIZE_M, label_name, photo_name
from aerialseg.data.potsdam_tiles import DefectiveLabelError
from aerialseg.data.sources import download_raw
from aerialseg.data.synthetic import tile_transform
from aerialseg.pipeline.paths import Layout, TileFolder
from aerialseg.raster.georef import Georeference, WorldFileError, read_georef
from aerialseg.raster.pictures import read_image, read_label


@pytest.fixture
def project(tmp_path):
    """Returns a function that runs download_raw into ``tmp_path`` with these params.data settings,
    scored on the full labels unless ``scored`` says otherwise."""

    def download(scored: str = "full", **data):
        params = repo_params({"data": data})
        download_raw(Layout(tmp_path), params.data, params.palette, scored)
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
        {"tile": "2_10", "height": 64, "width": 64, "source": "url", "pixel_size_m": PIXEL_SIZE_M},
        {"tile": "2_11", "height": 64, "width": 64, "source": "url", "pixel_size_m": PIXEL_SIZE_M},
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


# --- Potsdam.zip as downloaded ---------------------------------------------------------------------


def raw_files(root: Path) -> dict[str, bytes]:
    raw = root / "data/raw"
    return {p.relative_to(raw).as_posix(): p.read_bytes() for p in sorted(raw.rglob("*")) if p.is_file()}


def with_nested_member(archive: Path, target: Path, nested: str, member: str, data: bytes) -> Path:
    """A copy of ``archive`` whose nested zip ``nested`` has ``member`` replaced by ``data``."""
    with zipfile.ZipFile(archive) as source:
        inner = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(source.read(nested))) as old, zipfile.ZipFile(inner, "w") as new:
            for info in old.infolist():
                new.writestr(info, data if info.filename == member else old.read(info))
        with zipfile.ZipFile(target, "w") as copy:
            for info in source.infolist():
                copy.writestr(info, inner.getvalue() if info.filename == nested else source.read(info))
    return target


@pytest.fixture
def earlier_raw(project):
    """data/raw of an earlier successful run, which a failed one must leave as it was."""
    root = project(source="synthetic", synthetic={"tiles": 3, "size": 64, "seed": 0})
    return root, raw_files(root)


def test_the_defective_label_of_4_12_stops_the_download_with_both_ways_out(project, potsdam_zip, earlier_raw):
    root, before = earlier_raw
    with pytest.raises(DefectiveLabelError) as error:
        project(source="local", local={"paths": [str(potsdam_zip)]})
    message = str(error.value)
    assert message.startswith(f"{potsdam_zip}!Potsdam/5_Labels_all.zip!top_potsdam_4_12_label.tif: ")
    share = float(re.search(r": ([\d.]+)% of its pixels are not class colours", message)[1])
    assert 50 < share <= 100
    assert 'data.exclude: ["4_12"]' in message and 'data.participants_labels: ["4_12"]' in message
    assert raw_files(root) == before  # nothing earlier is lost


def test_rgbir_photos_world_files_and_both_labels_from_potsdam_zip(project, potsdam_zip, palette):
    root = project(source="local", local={"paths": [str(potsdam_zip)]}, bands="rgbir", participants_labels=["4_12"])
    raw = TileFolder(root / "data/raw")
    assert list(manifest(root)["tile"]) == ["2_10", "2_11", "4_12"]
    for tile in ("2_10", "2_11", "4_12"):
        assert read_image(raw.photo(tile)).shape == (64, 64, 4)
        assert raw.photo(tile).name == f"top_potsdam_{tile}_RGBIR.tif"
        assert read_georef(raw.photo(tile)) == Georeference(None, tile_transform(tile, 64), world_file=True)
        palette.rgb_to_index(read_image(raw.label(tile)))  # palette colours only, no black
        read_label(raw.label(tile, "no_boundary"), palette)
    with zipfile.ZipFile(potsdam_zip) as outer:
        participants = zipfile.ZipFile(io.BytesIO(outer.read("Potsdam/5_Labels_for_participants.zip")))
        assert raw.label("4_12").read_bytes() == participants.read(label_name("4_12"))


def test_a_world_file_that_is_not_six_numbers_is_named_in_its_archive(project, potsdam_zip, earlier_raw, tmp_path):
    root, before = earlier_raw
    member = f"2_Ortho_RGB/{photo_name('2_11')[:-4]}.tfw"
    broken = with_nested_member(potsdam_zip, tmp_path / "Potsdam.zip", "Potsdam/2_Ortho_RGB.zip", member, b"0.05\n")
    with pytest.raises(WorldFileError, match=re.escape(f"{broken}!Potsdam/2_Ortho_RGB.zip!{member}: a world file")):
        project(source="local", local={"paths": [str(broken)]}, exclude=["4_12"])
    assert raw_files(root) == before


def test_a_corrupt_inner_archive_keeps_the_earlier_data(project, potsdam_zip, earlier_raw, tmp_path):
    root, before = earlier_raw
    broken = tmp_path / "Potsdam.zip"
    with zipfile.ZipFile(potsdam_zip) as source, zipfile.ZipFile(broken, "w") as copy:
        for info in source.infolist():
            data = source.read(info)
            copy.writestr(info, data[: len(data) // 2] if info.filename.endswith("5_Labels_all.zip") else data)
    with pytest.raises(ArchiveError, match=re.escape(f"{broken}!Potsdam/5_Labels_all.zip")):
        project(source="local", local={"paths": [str(broken)]})
    assert raw_files(root) == before
    assert sorted(p.name for p in (root / "data").iterdir()) == ["raw"]  # no work folder left
