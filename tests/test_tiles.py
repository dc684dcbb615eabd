import numpy as np
import pytest
import tifffile

from aerialseg.tiles import (ImageReadError, atomic_dir, atomic_file, parse_tile_name, read_geotags, read_image,
                             PARTIAL, write_image)


def test_tif_and_png_round_trip(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    for name in ("a.tif", "a.png"):
        write_image(tmp_path / name, image)
        np.testing.assert_array_equal(read_image(tmp_path / name), image)


@pytest.mark.parametrize("bands", [3, 4])
def test_planar_tif_is_read_as_height_width_bands(tmp_path, bands):
    image = np.random.default_rng(3).integers(0, 256, (20, 30, bands), dtype=np.uint8)
    planes = np.moveaxis(image, -1, 0)  # one plane per band, as some GIS tools write RGB and RGBIR
    tifffile.imwrite(tmp_path / "planar.tif", planes, photometric="rgb", planarconfig="separate")
    with tifffile.TiffFile(tmp_path / "planar.tif") as tif:
        assert tif.pages[0].planarconfig == tifffile.PLANARCONFIG.SEPARATE
    np.testing.assert_array_equal(read_image(tmp_path / "planar.tif"), image)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.tif"):
        read_image(tmp_path / "nothere.tif")


@pytest.mark.parametrize("name", ["corrupt.tif", "corrupt.png"])
def test_corrupt_file_is_named(tmp_path, name):
    (tmp_path / name).write_bytes(b"this is not an image" * 10)
    with pytest.raises(ImageReadError, match=name):
        read_image(tmp_path / name)


def test_truncated_tif_is_named(tmp_path):
    image = np.random.default_rng(2).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    write_image(tmp_path / "full.tif", image)
    data = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageReadError, match="cut.tif"):
        read_image(tmp_path / "cut.tif")


def test_geotags_are_kept(tmp_path):
    scale = (0.05, 0.05, 0.0)
    tifffile.imwrite(tmp_path / "geo.tif", np.zeros((8, 8, 3), np.uint8), photometric="rgb",
                     extratags=[(33550, "d", 3, scale, True)])
    write_image(tmp_path / "out.tif", np.ones((8, 8), np.uint8), read_geotags(tmp_path / "geo.tif"))
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert tuple(tif.pages[0].tags[33550].value) == scale


def test_atomic_file_keeps_old_content_on_failure(tmp_path):
    target = tmp_path / "m.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("stage failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_atomic_dir_replaces_only_on_success(tmp_path):
    out = tmp_path / "raw"
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "b").write_text("2")
            raise RuntimeError
    assert sorted(p.name for p in out.iterdir()) == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_potsdam_names():
    assert parse_tile_name("top_potsdam_2_10_RGB.tif") == ("2_10", "RGB")
    assert parse_tile_name("top_potsdam_7_8_label.tif") == ("7_8", "label")
    assert parse_tile_name("readme.txt") is None


def test_leftovers_of_a_killed_writer_go_when_the_output_is_written_again(tmp_path):
    killed_file = tmp_path / f".epoch_002.weights{PARTIAL}abc.weights.h5"  # SIGKILL: no cleanup ran
    killed_folder = tmp_path / f".raw{PARTIAL}xyz"
    killed_file.write_text("half")
    killed_folder.mkdir()
    other = tmp_path / f".epoch_003.weights{PARTIAL}def.weights.h5"
    other.write_text("half, of another output")
    with atomic_file(tmp_path / "epoch_002.weights.h5") as tmp:
        assert tmp.name.endswith(".weights.h5")  # Keras insists on the suffix
        tmp.write_text("whole")
    with atomic_dir(tmp_path / "raw"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([other.name, "epoch_002.weights.h5", "raw"])
