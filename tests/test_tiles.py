import numpy as np
import pytest
import tifffile

from aerialseg.raster.pictures import ImageReadError, read_geotags, read_image, write_image


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
    tifffile.imwrite(
        tmp_path / "geo.tif", np.zeros((8, 8, 3), np.uint8), photometric="rgb", extratags=[(33550, "d", 3, scale, True)]
    )
    write_image(tmp_path / "out.tif", np.ones((8, 8), np.uint8), read_geotags(tmp_path / "geo.tif"))
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert tuple(tif.pages[0].tags[33550].value) == scale
