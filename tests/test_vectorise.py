"""Polygons out (aerialseg.predict.vectorise): class-index maps fed a band of rows at a time into
real GeoPackages, read back with pyogrio and burnt back onto the grid with rasterio, and
aerialseg-predict --vector end to end with a tiny Keras model."""

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from conftest import POTSDAM_PALETTE
from pyogrio import raw
from rasterio.crs import CRS
from rasterio.features import rasterize, shapes
from rasterio.transform import from_origin
from test_predict_cli import CRS as PHOTO_CRS
from test_predict_cli import OPTIONS, PARAMS, model_file, photo, predict, write_geotiff  # noqa: F401 (a fixture)

from aerialseg.predict.vectorise import VectorUnitsError, vectorise_rows

UTM = CRS.from_epsg(25833)
GRID = from_origin(367_000.0, 5_810_000.0, 0.05, 0.05)  # 5 cm pixels: 0.0025 m² each
NAMES = list(POTSDAM_PALETTE.names)
BAND = 7  # rows per band: every map below crosses several seams


def bands(index: np.ndarray, height: int = BAND):
    return (index[top : top + height] for top in range(0, len(index), height))


def vectorise(index: np.ndarray, path, crs=UTM, transform=GRID, simplify=0.0, height=BAND):
    """``index`` fed in bands of ``height`` rows, each band polygonised on its own (band_rows 1)."""
    vectorise_rows(bands(index, height), transform, crs, NAMES, path, simplify, band_rows=1)
    _, _, wkb, (names, values, areas) = raw.read(path)
    return shapely.from_wkb(wkb), names, values, areas


def burn(geometries, values, shape, transform=GRID) -> np.ndarray:
    return rasterize(zip(geometries, values), out_shape=shape, transform=transform, fill=255, dtype="uint8")


def blobs(seed: int, shape=(60, 50)) -> np.ndarray:
    """Blocky random classes and some no data (255), so regions of all sizes cross the seams."""
    coarse = np.random.default_rng(seed).integers(0, 7, (shape[0] // 3 + 1, shape[1] // 3 + 1))
    index = np.repeat(np.repeat(coarse, 3, axis=0), 3, axis=1)[: shape[0], : shape[1]].astype(np.uint8)
    index[index == 6] = 255
    return index


def test_the_polygons_burn_back_into_the_map_and_are_those_of_the_whole_map(tmp_path):
    index = blobs(0)
    geometries, names, values, _ = vectorise(index, tmp_path / "map.gpkg")
    np.testing.assert_array_equal(burn(geometries, values, index.shape), index)  # no data included
    assert list(names) == [NAMES[value] for value in values]
    whole = [
        (int(value), shapely.normalize(shapely.geometry.shape(geometry)))
        for geometry, value in shapes(index, mask=index != 255, transform=GRID)
    ]
    streamed = [(int(value), shapely.normalize(geometry)) for geometry, value in zip(geometries, values)]
    assert len(streamed) == len(whole)  # one polygon per region, as the whole map's polygoniser gives
    for value, geometry in whole:
        assert any(v == value and shapely.equals(geometry, g) for v, g in streamed)


def test_a_ring_and_a_u_crossing_three_bands_are_one_polygon_each(tmp_path):
    index = np.full((21, 30), 255, dtype=np.uint8)
    index[2:19, 2:12] = 1  # a ring over bands 0, 1 and 2 (rows 0-6, 7-13, 14-20)
    index[5:16, 5:9] = 255  # its hole: no data
    index[1:20, 15:18] = 4  # a U: two arms in band 0 and 1, joined in band 2 only
    index[1:20, 25:28] = 4
    index[17:20, 15:28] = 4
    geometries, names, values, areas = vectorise(index, tmp_path / "map.gpkg")
    assert sorted(values) == [1, 4]
    ring, u = (geometries[list(values).index(value)] for value in (1, 4))
    assert ring.geom_type == "Polygon" and len(ring.interiors) == 1
    assert u.geom_type == "Polygon" and not u.interiors
    np.testing.assert_array_equal(burn(geometries, values, index.shape), index)
    assert list(areas) == pytest.approx([(index == value).sum() * 0.05**2 for value in values])
    assert dict(zip(values, names)) == {1: NAMES[1], 4: NAMES[4]}


def test_regions_meeting_at_a_corner_across_a_seam_stay_two(tmp_path):
    """4-connectivity, as GDAL's polygoniser: a diagonal step is no join, across a seam or not."""
    index = np.full((14, 10), 255, dtype=np.uint8)
    index[3:7, 2:5] = 2  # ends at the seam below row 6 ...
    index[7:11, 5:8] = 2  # ... where this one starts, one column to the right
    geometries, _, values, _ = vectorise(index, tmp_path / "map.gpkg")
    assert list(values) == [2, 2]
    np.testing.assert_array_equal(burn(geometries, values, index.shape), index)


def test_areas_are_square_metres_and_the_crs_is_the_photos(tmp_path):
    index = blobs(1, shape=(30, 40))
    feet = CRS.from_epsg(2263)  # NAD83 / New York Long Island (ftUS)
    transform = from_origin(980_000.0, 200_000.0, 2.0, 2.0)  # 2 ft pixels
    geometries, _, values, areas = vectorise(index, tmp_path / "map.gpkg", crs=feet, transform=transform)
    foot = feet.linear_units_factor[1]
    for geometry, area in zip(geometries, areas):
        pixels = rasterize([geometry], out_shape=index.shape, transform=transform).sum()
        assert area == pytest.approx(pixels * (2 * foot) ** 2)
    assert sum(areas) == pytest.approx((index != 255).sum() * (2 * foot) ** 2)
    assert CRS.from_user_input(pyogrio.read_info(tmp_path / "map.gpkg")["crs"]) == feet


def test_simplify_drops_vertices_and_keeps_the_area(tmp_path):
    rows, columns = np.mgrid[:120, :120]
    index = np.where((rows - 60) ** 2 + (columns - 55) ** 2 < 50**2, 3, 0).astype(np.uint8)  # a disc in a square
    exact, _, values, areas = vectorise(index, tmp_path / "exact.gpkg", height=25)
    simple, _, _, simple_areas = vectorise(index, tmp_path / "simple.gpkg", simplify=0.05, height=25)  # one pixel
    vertices = shapely.get_num_coordinates
    assert all(vertices(simple) < vertices(exact) / 5)
    assert list(shapely.area(simple)) == pytest.approx(list(shapely.area(exact)), rel=0.015)
    assert list(simple_areas) == list(areas)  # the attribute is the region's pixels, not the outline's
    assert shapely.is_valid(simple).all()


def test_no_data_gives_no_polygon(tmp_path):
    geometries, *_ = vectorise(np.full((20, 20), 255, dtype=np.uint8), tmp_path / "empty.gpkg")
    assert len(geometries) == 0
    assert pyogrio.read_info(tmp_path / "empty.gpkg")["geometry_type"] == "Polygon"


@pytest.mark.parametrize(
    ("crs", "message"), [(None, "has no CRS"), (CRS.from_epsg(4326), "is in EPSG:4326, not a projected CRS")]
)
def test_a_map_without_square_metres_is_refused(tmp_path, crs, message):
    with pytest.raises(VectorUnitsError, match=message) as error:
        vectorise(blobs(2), tmp_path / "map.gpkg", crs=crs)
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_run_leaves_no_file(tmp_path):
    def rows_then_failure():
        yield from bands(blobs(3))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vectorise_rows(rows_then_failure(), GRID, UTM, NAMES, tmp_path / "map.gpkg", band_rows=1)
    assert list(tmp_path.iterdir()) == []


def test_aerialseg_predict_vector_writes_the_maps_regions(tmp_path, model_file):  # noqa: F811 (the fixture)
    scene = write_geotiff(tmp_path / "in/scene.tif", photo(4))
    out = tmp_path / "maps"
    assert predict("--model", model_file, "--params", PARAMS, "--out", out, "--vector", *OPTIONS, scene) == 0
    with rasterio.open(out / "scene.tif") as index_map:
        index, transform = index_map.read(1), index_map.transform
    _, _, wkb, (names, values, areas) = raw.read(out / "scene.gpkg")
    np.testing.assert_array_equal(burn(shapely.from_wkb(wkb), values, index.shape, transform), index)
    assert sum(areas) == pytest.approx(index.size * 0.05**2)
    assert set(names) <= set(NAMES)
    assert CRS.from_user_input(pyogrio.read_info(out / "scene.gpkg")["crs"]) == CRS.from_user_input(PHOTO_CRS)


def test_aerialseg_predict_refuses_vector_for_a_photo_without_a_projected_crs(tmp_path, model_file, capsys):  # noqa: F811
    scene = write_geotiff(tmp_path / "scene.tif", photo(5), crs="EPSG:4326", transform=from_origin(13, 52, 1e-6, 1e-6))
    out = tmp_path / "maps"
    assert predict("--model", model_file, "--params", PARAMS, "--out", out, "--vector", *OPTIONS, scene) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {scene}: is in EPSG:4326, not a projected CRS") and "\n" not in error
    assert list(out.iterdir()) == []


def test_simplify_needs_vector(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        predict("--out", tmp_path, "--simplify", "0.5", "scene.tif")
    assert exit.value.code == 2 and "--simplify needs --vector" in capsys.readouterr().err


@pytest.mark.parametrize("given", ["0", "-1", "half", "nan"])
def test_a_simplify_that_is_not_a_positive_number_is_refused(tmp_path, capsys, given):
    scene = write_geotiff(tmp_path / "scene.tif", photo(6))
    assert predict("--out", tmp_path / "maps", "--vector", f"--simplify={given}", scene) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: --simplify {given!r}: expected the metres a polygon's edge may move, a positive number (e.g. 0.5)"
    )
