"""Polygon labels: GeoPackage / GeoJSON files written here, burnt onto GeoTIFF photos written here,
compared with the same shapes drawn in NumPy; and every way such a file can be wrong, named."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
import shapely.affinity
import shapely.geometry
from pyogrio import raw
from rasterio.transform import from_origin
from rasterio.warp import transform_geom

from aerialseg.data.palette import IGNORE_INDEX
from aerialseg.data.polygons import (
    ClassFieldError,
    GeometryTypeError,
    PolygonsMissPhotoError,
    UnknownClassError,
    UnlocatedPhotoError,
    UnreadableVectorError,
    VectorCrsError,
    rasterise_polygons,
)
from aerialseg.raster.georef import Georeference, read_georef

CLASSES = ("impervious", "building", "low_vegetation", "tree", "car", "clutter")
CRS = "EPSG:25833"
WEST, NORTH, PIXEL = 366682.0, 5808338.0, 0.05  # the corner of Potsdam's tile 2_10, 5 cm pixels
SHAPE = (120, 160)  # rows, columns: 6 m x 8 m


def write_photo(path: Path, west: float = WEST, north: float = NORTH, crs: str | None = CRS) -> Path:
    """A GeoTIFF photo of SHAPE whose top-left corner lies at (west, north)."""
    located = dict(crs=crs, transform=from_origin(west, north, PIXEL, PIXEL)) if crs else {}
    with rasterio.open(path, "w", driver="GTiff", height=SHAPE[0], width=SHAPE[1], count=3, dtype="uint8", **located):
        pass
    return path


def write_vector(
    path: Path, geometries, classes, crs: str | None = CRS, field: str = "class", geometry_type: str = "Polygon"
) -> Path:
    """A vector file (GeoPackage or GeoJSON, by its suffix) of polygons (or of ``geometry_type``, "Unknown"
    for a layer of mixed kinds) with one class attribute."""
    driver = {".gpkg": "GPKG", ".geojson": "GeoJSON"}[path.suffix]
    values = np.asarray(classes, dtype=object if isinstance(classes[0], str) else None)
    wkb = shapely.to_wkb(np.asarray(geometries, dtype=object))
    raw.write(path, wkb, [values], [field], geometry_type=geometry_type, crs=crs, driver=driver)
    return path


def pixel_box(row0: int, col0: int, row1: int, col1: int, west: float = WEST, north: float = NORTH):
    """The polygon of pixel rows row0..row1-1 and columns col0..col1-1 of a photo at (west, north)."""
    return shapely.box(west + col0 * PIXEL, north - row1 * PIXEL, west + col1 * PIXEL, north - row0 * PIXEL)


def centres_inside(polygon, west: float = WEST, north: float = NORTH) -> np.ndarray:
    """The pixels of a photo at (west, north) whose centre lies inside ``polygon``: GDAL's rule."""
    rows, cols = np.mgrid[: SHAPE[0], : SHAPE[1]]
    return shapely.contains_xy(polygon, west + (cols + 0.5) * PIXEL, north - (rows + 0.5) * PIXEL)


def burn(vector: Path, photo: Path, background: int | None = 0, **options) -> np.ndarray:
    return rasterise_polygons(vector, photo, read_georef(photo), SHAPE, CLASSES, "class", background, **options)


def test_pixel_aligned_rectangles_are_burnt_exactly(tmp_path):
    boxes = [(0, 0, 40, 70, "building"), (50, 20, 120, 100, "tree"), (10, 110, 60, 160, "car")]
    vector = write_vector(tmp_path / "labels.gpkg", [pixel_box(*b[:4]) for b in boxes], [b[4] for b in boxes])
    expected = np.zeros(SHAPE, np.uint8)
    for row0, col0, row1, col1, name in boxes:
        expected[row0:row1, col0:col1] = CLASSES.index(name)
    labels = burn(vector, write_photo(tmp_path / "photo.tif"))
    assert labels.dtype == np.uint8 and labels.shape == SHAPE
    np.testing.assert_array_equal(labels, expected)


def test_rotated_squares_take_the_pixels_whose_centre_they_hold(tmp_path):
    centre = shapely.Point(WEST + 3.0, NORTH - 3.0)
    squares = [
        shapely.affinity.rotate(centre.buffer(size, cap_style="square"), angle)
        for size, angle in [(2.5, 30), (1.2, 55)]
    ]
    vector = write_vector(tmp_path / "labels.geojson", squares, ["low_vegetation", "clutter"])
    expected = np.zeros(SHAPE, np.uint8)
    expected[centres_inside(squares[0])] = CLASSES.index("low_vegetation")
    expected[centres_inside(squares[1])] = CLASSES.index("clutter")
    labels = burn(vector, write_photo(tmp_path / "photo.tif"))
    assert (labels == expected).mean() >= 0.99
    assert set(np.unique(labels)) == {0, 2, 5}


@pytest.mark.parametrize(
    "values, label_values", [([1, 3], None), ([20, 40], [0, 20, 30, 40, 50, 60]), ([1.0, 3.0], None)]
)
def test_a_class_may_be_given_by_its_value(tmp_path, values, label_values):
    """An integer (or, as a Shapefile may store it, integral float) field holds class values."""
    vector = write_vector(tmp_path / "labels.geojson", [pixel_box(0, 0, 60, 80), pixel_box(60, 80, 120, 160)], values)
    labels = burn(vector, write_photo(tmp_path / "photo.tif"), label_values=label_values)
    assert labels[0, 0] == CLASSES.index("building") and labels[-1, -1] == CLASSES.index("tree")


def test_uncovered_pixels_get_the_background_or_are_ignored(tmp_path):
    vector = write_vector(tmp_path / "labels.gpkg", [pixel_box(0, 0, 60, 80)], ["car"])
    photo = write_photo(tmp_path / "photo.tif")
    ignored = burn(vector, photo, background=None)
    assert ignored[0, 0] == CLASSES.index("car") and ignored[-1, -1] == IGNORE_INDEX
    assert (ignored == IGNORE_INDEX).sum() == SHAPE[0] * SHAPE[1] - 60 * 80
    assert burn(vector, photo, background=CLASSES.index("clutter"))[-1, -1] == CLASSES.index("clutter")


def test_the_later_of_overlapping_polygons_wins(tmp_path):
    vector = write_vector(
        tmp_path / "labels.gpkg", [pixel_box(0, 0, 80, 100), pixel_box(40, 50, 120, 160)], ["building", "tree"]
    )
    labels = burn(vector, write_photo(tmp_path / "photo.tif"))
    assert labels[39, 49] == labels[0, 0] == CLASSES.index("building")
    assert labels[40, 50] == labels[79, 99] == labels[-1, -1] == CLASSES.index("tree")


def test_polygons_in_degrees_land_where_the_same_polygons_in_metres_do(tmp_path):
    centre = shapely.Point(WEST + 4.0, NORTH - 3.0)
    shapes = [shapely.affinity.rotate(centre.buffer(2.4, cap_style="square"), 20), pixel_box(70, 0, 120, 60)]
    in_metres = write_vector(tmp_path / "metres.gpkg", shapes, ["building", "tree"])
    degrees = [
        shapely.geometry.shape(g) for g in transform_geom(CRS, "EPSG:4326", [s.__geo_interface__ for s in shapes])
    ]
    in_degrees = write_vector(tmp_path / "degrees.geojson", degrees, ["building", "tree"], crs="EPSG:4326")
    photo = write_photo(tmp_path / "photo.tif")
    reference = burn(in_metres, photo)
    reprojected = burn(in_degrees, photo)
    assert (reprojected == reference).mean() >= 0.99
    assert (reference == CLASSES.index("building")).sum() > 2000


def test_one_file_labels_two_photos_with_the_features_of_each(tmp_path):
    """Photos side by side under one file; a feature far away with an unknown class is never read."""
    east = WEST + SHAPE[1] * PIXEL
    shapes = [pixel_box(0, 0, 60, 160), pixel_box(0, 0, 120, 80, west=east), shapely.box(0, 0, 1, 1)]
    vector = write_vector(tmp_path / "city.gpkg", shapes, ["building", "tree", "not a class"])
    left = burn(vector, write_photo(tmp_path / "left.tif"), background=None)
    right = burn(vector, write_photo(tmp_path / "right.tif", west=east), background=None)
    assert set(np.unique(left)) == {CLASSES.index("building"), IGNORE_INDEX}
    assert (left[:60] == CLASSES.index("building")).all() and (left[60:] == IGNORE_INDEX).all()
    assert set(np.unique(right)) == {CLASSES.index("tree"), IGNORE_INDEX}
    assert (right[:, :80] == CLASSES.index("tree")).all() and (right[:, 80:] == IGNORE_INDEX).all()


def test_multipolygons_and_collections_of_polygons_are_burnt_as_their_polygons(tmp_path):
    parts = [pixel_box(0, 0, 20, 20), pixel_box(40, 40, 60, 60)]
    shapes = [shapely.MultiPolygon(parts), shapely.GeometryCollection([pixel_box(100, 100, 120, 160)])]
    vector = write_vector(tmp_path / "labels.gpkg", shapes, ["building", "tree"], geometry_type="Unknown")
    labels = burn(vector, write_photo(tmp_path / "photo.tif"))
    assert (labels == CLASSES.index("building")).sum() == 2 * 20 * 20
    assert (labels[100:, 100:] == CLASSES.index("tree")).all() and (labels == CLASSES.index("tree")).sum() == 20 * 60


def test_lines_and_points_are_refused_counted_by_kind(tmp_path):
    """An OSM export's roads as lines and trees as points: burnt, they would be 1-pixel labels."""
    road = shapely.LineString([(WEST, NORTH - 1), (WEST + 8, NORTH - 1)])
    shapes = [
        pixel_box(0, 0, 60, 80),
        road,
        shapely.affinity.translate(road, yoff=-2),
        shapely.Point(WEST + 4, NORTH - 3),
        shapely.GeometryCollection([pixel_box(0, 100, 10, 110), road]),
        shapely.LineString([(WEST + 1000, NORTH), (WEST + 1001, NORTH)]),  # far off this photo: not read
    ]
    vector = write_vector(tmp_path / "osm.gpkg", shapes, ["building", "impervious", "impervious", "tree", "car", "x"],
                          geometry_type="Unknown")  # fmt: skip
    photo = write_photo(tmp_path / "photo.tif")
    with pytest.raises(GeometryTypeError) as raised:
        burn(vector, photo)
    message = str(raised.value)
    assert message.startswith(
        f"osm.gpkg: 4 feature(s) that touch photo {photo} are not polygons: 2 LineString, 1 Point, "
        "1 GeometryCollection (with LineString). Only polygons label pixels"
    )
    assert "buffer lines and points into polygons" in message and "\n" not in message


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_a_file_without_a_crs_is_named(tmp_path):
    vector = write_vector(tmp_path / "labels.gpkg", [pixel_box(0, 0, 10, 10)], ["car"], crs=None)
    with pytest.raises(VectorCrsError, match=r"^labels\.gpkg: the file does not say which CRS"):
        burn(vector, write_photo(tmp_path / "photo.tif"))


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_a_photo_without_georeference_takes_no_polygons(tmp_path):
    vector = write_vector(tmp_path / "labels.gpkg", [pixel_box(0, 0, 10, 10)], ["car"])
    photo = write_photo(tmp_path / "photo.tif", crs=None)
    with pytest.raises(UnlocatedPhotoError, match=rf"^labels\.gpkg: photo {photo}, which it should label, has no geo"):
        burn(vector, photo)
    with pytest.raises(UnlocatedPhotoError):  # placed, but on no CRS
        placed = Georeference(None, from_origin(WEST, NORTH, PIXEL, PIXEL))
        rasterise_polygons(vector, photo, placed, SHAPE, CLASSES, "class", 0)


def test_a_missing_class_field_lists_the_fields(tmp_path):
    vector = write_vector(tmp_path / "labels.gpkg", [pixel_box(0, 0, 10, 10)], ["car"], field="landuse")
    with pytest.raises(ClassFieldError, match=r"^labels\.gpkg: has no field 'class' .* its fields are: 'landuse'\."):
        burn(vector, write_photo(tmp_path / "photo.tif"))


def test_unknown_class_names_are_counted_with_the_valid_ones(tmp_path):
    shapes = [pixel_box(0, 0, 10, 10), pixel_box(10, 10, 20, 20), pixel_box(20, 20, 30, 30), pixel_box(0, 40, 9, 49)]
    vector = write_vector(tmp_path / "osm.geojson", shapes, ["forest", "car", "forest", "lake"], field="class")
    photo = write_photo(tmp_path / "photo.tif")
    with pytest.raises(UnknownClassError) as raised:
        burn(vector, photo)
    message = str(raised.value)
    assert message.startswith(
        f"osm.geojson: field 'class' holds class name(s) that the params do not name, on features that touch photo "
        f"{photo}: "
    )
    assert "'forest' (2 feature(s)), 'lake' (1 feature(s))" in message
    assert "Valid: 'impervious', 'building', 'low_vegetation', 'tree', 'car', 'clutter'." in message
    assert "\n" not in message


def test_unknown_class_values_are_counted_with_the_valid_ones(tmp_path):
    vector = write_vector(tmp_path / "labels.gpkg", [pixel_box(0, 0, 10, 10), pixel_box(10, 10, 20, 20)], [7, 2])
    with pytest.raises(
        UnknownClassError, match=r"class value\(s\) .*: 7 \(1 feature\(s\)\)\. Valid: 0 \(impervious\), "
    ):
        burn(vector, write_photo(tmp_path / "photo.tif"))


def test_polygons_that_miss_the_photo_give_both_extents(tmp_path):
    vector = write_vector(tmp_path / "labels.gpkg", [pixel_box(0, 0, 10, 10, west=WEST + 1000)], ["car"])
    photo = write_photo(tmp_path / "photo.tif")
    with pytest.raises(PolygonsMissPhotoError) as raised:
        burn(vector, photo)
    assert str(raised.value) == (
        f"labels.gpkg: no polygon touches photo {photo}: the file lies at "
        "(367682.00, 5808337.50, 367682.50, 5808338.00), the photo at (366682.00, 5808332.00, 366690.00, 5808338.00) "
        "(west, south, east, north in EPSG:25833). "
        "Check that the file covers this photo and that its CRS is right."
    )


def test_a_file_gdal_cannot_read_gives_gdals_reason(tmp_path):
    photo = write_photo(tmp_path / "photo.tif")
    (tmp_path / "labels.gpkg").write_text("not a GeoPackage")
    with pytest.raises(UnreadableVectorError, match=r"^labels\.gpkg: cannot be read .*not recognized as being in a"):
        burn(tmp_path / "labels.gpkg", photo)
    with pytest.raises(UnreadableVectorError, match=r"No such file or directory"):
        burn(tmp_path / "absent.gpkg", photo, name="labels/absent.gpkg")


def test_an_empty_file_is_said_to_hold_no_features(tmp_path):
    vector = tmp_path / "labels.gpkg"
    nothing = np.array([], dtype=object)
    raw.write(vector, nothing, [nothing], ["class"], geometry_type="Polygon", crs=CRS, driver="GPKG")
    with pytest.raises(PolygonsMissPhotoError, match=r"^labels\.gpkg: no polygon touches photo .*: the file holds no"):
        burn(vector, write_photo(tmp_path / "photo.tif"))
