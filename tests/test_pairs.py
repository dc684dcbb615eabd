"""The pairs layout on real files: finding pairs, every download check, and what data/raw holds after."""

import re

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import POTSDAM_PALETTE, repo_params
from rasterio.crs import CRS

from aerialseg.data.labels import LabelValueError
from aerialseg.data.pairs import PairsError, find_pairs
from aerialseg.data.palette import Palette
from aerialseg.data.potsdam import label_name, parse_tile_name, photo_name, tile_order
from aerialseg.data.sources import download_raw
from aerialseg.data.tileset import DatasetError
from aerialseg.pipeline.params import PairsSource
from aerialseg.pipeline.paths import Layout
from aerialseg.raster.georef import allow_plain, read_georef
from aerialseg.raster.pictures import read_image, read_label, write_image
from aerialseg.testing.pairs_folder import CRS_EPSG, write_pairs_folder

SIZE = 48


def download(root, scored="full", **pairs):
    """Run the download stage's work on the pairs folder in ``root`` with these data.pairs keys."""
    data = {"layout": "pairs", "source": "local", "pairs": pairs}
    params = repo_params({"data": data, "evaluate": {"labels": "full"}})
    return download_raw(Layout(root), params.data, params.palette, scored)


def touch(root, *names):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


# --- tile ids ----------------------------------------------------------------------------------


def test_any_tile_id_is_parsed_from_the_stored_names():
    for tile in ("2_10", "image_001", "area1", "x_label", "a.b-c"):
        assert parse_tile_name(photo_name(tile, "IRRG")) == (tile, "IRRG", False)
        assert parse_tile_name(label_name(tile, "no_boundary")) == (tile, "label_noBoundary", False)


def test_tile_ids_sort_naturally():
    ids = ["image_10", "2_10", "image_2", "2_9", "area10", "area2", "10_1"]
    assert sorted(ids, key=tile_order) == ["2_9", "2_10", "10_1", "area2", "area10", "image_2", "image_10"]


# --- finding pairs -------------------------------------------------------------------------------


def test_pairs_are_found_by_glob_and_template_in_natural_order(tmp_path):
    touch(tmp_path, "images/image_10.tif", "images/image_2.tif", "labels/image_10_mask.tif", "labels/image_2_mask.tif")
    pairs = find_pairs(PairsSource(photos="images/*.tif", labels="labels/{stem}_mask.tif"), tmp_path)
    assert list(pairs) == ["image_2", "image_10"]
    assert pairs["image_2"].photo == tmp_path / "images/image_2.tif"
    assert pairs["image_2"].label == tmp_path / "labels/image_2_mask.tif"


def test_an_absolute_glob_and_labels_beside_the_photos(tmp_path):
    touch(tmp_path, "data/a.tif", "data/a_label.tif", "data/b.tif", "data/b_label.tif")
    pairs = find_pairs(PairsSource(photos=f"{tmp_path}/data/*.tif", labels="data/{stem}_label.tif"), tmp_path)
    assert list(pairs) == ["a", "b"]  # the labels the photo glob also matched are no photos


def test_excluded_tiles_are_left_out_and_must_exist(tmp_path):
    touch(tmp_path, "images/a.tif", "images/b.tif", "masks/a.png", "masks/b.png")
    assert list(find_pairs(PairsSource(), tmp_path, frozenset({"b"}))) == ["a"]
    with pytest.raises(
        DatasetError, match=r"data.exclude names tile\(s\) \['c'\] that data.pairs.photos .* \(its tiles: a, b\)"
    ):
        find_pairs(PairsSource(), tmp_path, frozenset({"c"}))


def test_a_glob_that_matches_nothing_says_what_the_folder_holds(tmp_path):
    touch(tmp_path, "images/a.png", "images/b.png", "images/c.png", "images/notes.txt", "images/old/x.png")
    with pytest.raises(PairsError) as error:
        find_pairs(PairsSource(photos="images/*.tif"), tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert f"data.pairs.photos 'images/*.tif' matches no photo below {tmp_path}" in message
    assert f"{tmp_path / 'images'} holds 3 .png, 1 .txt, 1 folder(s) (a.png, b.png, c.png, notes.txt, old)" in message
    assert "Set data.pairs.photos to a glob of the photos (e.g. 'images/*.png')" in message
    assert "or data.layout to potsdam" in message


def test_a_glob_into_a_missing_folder_says_so(tmp_path):
    with pytest.raises(PairsError, match=rf"there is no folder {re.escape(str(tmp_path / 'photos'))}"):
        find_pairs(PairsSource(photos="photos/**/*.tif"), tmp_path)


def test_photos_and_labels_without_partners_are_listed(tmp_path):
    touch(tmp_path, "images/a.tif", "images/b.tif", "masks/a.png", "masks/z.png", "masks/y.png")
    with pytest.raises(PairsError) as error:
        find_pairs(PairsSource(), tmp_path)
    message = str(error.value)
    assert (
        "data.pairs.photos 'images/*.tif') and labels (data.pairs.labels 'masks/{stem}.png') do not pair up" in message
    )
    assert f"photo(s) without a label: {tmp_path}/images/b.tif (no {tmp_path}/masks/b.png)" in message
    assert f"label(s) without a photo: {tmp_path}/masks/y.png, {tmp_path}/masks/z.png" in message


def test_two_photos_of_one_stem_are_listed(tmp_path):
    touch(tmp_path, "images/a.tif", "images/a.png", "masks/a.png")
    with pytest.raises(PairsError, match=r"photos with the same stem, which is the tile id: a \(.*a.png, .*a.tif\)"):
        find_pairs(PairsSource(photos="images/a.*"), tmp_path)


def test_a_stem_that_is_no_tile_id_is_named(tmp_path):
    touch(tmp_path, "images/my photo.tif", "masks/my photo.png")
    with pytest.raises(PairsError, match=r"photo\(s\) whose name is no tile id .*images/my photo.tif; rename them"):
        find_pairs(PairsSource(), tmp_path)


# --- the download stage on a pairs folder ----------------------------------------------------------


def test_index_labels_with_an_ignore_value_are_stored_as_colours_with_black(tmp_path):
    truths = write_pairs_folder(
        tmp_path, ["image_2", "image_10"], SIZE, label_values=[10, 20, 30, 40, 50, 60], ignore_value=255, ignore_rows=5
    )
    manifest = download(tmp_path, label_values=[10, 20, 30, 40, 50, 60], ignore_value=255)
    assert manifest.to_dict("records") == [
        {"tile": tile, "height": SIZE, "width": SIZE, "source": "local", "pixel_size_m": None}
        for tile in ("image_2", "image_10")
    ]
    raw = Layout(tmp_path).raw
    for tile, truth in truths.items():
        np.testing.assert_array_equal(read_label(raw.label(tile), POTSDAM_PALETTE), truth)
        assert (read_image(raw.label(tile))[:5] == 0).all()  # ignored pixels are black
        np.testing.assert_array_equal(read_image(raw.photo(tile)), read_image(tmp_path / f"images/{tile}.tif"))
    assert sorted(path.name for path in (tmp_path / "data/raw").iterdir()) == ["images", "labels", "manifest.csv"]


def test_colour_labels_of_another_palette_and_a_georeferenced_lzw_photo(tmp_path):
    colours = Palette(tuple("abcdef"), ((9, 9, 9), (200, 0, 0), (0, 200, 0), (0, 0, 200), (99, 99, 0), (0, 99, 99)))
    truths = write_pairs_folder(
        tmp_path,
        ["area1"],
        SIZE,
        colours=colours,
        ignore_value=(0, 0, 0),
        ignore_rows=3,
        georeferenced=True,
        compress=True,
    )
    with rasterio.open(tmp_path / "images/area1.tif") as photo:
        assert photo.compression.name == "lzw"
    params = repo_params({"data": {"layout": "pairs", "source": "local"}})
    data = params.data.model_copy(update={"pairs": PairsSource(label_encoding="colour", ignore_value=(0, 0, 0))})
    download_raw(Layout(tmp_path), data, colours, "full")  # the palette of params.yaml's classes
    raw = Layout(tmp_path).raw
    np.testing.assert_array_equal(read_label(raw.label("area1"), colours), truths["area1"])
    georef = read_georef(raw.photo("area1"))
    assert georef.crs == CRS.from_epsg(CRS_EPSG) and georef.transform == Affine(0.1, 0, 366_000, 0, -0.1, 5_812_000)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".jp2"])
def test_photos_of_any_format_gdal_reads(tmp_path, suffix):
    write_pairs_folder(tmp_path, ["a"], SIZE)
    photo = read_image(tmp_path / "images/a.tif")
    (tmp_path / "images/a.tif").unlink()
    with allow_plain(), rasterio.open(tmp_path / f"images/a{suffix}", "w", **_profile(suffix, photo)) as out:
        out.write(np.moveaxis(photo, -1, 0))
    download(tmp_path, photos=f"images/*{suffix}")
    stored = read_image(Layout(tmp_path).raw.photo("a"))
    assert stored.shape == photo.shape
    if suffix != ".jpg":  # lossless
        np.testing.assert_array_equal(stored, photo)


def _profile(suffix: str, photo: np.ndarray) -> dict:
    driver = {".png": "PNG", ".jpg": "JPEG", ".jp2": "JP2OpenJPEG"}[suffix]
    profile = dict(driver=driver, height=photo.shape[0], width=photo.shape[1], count=3, dtype="uint8")
    return profile | ({"QUALITY": "100", "REVERSIBLE": "YES"} if driver == "JP2OpenJPEG" else {})


def test_a_label_of_another_size_is_refused_naming_both(tmp_path):
    write_pairs_folder(tmp_path, ["a"], SIZE)
    label = tmp_path / "masks/a.png"
    write_image(label, read_image(label)[:40])
    with pytest.raises(PairsError) as error:
        download(tmp_path)
    message = str(error.value)
    assert f"label {label} does not lie on its photo {tmp_path}/images/a.tif: 48x40 px against 48x48 px" in message
    assert not (tmp_path / "data/raw").exists()


@pytest.mark.parametrize(
    "shifted, fragment",
    [
        ({"crs": CRS.from_epsg(32633)}, "CRS EPSG:32633 against EPSG:25833"),
        ({"transform": Affine(0.1, 0, 366_010, 0, -0.1, 5_812_000)}, "transform (0.1, 0.0, 366010.0"),
    ],
)
def test_a_georeferenced_label_off_its_photo_is_refused(tmp_path, shifted, fragment):
    write_pairs_folder(tmp_path, ["a"], SIZE, georeferenced=True)
    label = read_image(tmp_path / "masks/a.png")
    (tmp_path / "masks/a.png").unlink()
    profile = dict(driver="GTiff", height=SIZE, width=SIZE, count=1, dtype="uint8")
    profile |= {"crs": CRS.from_epsg(CRS_EPSG), "transform": Affine(0.1, 0, 366_000, 0, -0.1, 5_812_000)} | shifted
    with rasterio.open(tmp_path / "masks/a.tif", "w", **profile) as out:
        out.write(label[..., 0], 1)
    with pytest.raises(PairsError, match=re.escape(fragment)):
        download(tmp_path, labels="masks/{stem}.tif")


DEGREE = 1e-6  # a pixel of about 7 cm x 11 cm at this latitude
IN_DEGREES = Affine(DEGREE, 0, 13.06, 0, -DEGREE, 52.4)  # Potsdam, in EPSG:4326


def in_degrees(path, pixels: np.ndarray, transform: Affine) -> None:
    """A GeoTIFF of ``pixels`` in EPSG:4326 with ``transform``."""
    bands = pixels.reshape(*pixels.shape[:2], -1)
    profile = dict(driver="GTiff", height=bands.shape[0], width=bands.shape[1], count=bands.shape[2], dtype="uint8")
    with rasterio.open(path, "w", crs=CRS.from_epsg(4326), transform=transform, **profile) as out:
        out.write(np.moveaxis(bands, -1, 0))


def degree_pair(root, label_transform: Affine) -> None:
    """A pair in degrees, the photo at IN_DEGREES, its label (masks/a.tif) at ``label_transform``."""
    write_pairs_folder(root, ["a"], SIZE)
    in_degrees(root / "images/a.tif", read_image(root / "images/a.tif"), IN_DEGREES)
    in_degrees(root / "masks/a.tif", read_image(root / "masks/a.png"), label_transform)
    (root / "masks/a.png").unlink()


@pytest.mark.parametrize(
    "label_transform, apart",
    [
        (IN_DEGREES @ Affine.translation(8, 0), "up to 8 px apart"),  # shifted by 8 pixels: 8e-6 degrees
        (IN_DEGREES @ Affine.scale(2), "up to 67.9 px apart"),  # as large, at twice the pixel size
    ],
)
def test_a_label_off_its_photo_in_degrees_is_refused_in_one_line(tmp_path, label_transform, apart):
    """Pixels of 1e-6 degrees lie within Affine.almost_equals' 1e-5: the grids are compared in pixels."""
    degree_pair(tmp_path, label_transform)
    with pytest.raises(PairsError) as error:
        download(tmp_path, labels="masks/{stem}.tif")
    message = str(error.value)
    assert message.startswith(f"label {tmp_path}/masks/a.tif does not lie on its photo {tmp_path}/images/a.tif: ")
    assert apart in message and "\n" not in message
    assert not (tmp_path / "data/raw").exists()


def test_a_label_on_its_photo_in_degrees_is_taken(tmp_path):
    """The same grid, within rounding (a thousandth of a pixel), is the photo's."""
    degree_pair(tmp_path, IN_DEGREES @ Affine.translation(0.001, -0.001))
    download(tmp_path, labels="masks/{stem}.tif")
    assert read_georef(Layout(tmp_path).raw.label("a")).transform == IN_DEGREES


def test_a_plain_label_of_the_right_size_fits_a_georeferenced_photo(tmp_path):
    write_pairs_folder(tmp_path, ["a"], SIZE, georeferenced=True)
    download(tmp_path)
    assert read_georef(Layout(tmp_path).raw.label("a")).crs == CRS.from_epsg(CRS_EPSG)


def test_a_label_value_that_is_no_class_is_located(tmp_path):
    write_pairs_folder(tmp_path, ["a"], SIZE)
    label = read_image(tmp_path / "masks/a.png")
    label[7, 9] = label[8, 1] = 42
    write_image(tmp_path / "masks/a.png", label)
    with pytest.raises(
        LabelValueError, match=r"a.png: 2 px have 1 index value\(s\) .*: 42: 2 px; the first at row 7, col 9"
    ):
        download(tmp_path)


def test_the_bands_asked_for_must_be_the_photos(tmp_path):
    write_pairs_folder(tmp_path, ["a"], SIZE)
    params = repo_params({"data": {"layout": "pairs", "source": "local", "bands": "rgbir"}})
    with pytest.raises(
        PairsError, match=r"images/a.tif has 3 band\(s\), but data.bands rgbir is 4 \(RGBIR\): set data.b"
    ):
        download_raw(Layout(tmp_path), params.data, params.palette, "full")


def described(path, pixels: np.ndarray, names: list[str]) -> None:
    """A GeoTIFF whose bands (in file order) are described as ``names``, as QGIS or GDAL write them."""
    profile = dict(driver="GTiff", height=pixels.shape[0], width=pixels.shape[1], count=len(names), dtype="uint8")
    with allow_plain(), rasterio.open(path, "w", photometric="MINISBLACK", **profile) as dataset:
        dataset.write(np.moveaxis(pixels, -1, 0))
        for band, name in enumerate(names, 1):
            dataset.set_band_description(band, name)


def test_a_photo_whose_bands_are_described_is_stored_in_the_order_of_data_bands(tmp_path):
    """A B, G, R photo trains as R, G, B: aerialseg-predict will read its bands by name too."""
    write_pairs_folder(tmp_path, ["a"], SIZE)
    rgb = read_image(tmp_path / "images/a.tif")
    described(tmp_path / "images/a.tif", rgb[..., ::-1], ["blue", "green", "red"])
    download(tmp_path)
    np.testing.assert_array_equal(read_image(Layout(tmp_path).raw.photo("a", "RGB")), rgb)


def test_described_bands_without_those_of_data_bands_are_refused(tmp_path):
    write_pairs_folder(tmp_path, ["a"], SIZE)
    described(tmp_path / "images/a.tif", read_image(tmp_path / "images/a.tif"), ["NIR", "red", "green"])
    with pytest.raises(PairsError, match=r"described as IR, R, G, but data.bands rgb takes R, G, B \(no B\)"):
        download(tmp_path)


def test_boundary_free_scores_are_refused_before_anything_is_read(tmp_path):
    write_pairs_folder(tmp_path, ["a"], SIZE)
    with pytest.raises(DatasetError, match=r"evaluate.labels is no_boundary, but .* never has them\): set evaluate.la"):
        download(tmp_path, scored="no_boundary")
    assert not (tmp_path / "data/raw").exists()


def test_the_potsdam_layout_on_a_folder_of_pairs_points_to_the_pairs_layout(tmp_path):
    write_image(tmp_path / "in/image_001.tif", np.zeros((8, 8, 3), np.uint8))
    write_image(tmp_path / "in/mask_001.png", np.zeros((8, 8), np.uint8))
    params = repo_params({"data": {"source": "local", "local": {"paths": [str(tmp_path / "in")]}}})
    with pytest.raises(DatasetError) as error:
        download_raw(Layout(tmp_path), params.data, params.palette, "full")
    message = str(error.value)
    assert f"{tmp_path / 'in'} holds 1 .png, 1 .tif (image_001.tif, mask_001.png)" in message
    assert "set data.layout: pairs with data.pairs.photos" in message and "data.pairs.labels" in message


# --- polygon labels --------------------------------------------------------------------------------


def test_one_vector_file_may_label_every_photo_but_a_picture_needs_its_stem():
    assert PairsSource(labels="labels.gpkg").labels == "labels.gpkg"
    with pytest.raises(ValueError, match=r"only a vector file of polygons, e.g. 'labels.gpkg', may serve every photo"):
        PairsSource(labels="labels.png")


def test_polygons_cannot_label_a_photo_without_a_crs(tmp_path):
    write_pairs_folder(tmp_path, ["plain"], SIZE)  # photos without georeferencing
    touch(tmp_path, "labels.gpkg")
    with pytest.raises(PairsError, match=r"^photo .*plain\.tif has no CRS, so the polygons of .*labels\.gpkg cannot"):
        download(tmp_path, labels="labels.gpkg")


def test_a_background_that_is_no_class_is_refused_by_its_key():
    with pytest.raises(ValueError, match=r"data.pairs.background 'sea' is not among the classes"):
        repo_params({"data": {"layout": "pairs", "source": "local", "pairs": {"background": "sea"}}})
