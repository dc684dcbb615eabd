import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from aerialseg.raster.georef import Georeference, read_georef
from aerialseg.raster.opening import RasterError
from aerialseg.raster.pictures import read_image, write_image

POTSDAM = Georeference(CRS.from_epsg(25833), Affine(0.05, 0.0, 366682.0, 0.0, -0.05, 5808338.0))


def test_tif_and_png_round_trip(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    for name in ("a.tif", "a.png"):
        write_image(tmp_path / name, image)
        np.testing.assert_array_equal(read_image(tmp_path / name), image)


def write_geotiff(path, image, **options) -> None:
    """A GeoTIFF as other tools write them: rasterio's (GDAL's) own writer, with any creation options."""
    profile = dict(driver="GTiff", height=image.shape[0], width=image.shape[1], count=image.shape[2], dtype="uint8")
    with rasterio.open(path, "w", **profile, **POTSDAM.profile(), **options) as dataset:
        dataset.write(np.moveaxis(image, -1, 0))


@pytest.mark.parametrize("bands", [3, 4])
def test_planar_tif_is_read_as_height_width_bands(tmp_path, bands):
    image = np.random.default_rng(3).integers(0, 256, (20, 30, bands), dtype=np.uint8)
    write_geotiff(tmp_path / "planar.tif", image, interleave="band")  # a plane per band, as some GIS tools write
    with rasterio.open(tmp_path / "planar.tif") as dataset:
        assert dataset.interleaving.name == "band"
    np.testing.assert_array_equal(read_image(tmp_path / "planar.tif"), image)


@pytest.mark.parametrize("compress", ["LZW", "DEFLATE"])
def test_compressed_geotiffs_are_read_with_their_position(tmp_path, compress):
    """QGIS and OpenCV write LZW or DEFLATE TIFFs; pixels and georeferencing come through."""
    image = np.random.default_rng(4).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    write_geotiff(tmp_path / "packed.tif", image, compress=compress)
    with rasterio.open(tmp_path / "packed.tif") as dataset:
        assert dataset.compression.name == compress.lower()
    np.testing.assert_array_equal(read_image(tmp_path / "packed.tif"), image)
    assert read_georef(tmp_path / "packed.tif") == POTSDAM


def test_a_georeferenced_picture_keeps_its_crs_and_transform(tmp_path):
    write_image(tmp_path / "map.tif", np.ones((8, 8), np.uint8), POTSDAM)
    assert read_georef(tmp_path / "map.tif") == POTSDAM
    assert not (tmp_path / "map.tfw").exists()  # the photo had no world file
    write_image(tmp_path / "map.png", np.ones((8, 8, 3), np.uint8), POTSDAM)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["map.png", "map.tif"]  # a PNG holds no position


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.tif"):
        read_image(tmp_path / "nothere.tif")


@pytest.mark.parametrize("name", ["corrupt.tif", "corrupt.png"])
def test_corrupt_file_is_named(tmp_path, name):
    (tmp_path / name).write_bytes(b"this is not an image" * 10)
    with pytest.raises(RasterError, match=name):
        read_image(tmp_path / name)


def test_truncated_tif_is_named(tmp_path):
    image = np.random.default_rng(2).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    write_image(tmp_path / "full.tif", image)
    data = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 3])
    with pytest.raises(RasterError, match="cut.tif"):
        read_image(tmp_path / "cut.tif")


def test_a_picture_that_is_not_8_bit_is_named(tmp_path):
    profile = dict(driver="GTiff", height=4, width=4, count=1, dtype="uint16", **POTSDAM.profile())
    with rasterio.open(tmp_path / "deep.tif", "w", **profile) as out:
        out.write(np.zeros((1, 4, 4), np.uint16))
    with pytest.raises(RasterError, match=r"deep\.tif: has uint16 bands, but aerialseg reads 8-bit ones"):
        read_image(tmp_path / "deep.tif")
