"""Ground resolution: a tile's metres per pixel (CRS in metres or degrees, layout, data.pixel_size),
resize.pixel_size bringing tiles of different resolutions to one, and what the training records."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from conftest import repo_params
from rasterio.crs import CRS

from aerialseg.data.resize import resize_dataset
from aerialseg.data.resolution import KnownSizes, TrainingResolution, UnknownResolutionError, tile_pixel_size
from aerialseg.data.sources import download_raw
from aerialseg.pipeline.paths import Layout
from aerialseg.raster.georef import Georeference, PixelSizeError, ground_pixel_size, read_georef
from aerialseg.raster.pictures import image_profile, read_image, write_image

UTM = CRS.from_epsg(25833)
METRES_PER_DEGREE_OF_LATITUDE_AT_50 = 111_229.0  # the meridian arc on WGS84 at 50 degrees north


def write_photo(path, side: int, georef: Georeference | None = None) -> None:
    write_image(path, np.full((side, side, 3), 100, np.uint8), georef)


def test_a_projected_geotiff_gives_its_pixel_width(tmp_path):
    write_photo(tmp_path / "a.tif", 8, Georeference(UTM, Affine(0.1, 0, 366_000, 0, -0.1, 5_812_000)))
    assert tile_pixel_size("a", tmp_path / "a.tif", (8, 8), KnownSizes(layout=0.05, data=0.3)) == 0.1


def test_a_geographic_crs_is_measured_at_the_photo_centre():
    """1e-6 degrees of latitude at 50 degrees north, and as many metres of longitude."""
    degrees = 1e-6
    transform = Affine(degrees / math.cos(math.radians(50)), 0, 10.0, 0, -degrees, 50.0 + 50 * degrees)
    size = ground_pixel_size(Georeference(CRS.from_epsg(4326), transform), (100, 100), "photo")
    assert size == pytest.approx(METRES_PER_DEGREE_OF_LATITUDE_AT_50 * degrees, rel=0.01)


@pytest.mark.parametrize(
    "transform, fragment",
    [(Affine(0.1, 0.01, 0, 0.01, -0.1, 0), "rotated"), (Affine(0.1, 0, 0, 0, -0.2, 0), "not square")],
)
def test_a_rotated_or_non_square_pixel_is_refused(transform, fragment):
    with pytest.raises(PixelSizeError, match=rf"^photo: .*{fragment}[^\n]*$"):
        ground_pixel_size(Georeference(UTM, transform), (10, 10), "photo")


def test_a_world_file_without_crs_leaves_data_pixel_size_then_the_layouts_value(tmp_path):
    """A world file has no unit: Potsdam's synthetic tiles get the layout's 5 cm, unless the user
    says otherwise (their own 30 cm tiles named as Potsdam's)."""
    write_photo(tmp_path / "a.tif", 8, Georeference(None, Affine(0.05, 0, 0, 0, -0.05, 0), world_file=True))
    assert read_georef(tmp_path / "a.tif").world_file
    assert tile_pixel_size("a", tmp_path / "a.tif", (8, 8), KnownSizes(layout=0.05, data=0.3)) == 0.3
    assert tile_pixel_size("a", tmp_path / "a.tif", (8, 8), KnownSizes(layout=0.05)) == 0.05
    assert tile_pixel_size("a", tmp_path / "a.tif", (8, 8), KnownSizes()) is None


def test_an_unknown_resolution_is_refused_only_when_one_is_asked_for(tmp_path):
    write_photo(tmp_path / "a.tif", 8)
    with pytest.raises(UnknownResolutionError, match=r"^tile a: .* set data\.pixel_size[^\n]*$"):
        tile_pixel_size("a", tmp_path / "a.tif", (8, 8), KnownSizes(required=True))


def write_pairs(root, sizes_m: dict[str, float], ground_m: float = 12.8, crs: CRS | None = UTM) -> None:
    """Photos of the same ground (``ground_m`` wide) at each resolution, in ``crs``, with index labels."""
    rng = np.random.default_rng(0)
    for number, (stem, size_m) in enumerate(sizes_m.items()):
        side = round(ground_m / size_m)
        photo = rng.integers(0, 255, (side, side, 3), np.uint8)
        profile = image_profile(photo, "GTiff")
        profile.update(crs=crs, transform=Affine(size_m, 0, 366_000 + 100 * number, 0, -size_m, 5_812_000))
        (root / "images").mkdir(parents=True, exist_ok=True)
        with rasterio.open(root / "images" / f"{stem}.tif", "w", **profile) as dataset:
            dataset.write(np.moveaxis(photo, -1, 0))
        write_image(root / "masks" / f"{stem}.png", rng.integers(0, 6, (side, side), np.uint8))


def pairs_params(pixel_size: float | None = None, data_pixel_size: float | None = None):
    data = {"layout": "pairs", "source": "local", "pixel_size": data_pixel_size}
    resize = {"scale": None, "pixel_size": pixel_size}
    return repo_params({"data": data, "resize": resize, "evaluate": {"labels": "full"}})


def test_photos_of_two_resolutions_are_resized_to_the_one_asked(tmp_path):
    write_pairs(tmp_path, {"fine": 0.1, "coarse": 0.2})
    params, layout = pairs_params(pixel_size=0.2), Layout(tmp_path)
    raw = download_raw(layout, params.data, params.palette, "full", resolution_required=True)
    assert dict(zip(raw["tile"], raw["pixel_size_m"])) == {"fine": 0.1, "coarse": 0.2}
    resized = resize_dataset(layout.raw, layout.resized, params.palette, pixel_size=0.2, workers=1)
    assert sorted(resized[["tile", "height", "width", "pixel_size_m"]].values.tolist()) == [
        ["coarse", 64, 64, 0.2],
        ["fine", 64, 64, 0.2],
    ]
    for tile in ("fine", "coarse"):
        transform = read_georef(layout.resized.photo(tile)).transform
        assert (transform.a, transform.e) == pytest.approx((0.2, -0.2))
        assert read_image(layout.resized.photo(tile)).shape == (64, 64, 3)


def test_a_size_of_another_aspect_leaves_the_resolution_unknown(tmp_path):
    """resize.size [h, w] that stretches one side more than the other makes pixels that are not
    square: no one metres per pixel can be recorded for the model."""
    write_pairs(tmp_path, {"fine": 0.1})
    params, layout = pairs_params(pixel_size=0.2), Layout(tmp_path)  # resize_dataset is given the size below
    download_raw(layout, params.data, params.palette, "full")
    square = resize_dataset(layout.raw, layout.resized, params.palette, size=(64, 64), workers=1)
    assert square["pixel_size_m"].tolist() == [0.2]
    stretched = resize_dataset(layout.raw, layout.resized, params.palette, size=(64, 32), workers=1)
    assert stretched["pixel_size_m"].isna().all()


def test_a_tile_of_unknown_resolution_is_refused_at_download_and_at_resize(tmp_path):
    write_pairs(tmp_path, {"fine": 0.1}, crs=None)  # a photo that carries no resolution
    params, layout = pairs_params(pixel_size=0.2), Layout(tmp_path)
    with pytest.raises(UnknownResolutionError, match="tile fine: .*data.pixel_size"):
        download_raw(layout, params.data, params.palette, "full", resolution_required=True)
    assert not layout.raw.path.exists()  # nothing half done
    download_raw(layout, params.data, params.palette, "full")  # resized by scale or size: no resolution needed
    with pytest.raises(UnknownResolutionError, match="tile fine: .*data.pixel_size"):
        resize_dataset(layout.raw, layout.resized, params.palette, pixel_size=0.2, workers=1)
    params = pairs_params(pixel_size=0.2, data_pixel_size=0.1)
    raw = download_raw(layout, params.data, params.palette, "full", resolution_required=True)
    assert raw["pixel_size_m"].tolist() == [0.1]


def manifest(sizes: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"tile": list(sizes), "pixel_size_m": list(sizes.values())})


def test_the_training_resolution_is_the_median_and_range_warned_of_when_wide():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        steady = TrainingResolution.of(manifest({"a": 0.2, "b": 0.2, "c": 0.201, "d": 0.5}), ["a", "b", "c"])
    assert steady.summary() == {"pixel_size_m": 0.2, "pixel_size_min_m": 0.2, "pixel_size_max_m": 0.201}
    with pytest.warns(UserWarning, match="from 0.1 to 0.5 m per pixel"):
        TrainingResolution.of(manifest({"a": 0.1, "b": 0.2, "d": 0.5}), ["a", "b", "d"])
    unknown = TrainingResolution.of(manifest({"a": 0.1, "b": float("nan")}), ["a", "b"])
    assert unknown.summary() == {"pixel_size_m": None, "pixel_size_min_m": None, "pixel_size_max_m": None}


def test_a_crs_without_a_geotransform_gives_no_pixel_size():
    """GDAL's identity transform is no position: 1 m pixels would make a 5 cm model resample 20x."""
    assert ground_pixel_size(Georeference(UTM, Affine.identity()), (8, 8), "a.tif") is None
