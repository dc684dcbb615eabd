"""Downloading, unpacking and checking raw tiles, against a real HTTP server and real files."""

import hashlib
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ARCHIVE_TILES, without_members

from aerialseg.data.archives import ArchiveError
from aerialseg.data.fetch import ChecksumError, DownloadError, download
from aerialseg.data.palette import UnknownColourError
from aerialseg.data.potsdam import PIXEL_SIZE_M, label_name, photo_name
from aerialseg.data.potsdam_tiles import TileFiles, Wanted, collect_local, collect_url, find_tiles, potsdam
from aerialseg.data.sources import prepare_raw
from aerialseg.data.tileset import DatasetError
from aerialseg.pipeline.paths import TileFolder
from aerialseg.raster.opening import RasterError
from aerialseg.raster.pictures import read_image, write_image


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def paths(files: TileFiles) -> tuple[Path, Path]:
    """(photo, label) of a tile, where they are now."""
    return files.photo.path, files.labels["full"].path


@pytest.fixture
def payload():
    return np.random.default_rng(1).bytes(300_000)


# --- download -------------------------------------------------------------------------------------


def test_download_fetches_and_verifies(file_server, payload, tmp_path):
    url = file_server.add("2_Ortho_RGB.zip", payload)
    path = download(url, tmp_path / "cache", sha(payload), chunk=4096)
    assert path == tmp_path / "cache" / "2_Ortho_RGB.zip"
    assert path.read_bytes() == payload
    assert list(path.parent.iterdir()) == [path]  # no .part left behind


def test_download_resumes_an_interrupted_transfer(file_server, payload, tmp_path):
    url = file_server.add("big.zip", payload)
    file_server.cut_next = 1
    with pytest.raises(DownloadError, match=r"big\.zip.*run again to resume") as error:
        download(url, tmp_path, sha(payload), chunk=4096)
    part = tmp_path / "big.zip.part"
    kept = part.stat().st_size
    assert 0 < kept < len(payload)
    assert str(part) in str(error.value)
    path = download(url, tmp_path, sha(payload), chunk=4096)
    assert path.read_bytes() == payload
    assert file_server.requests[-1] == ("/big.zip", f"bytes={kept}-")
    assert not part.exists()


def test_download_starts_over_when_the_server_ignores_range(file_server, payload, tmp_path):
    url = file_server.add("big.zip", payload)
    stale = b"stale bytes from another file"
    (tmp_path / "big.zip.part").write_bytes(stale)
    file_server.honour_range = False
    path = download(url, tmp_path, sha(payload))
    assert file_server.requests == [("/big.zip", f"bytes={len(stale)}-")]
    assert path.read_bytes() == payload


def test_download_keeps_a_complete_file_with_the_wrong_checksum(file_server, payload, tmp_path):
    url = file_server.add("big.zip", payload)
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as error:
        download(url, tmp_path, wrong)
    message = str(error.value)
    target = tmp_path / "big.zip"
    assert str(target) in message and url in message
    assert f"expected {wrong}" in message and sha(payload) in message
    assert "fix the sha256" in message and f"delete {target} and run again" in message
    assert list(tmp_path.iterdir()) == [target] and target.read_bytes() == payload  # complete: no .part
    assert download(url, tmp_path, sha(payload)) == target  # the sha256 fixed: the file is used as it is
    assert len(file_server.requests) == 1


def test_a_typo_in_the_sha256_never_deletes_a_verified_download(file_server, payload, tmp_path):
    url = file_server.add("big.zip", payload)
    right = sha(payload)
    path = download(url, tmp_path, right)
    typo = right[:-1] + ("1" if right[-1] == "0" else "0")
    with pytest.raises(ChecksumError) as error:
        download(url, tmp_path, typo)
    message = str(error.value)
    assert str(path) in message and f"expected {typo}" in message and f"has {right}" in message
    assert path.read_bytes() == payload
    assert file_server.requests == [("/big.zip", None)]  # no second transfer
    assert download(url, tmp_path, right) == path
    assert file_server.requests == [("/big.zip", None)]


def test_download_skips_a_verified_file(file_server, payload, tmp_path):
    url = file_server.add("big.zip", payload)
    download(url, tmp_path, sha(payload))
    download(url, tmp_path, sha(payload))
    assert len(file_server.requests) == 1


def test_download_names_the_url_on_http_errors(file_server, tmp_path):
    url = file_server.add("present.zip", b"x")
    missing = url.replace("present", "absent")
    with pytest.raises(DownloadError, match=re.escape(missing) + ".*404"):
        download(missing, tmp_path, sha(b"x"))


# --- archives and pairing -------------------------------------------------------------------------


def test_collect_local_pairs_tiles_from_archives(potsdam_archives, tmp_path):
    archives, tiles = potsdam_archives
    pairs = collect_local(archives, tmp_path / "work")
    assert list(pairs) == ["2_10", "2_11"]
    for tile, files in pairs.items():
        photo, label = paths(files)
        assert photo.name == photo_name(tile) and photo.read_bytes() == tiles[tile][0].read_bytes()
        assert label.name == label_name(tile) and label.read_bytes() == tiles[tile][1].read_bytes()


def test_collect_local_unpacks_nested_archives(potsdam_archives, tmp_path):
    archives, tiles = potsdam_archives
    outer = tmp_path / "Potsdam.zip"
    with zipfile.ZipFile(outer, "w") as zipped:
        for archive in archives:
            zipped.write(archive, f"Potsdam/{archive.name}")
    pairs = collect_local([outer], tmp_path / "work")
    assert list(pairs) == ["2_10", "2_11"]
    assert pairs["2_10"].photo.path.read_bytes() == tiles["2_10"][0].read_bytes()
    assert pairs["2_10"].photo.name == f"{outer}!Potsdam/2_Ortho_RGB.zip!2_Ortho_RGB/{photo_name('2_10')}"
    assert not list((tmp_path / "work").rglob("*.zip"))


def test_collect_local_reads_extracted_folders(make_potsdam_tiles, tmp_path):
    tiles = make_potsdam_tiles(tmp_path / "Potsdam", ["2_10", "3_9", "2_9"])
    pairs = collect_local([tmp_path / "Potsdam"], tmp_path / "work")
    assert {tile: paths(files) for tile, files in pairs.items()} == {
        tile: tiles[tile] for tile in ["2_9", "2_10", "3_9"]
    }
    assert not (tmp_path / "work").exists()  # folders are read where they are


def test_symlinked_folders_and_files_are_followed(make_potsdam_tiles, tmp_path):
    root = tmp_path / "Potsdam"
    tiles = make_potsdam_tiles(root, ["2_10", "2_11", "2_12"])
    tiles.update(make_potsdam_tiles(tmp_path / "elsewhere", ["3_10"]))
    (root / "more").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    linked = make_potsdam_tiles(tmp_path / "files", ["4_10"])["4_10"]
    for target in linked:
        (root / target.parent.name / target.name).symlink_to(target)
    (root / "2_Ortho_RGB" / "loop").symlink_to(root, target_is_directory=True)  # must not be walked forever
    pairs = find_tiles([root])
    assert list(pairs) == ["2_10", "2_11", "2_12", "3_10", "4_10"]
    assert paths(pairs["3_10"]) == (
        root / "more/2_Ortho_RGB" / photo_name("3_10"),
        root / "more/5_Labels_all" / label_name("3_10"),
    )
    assert pairs["4_10"].photo.path.read_bytes() == linked[0].read_bytes()


def test_collect_local_says_how_many_tiles_each_path_gave(potsdam_archives, make_potsdam_tiles, tmp_path, capsys):
    archives, _ = potsdam_archives
    make_potsdam_tiles(tmp_path / "elsewhere", ["3_10", "3_11", "3_12"])
    (tmp_path / "Potsdam").mkdir()
    (tmp_path / "Potsdam" / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    collect_local([tmp_path / "Potsdam", *archives], tmp_path / "work")
    ending = "boundary-free label(s) of Potsdam tiles in"
    assert capsys.readouterr().out.splitlines() == [
        f"3 photo(s) with 0 world file(s), 3 label(s) and 0 {ending} {tmp_path / 'Potsdam'}",
        f"2 photo(s) with 0 world file(s), 0 label(s) and 0 {ending} {archives[0]}",
        f"0 photo(s) with 0 world file(s), 2 label(s) and 0 {ending} {archives[1]}",
    ]


def test_collect_local_names_a_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nowhere.zip"))):
        collect_local([tmp_path / "nowhere.zip"], tmp_path / "work")


def test_collect_url_needs_files(tmp_path):
    with pytest.raises(DatasetError, match="data.url.files is empty"):
        collect_url([], tmp_path / "cache", tmp_path / "work")


@pytest.mark.parametrize("content", [b"not a zip at all", "truncated"])
def test_a_corrupt_archive_is_named(potsdam_archives, tmp_path, content):
    archives, _ = potsdam_archives
    broken = tmp_path / "broken.zip"
    data = archives[0].read_bytes()
    broken.write_bytes(data[: len(data) // 2] if content == "truncated" else content)
    with pytest.raises(ArchiveError, match=re.escape(str(broken))):
        collect_local([broken], tmp_path / "work")


def test_a_corrupt_archive_inside_an_archive_is_named_by_the_outer_file(potsdam_archives, tmp_path):
    archives, _ = potsdam_archives
    outer = tmp_path / "Potsdam.zip"
    with zipfile.ZipFile(outer, "w") as zipped:
        zipped.write(archives[0], f"Potsdam/{archives[0].name}")
        zipped.writestr("Potsdam/5_Labels_all.zip", archives[1].read_bytes()[:1000])  # truncated
    with pytest.raises(ArchiveError) as error:
        collect_local([outer], tmp_path / "work")
    message = str(error.value)
    assert message.startswith(f"{outer}!Potsdam/5_Labels_all.zip: ")
    assert str(tmp_path / "work") not in message  # the unpacked copy is deleted, so never named


def test_unpaired_tiles_are_listed(make_potsdam_tiles, tmp_path):
    tiles = make_potsdam_tiles(tmp_path, ["2_10", "2_11"])
    tiles["2_10"][1].unlink()  # photo without label
    tiles["2_11"][0].unlink()  # label without photo
    with pytest.raises(DatasetError) as error:
        find_tiles([tmp_path])
    message = str(error.value)
    assert f"photo without a label: tile 2_10 ({tiles['2_10'][0]})" in message
    assert f"label without a photo: tile 2_11 ({tiles['2_11'][1]})" in message


def test_a_tile_found_twice_is_an_error(make_potsdam_tiles, tmp_path):
    make_potsdam_tiles(tmp_path / "a", ["2_10"])
    make_potsdam_tiles(tmp_path / "b", ["2_10"])
    with pytest.raises(DatasetError, match="tile 2_10 found more than once"):
        find_tiles([tmp_path / "a", tmp_path / "b"])


def test_no_tiles_at_all_is_an_error(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(DatasetError, match="no Potsdam tiles"):
        find_tiles([tmp_path])


# --- prepare_raw ----------------------------------------------------------------------------------


def test_prepare_raw_stores_tiles_and_manifest(make_potsdam_tiles, palette, tmp_path):
    tiles = make_potsdam_tiles(tmp_path / "in", ["2_10", "2_11"], size=64)
    tiles_found = potsdam(find_tiles([tmp_path / "in"]), palette)
    manifest = prepare_raw(tiles_found, TileFolder(tmp_path / "raw"), source="local")
    for tile, (photo, label) in tiles.items():
        assert (tmp_path / "raw" / "images" / photo_name(tile)).read_bytes() == photo.read_bytes()
        assert (tmp_path / "raw" / "labels" / label_name(tile)).read_bytes() == label.read_bytes()
    on_disk = pd.read_csv(tmp_path / "raw" / "manifest.csv", dtype={"tile": str})
    expected = pd.DataFrame(
        {"tile": ["2_10", "2_11"], "height": 64, "width": 64, "source": "local", "pixel_size_m": PIXEL_SIZE_M}
    )
    pd.testing.assert_frame_equal(on_disk, expected)
    pd.testing.assert_frame_equal(manifest, expected)


def test_prepare_raw_converts_png_and_rgba_to_rgb_tiff(palette, tmp_path):
    rng = np.random.default_rng(2)
    photo = rng.integers(0, 256, (32, 48, 4), dtype=np.uint8)
    label = np.asarray(palette.colours, dtype=np.uint8)[rng.integers(0, 6, (32, 48))]
    write_image(tmp_path / "in" / "top_potsdam_7_7_RGB.tif", photo)
    write_image(tmp_path / "in" / "top_potsdam_7_7_label.png", label)
    prepare_raw(potsdam(find_tiles([tmp_path / "in"]), palette), TileFolder(tmp_path / "raw"))
    np.testing.assert_array_equal(read_image(tmp_path / "raw" / "images" / photo_name("7_7")), photo[..., :3])
    np.testing.assert_array_equal(read_image(tmp_path / "raw" / "labels" / label_name("7_7")), label)


def test_prepare_raw_names_a_truncated_tif(make_potsdam_tiles, palette, tmp_path):
    tiles = make_potsdam_tiles(tmp_path / "in", ["2_10"])
    photo = tiles["2_10"][0]
    photo.write_bytes(photo.read_bytes()[:5000])
    with pytest.raises(RasterError, match=re.escape(str(photo))):
        prepare_raw(potsdam(find_tiles([tmp_path / "in"]), palette), TileFolder(tmp_path / "raw"))


def test_prepare_raw_names_both_files_when_sizes_differ(make_potsdam_tiles, palette, tmp_path):
    tiles = make_potsdam_tiles(tmp_path / "in", ["2_10"], size=64)
    photo, label = tiles["2_10"]
    write_image(label, read_image(label)[:48])
    with pytest.raises(DatasetError) as error:
        prepare_raw(potsdam(find_tiles([tmp_path / "in"]), palette), TileFolder(tmp_path / "raw"))
    assert f"photo {photo} is 64x64 px but label {label} is 64x48 px" in str(error.value)


def test_prepare_raw_reports_unknown_label_colours(make_potsdam_tiles, palette, tmp_path):
    tiles = make_potsdam_tiles(tmp_path / "in", ["2_10"])
    label = tiles["2_10"][1]
    colours = read_image(label)
    colours[:2, :5] = (10, 20, 30)
    colours[10, 10] = (1, 2, 3)
    write_image(label, colours)
    pairs = find_tiles([tmp_path / "in"])
    with pytest.raises(UnknownColourError) as error:
        prepare_raw(potsdam(pairs, palette), TileFolder(tmp_path / "raw"))
    message = str(error.value)
    assert str(label) in message
    assert "(10, 20, 30): 10 px" in message and "(1, 2, 3): 1 px" in message

    manifest = prepare_raw(potsdam(pairs, palette, ignore_unknown=True), TileFolder(tmp_path / "raw"))
    assert list(manifest["tile"]) == ["2_10"]
    assert (tmp_path / "raw" / "labels" / label_name("2_10")).read_bytes() == label.read_bytes()


# --- the download's own layout: Potsdam.zip -------------------------------------------------------


def work_files(work: Path) -> list[str]:
    return sorted(path.name for path in work.rglob("*") if path.is_file())


def test_only_the_chosen_bands_and_the_labels_are_unpacked(potsdam_zip, tmp_path):
    wanted = Wanted("RGBIR", participants=frozenset({"4_12"}))
    tiles = collect_local([potsdam_zip], tmp_path / "work", wanted)
    assert list(tiles) == ["2_10", "2_11", "4_12"]
    inner = f"{potsdam_zip}!Potsdam"
    assert tiles["2_10"].photo.name == f"{inner}/4_Ortho_RGBIR.zip!4_Ortho_RGBIR/top_potsdam_2_10_RGBIR.tif"
    assert tiles["2_10"].world.name == f"{inner}/4_Ortho_RGBIR.zip!4_Ortho_RGBIR/top_potsdam_2_10_RGBIR.tfw"
    assert tiles["2_10"].labels["no_boundary"].name == (
        f"{inner}/5_Labels_all_noBoundary.zip!top_potsdam_2_10_label_noBoundary.tif"
    )
    assert tiles["4_12"].labels["full"].name == f"{inner}/5_Labels_for_participants.zip!top_potsdam_4_12_label.tif"
    assert work_files(tmp_path / "work") == sorted(
        [f"top_potsdam_{tile}_{kind}" for tile in ARCHIVE_TILES for kind in ("RGBIR.tif", "RGBIR.tfw")]
        + [label_name(tile, variant) for tile in ARCHIVE_TILES for variant in ("full", "no_boundary")]
    )  # no other band set, no DSM, not 5_Labels_all's 4_12


def test_bands_the_source_lacks_are_named_with_what_it_has(potsdam_zip, tmp_path):
    rgb_only = without_members(potsdam_zip, tmp_path / "Potsdam.zip", "Potsdam/3_Ortho_IRRG.zip")
    with pytest.raises(DatasetError) as error:
        collect_local([rgb_only], tmp_path / "work", Wanted("IRRG"))
    message = str(error.value)
    assert message.startswith(
        "data.bands is irrg, but there is no IRRG photo (top_potsdam_<tile>_IRRG.tif, in 3_Ortho_IRRG.zip) "
        "in the source. What it holds:"
    )
    assert f"{rgb_only}: 3 label, 3 label_noBoundary; not opened: " in message
    assert f"{rgb_only}!Potsdam/2_Ortho_RGB.zip (RGB)" in message and "1_DSM.zip (DSM)" in message
    assert message.endswith("Add 3_Ortho_IRRG.zip to the source, or set data.bands to rgb or rgbir")
    assert not [name for name in work_files(tmp_path / "work") if "_RGB" in name]  # nothing read to find out


def test_an_excluded_tile_the_source_does_not_have_is_named(potsdam_zip, tmp_path):
    with pytest.raises(DatasetError, match=r"data.exclude names tile\(s\) \['7_10'\] that the source does not have"):
        collect_local([potsdam_zip], tmp_path / "work", Wanted(exclude=frozenset({"7_10", "4_12"})))
    tiles = collect_local([potsdam_zip], tmp_path / "again", Wanted(exclude=frozenset({"4_12"})))
    assert list(tiles) == ["2_10", "2_11"] and "4_12" not in "".join(work_files(tmp_path / "again"))


def test_boundary_free_labels_missing_for_some_tiles_are_named(make_potsdam_tiles, palette, tmp_path):
    tiles = make_potsdam_tiles(tmp_path / "Potsdam", ["2_10", "2_11", "2_12"])
    write_image(
        tmp_path / "Potsdam/5_Labels_all_noBoundary" / label_name("2_11", "no_boundary"), read_image(tiles["2_11"][1])
    )
    with pytest.raises(DatasetError) as error:
        find_tiles([tmp_path / "Potsdam"])
    assert str(error.value) == (
        "boundary-free labels (top_potsdam_<tile>_label_noBoundary.tif) were found for 1 tile(s) but not for "
        "['2_10', '2_12']. Add the missing ones (5_Labels_all_noBoundary.zip holds all tiles), or leave these "
        "tiles out with data.exclude"
    )


def test_a_tile_listed_for_participants_labels_needs_them(make_potsdam_tiles, tmp_path):
    make_potsdam_tiles(tmp_path / "Potsdam", ["2_10", "4_12"])
    with pytest.raises(DatasetError, match=r"photo without a label: tile 4_12 .*only from 5_Labels_for_participants"):
        find_tiles([tmp_path / "Potsdam"], Wanted(participants=frozenset({"4_12"})))


def test_a_photo_without_its_bands_is_named(palette, tmp_path):
    write_image(tmp_path / "in" / photo_name("2_10", "RGBIR"), np.zeros((16, 16, 3), np.uint8))
    write_image(tmp_path / "in" / label_name("2_10"), np.full((16, 16, 3), 255, np.uint8))
    with pytest.raises(DatasetError, match=r"top_potsdam_2_10_RGBIR\.tif: a RGBIR photo has 4 bands, this one 3"):
        prepare_raw(potsdam(find_tiles([tmp_path / "in"], Wanted("RGBIR")), palette), TileFolder(tmp_path / "raw"))
