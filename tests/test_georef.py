"""Georeferencing: read by GDAL from GeoTIFF tags or a world file, written, and moved through a resize
so a picture stays put."""

import numpy as np
import pytest
from affine import Affine
from conftest import POTSDAM_PALETTE
from rasterio.crs import CRS

from aerialseg.data.manifest import write_manifest
from aerialseg.data.resize import resize_dataset
from aerialseg.data.synthetic import generate_tile
from aerialseg.pipeline.paths import TileFolder
from aerialseg.raster.georef import (
    Georeference,
    WorldFileError,
    read_georef,
    world_file_path,
    world_file_text,
    write_world_file,
)
from aerialseg.raster.pictures import read_image, write_image

POTSDAM_2_10 = Affine(0.05, 0.0, 366682.0, 0.0, -0.05, 5808338.0)  # top_potsdam_2_10_RGB.tfw, from the corner


def corners(transform: Affine, height: int, width: int) -> tuple[float, ...]:
    """Ground x, y of the outer corners of the top-left and bottom-right pixels."""
    return (*(transform @ (0, 0)), *(transform @ (width, height)))


def test_a_world_file_is_written_as_gdal_reads_it(tmp_path):
    write_image(tmp_path / "a.tif", np.zeros((4, 4, 3), np.uint8))
    write_world_file(tmp_path / "a.tif", POTSDAM_2_10)
    assert (tmp_path / "a.tfw").read_text().splitlines() == ["0.05", "0.0", "0.0", "-0.05", "366682.025", "5808337.975"]
    assert read_georef(tmp_path / "a.tif") == Georeference(None, POTSDAM_2_10, world_file=True)
    assert world_file_text(POTSDAM_2_10) == (tmp_path / "a.tfw").read_text()
    assert world_file_path(tmp_path / "m.tif") == tmp_path / "m.tfw"
    assert world_file_path(tmp_path / "m.png") == tmp_path / "m.pgw"


@pytest.mark.parametrize("content", ["0.05\n0\n0\n-0.05\n366682.0\n", "0.05 0 0 -0.05 east north", ""])
def test_a_world_file_that_is_not_six_numbers_is_named(tmp_path, content):
    """GDAL would ignore it without a word and leave the photo unplaced."""
    write_image(tmp_path / "top_potsdam_2_10_RGB.tif", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "top_potsdam_2_10_RGB.tfw").write_text(content)
    with pytest.raises(WorldFileError, match=r"top_potsdam_2_10_RGB\.tfw: a world file must hold 6 numbers"):
        read_georef(tmp_path / "top_potsdam_2_10_RGB.tif")


@pytest.mark.parametrize("old_hw, new_hw", [((6000, 6000), (3000, 3000)), ((75, 50), (38, 25)), ((10, 10), (30, 40))])
def test_a_scaled_position_covers_the_same_ground(old_hw, new_hw):
    rotated = Affine(0.05, -0.02, 366682.0, 0.01, -0.05, 5808338.0)
    for transform in (POTSDAM_2_10, rotated):
        scaled = Georeference(CRS.from_epsg(25833), transform).scaled(old_hw, new_hw)
        assert corners(scaled.transform, *new_hw) == pytest.approx(corners(transform, *old_hw), abs=1e-9)
        assert scaled.crs == CRS.from_epsg(25833)
    halved = Georeference(None, POTSDAM_2_10, world_file=True).scaled((6000, 6000), (3000, 3000))
    assert halved == Georeference(None, Affine(0.1, 0.0, 366682.0, 0.0, -0.1, 5808338.0), world_file=True)
    assert world_file_text(halved.transform).split()[4] == "366682.05"  # the new centre: half a 10 cm pixel in


@pytest.mark.parametrize("tagged", [False, True], ids=["world file", "GeoTIFF and world file"])
def test_resize_by_half_keeps_the_photo_on_the_same_ground(tmp_path, tagged):
    """The resize stage's photo lies where the raw one did, with a world file as the raw one had."""
    raw, resized = TileFolder(tmp_path / "raw"), TileFolder(tmp_path / "resized")
    photo, label = generate_tile(0, (75, 51), POTSDAM_PALETTE, "RGBIR")
    position = Georeference(CRS.from_epsg(25833) if tagged else None, POTSDAM_2_10, world_file=True)
    write_image(raw.photo("2_10", "RGBIR"), photo, position if tagged else None)
    write_world_file(raw.photo("2_10", "RGBIR"), POTSDAM_2_10)
    write_image(raw.label("2_10"), label)
    write_manifest(raw.manifest, [{"tile": "2_10", "height": 75, "width": 51, "source": "test"}])
    assert read_georef(raw.photo("2_10", "RGBIR")) == position

    resize_dataset(raw, resized, POTSDAM_PALETTE, scale=0.5, workers=1)

    georef = read_georef(resized.photo("2_10"))
    assert resized.photo("2_10").name == "top_potsdam_2_10_RGBIR.tif"
    assert georef.crs == position.crs and georef.world_file
    assert georef.transform.almost_equals(POTSDAM_2_10 @ Affine.scale(51 / 26, 75 / 38), precision=1e-9)
    assert corners(georef.transform, 38, 26) == pytest.approx(corners(POTSDAM_2_10, 75, 51), abs=1e-9)
    assert not resized.label("2_10", "no_boundary").exists()  # the raw tile had none
    assert read_image(resized.photo("2_10")).shape == (38, 26, 4)
