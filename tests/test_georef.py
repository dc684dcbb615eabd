"""World files and GeoTIFF tags: read, written, and moved through a resize so a picture stays put."""

import numpy as np
import pytest
import tifffile
from conftest import POTSDAM_PALETTE

from aerialseg.data.manifest import write_manifest
from aerialseg.data.resize import resize_dataset
from aerialseg.data.synthetic import generate_tile
from aerialseg.pipeline.paths import TileFolder
from aerialseg.raster.georef import (
    GEOKEYS,
    PIXEL_SCALE,
    TIEPOINT,
    TRANSFORMATION,
    WorldFile,
    WorldFileError,
    read_georef,
    read_world_file,
    scale_geotags,
    world_file_path,
    write_world_file,
)
from aerialseg.raster.pictures import read_geotags, write_image

POTSDAM_2_10 = WorldFile(0.05, 0.0, 0.0, -0.05, 366682.025, 5808337.975)  # as in top_potsdam_2_10_RGB.tfw


def corners(world: WorldFile, height: int, width: int) -> tuple[float, ...]:
    """Ground x, y of the outer corners of the top-left and bottom-right pixels."""
    return (*world.ground(-0.5, -0.5), *world.ground(width - 0.5, height - 0.5))


def test_world_file_round_trip_and_names(tmp_path):
    write_world_file(tmp_path / "a.tfw", POTSDAM_2_10)
    assert read_world_file(tmp_path / "a.tfw") == POTSDAM_2_10
    assert (tmp_path / "a.tfw").read_text().splitlines() == ["0.05", "0.0", "0.0", "-0.05", "366682.025", "5808337.975"]
    assert world_file_path(tmp_path / "m.tif") == tmp_path / "m.tfw"
    assert world_file_path(tmp_path / "m.png") == tmp_path / "m.pgw"


@pytest.mark.parametrize("content", ["0.05\n0\n0\n-0.05\n366682.0\n", "0.05 0 0 -0.05 east north", ""])
def test_a_world_file_that_is_not_six_numbers_is_named(tmp_path, content):
    (tmp_path / "top_potsdam_2_10_RGB.tfw").write_text(content)
    with pytest.raises(WorldFileError, match=r"top_potsdam_2_10_RGB\.tfw: a world file must hold 6 numbers"):
        read_world_file(tmp_path / "top_potsdam_2_10_RGB.tfw")


@pytest.mark.parametrize("old_hw, new_hw", [((6000, 6000), (3000, 3000)), ((75, 50), (38, 25)), ((10, 10), (30, 40))])
def test_a_scaled_world_file_covers_the_same_ground(old_hw, new_hw):
    rotated = WorldFile(0.05, 0.01, -0.02, -0.05, 366682.025, 5808337.975)
    for world in (POTSDAM_2_10, rotated):
        scaled = world.scaled(old_hw, new_hw)
        assert corners(scaled, *new_hw) == pytest.approx(corners(world, *old_hw), abs=1e-9)
    halved = POTSDAM_2_10.scaled((6000, 6000), (3000, 3000))
    assert (halved.a, halved.e) == (0.1, -0.1)
    assert halved.c == pytest.approx(366682.025 + 0.025)  # half the new pixel minus half the old one


@pytest.mark.parametrize("raster_type", [1, 2], ids=["PixelIsArea", "PixelIsPoint"])
def test_geotiff_tags_are_scaled_so_the_corners_stay(raster_type):
    """Tie point, pixel scale and transformation each locate pixel (0, 0) and the far corner."""
    geokeys = (1, 1, 0, 1, 1025, 0, 1, raster_type)
    offset = 0.5 if raster_type == 2 else 0.0  # raster coordinates of PixelIsPoint count from pixel centres
    tags = [
        (PIXEL_SCALE, "d", 3, (0.05, 0.05, 0.0), True),
        (TIEPOINT, "d", 6, (0.0, 0.0, 0.0, 366682.0, 5808338.0, 0.0), True),
        (TRANSFORMATION, "d", 16, (0.05, 0.0, 0, 366682.0, 0.0, -0.05, 0, 5808338.0, 0, 0, 0, 0, 0, 0, 0, 1), True),
        (GEOKEYS, "H", 8, geokeys, True),
    ]

    def ground(tags, col, row):  # corner coordinates (col, row) to ground, by tie point + scale and by matrix
        values = {code: value for code, _, _, value, _ in tags}
        scale, tie, matrix = values[PIXEL_SCALE], values[TIEPOINT], values[TRANSFORMATION]
        i, j = col - offset, row - offset
        by_tie = (tie[3] + (i - tie[0]) * scale[0], tie[4] - (j - tie[1]) * scale[1])
        return (*by_tie, matrix[0] * i + matrix[1] * j + matrix[3], matrix[4] * i + matrix[5] * j + matrix[7])

    scaled = scale_geotags(tags, (6000, 4000), (3000, 1000))
    for (col, row), (new_col, new_row) in [((0, 0), (0, 0)), ((4000, 6000), (1000, 3000))]:
        assert ground(scaled, new_col, new_row) == pytest.approx(ground(tags, col, row))
    assert {code: value for code, _, _, value, _ in scaled}[GEOKEYS] == geokeys


def test_resize_by_half_keeps_the_photo_on_the_same_ground(tmp_path):
    """The resize stage's photo lies where the raw one did: world file and GeoTIFF tags alike."""
    raw, resized = TileFolder(tmp_path / "raw"), TileFolder(tmp_path / "resized")
    photo, label = generate_tile(0, (75, 51), POTSDAM_PALETTE, "RGBIR")
    write_image(raw.photo("2_10", "RGBIR"), photo, [(PIXEL_SCALE, "d", 3, (0.05, 0.05, 0.0), True)])
    write_world_file(world_file_path(raw.photo("2_10", "RGBIR")), POTSDAM_2_10)
    write_image(raw.label("2_10"), label)
    write_manifest(raw.manifest, [{"tile": "2_10", "height": 75, "width": 51, "source": "test"}])

    resize_dataset(raw, resized, POTSDAM_PALETTE, scale=0.5, workers=1)

    georef = read_georef(resized.photo("2_10"))
    assert resized.photo("2_10").name == "top_potsdam_2_10_RGBIR.tif"
    assert corners(georef.world, 38, 26) == pytest.approx(corners(POTSDAM_2_10, 75, 51), abs=1e-9)
    assert read_geotags(resized.photo("2_10"))[0][3] == pytest.approx((0.05 * 51 / 26, 0.05 * 75 / 38, 0.0))
    assert not resized.label("2_10", "no_boundary").exists()  # the raw tile had none
    assert np.asarray(tifffile.imread(resized.photo("2_10"))).shape == (38, 26, 4)
