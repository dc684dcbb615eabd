"""The synthetic generator: deterministic, palette-true, every class present, Potsdam-like shares."""

import cv2
import numpy as np
import pytest
import rasterio
from conftest import POTSDAM_PALETTE

from aerialseg.data.palette import Palette
from aerialseg.data.synthetic import generate_tile, tile_ids, write_dataset
from aerialseg.pipeline.paths import TileFolder
from aerialseg.raster.georef import read_georef
from aerialseg.raster.pictures import read_image, read_label


@pytest.fixture(scope="module")
def big_tiles():
    """Three 1024 px tiles as (photo, class-index map): the size the pipeline generates."""
    tiles = []
    for seed in (0, 1, 2):
        photo, label = generate_tile(seed, 1024, POTSDAM_PALETTE)
        tiles.append((photo, POTSDAM_PALETTE.rgb_to_index(label, source=f"seed {seed}")))
    return tiles


def test_same_seed_gives_same_bytes_and_another_seed_differs(palette):
    photo, label = generate_tile(7, 256, palette)
    again_photo, again_label = generate_tile(7, 256, palette)
    other_photo, other_label = generate_tile(8, 256, palette)
    assert photo.tobytes() == again_photo.tobytes() and label.tobytes() == again_label.tobytes()
    assert not np.array_equal(photo, other_photo) and not np.array_equal(label, other_label)


def test_photo_is_8bit_rgb_with_texture_and_label_uses_palette_colours_only(big_tiles, palette):
    photo, _ = big_tiles[0]
    assert photo.dtype == np.uint8 and photo.shape == (1024, 1024, 3)
    assert photo.std() > 20, "a photo needs contrast"
    _, label_rgb = generate_tile(0, 1024, palette)
    colours = np.unique(label_rgb.reshape(-1, 3), axis=0)
    assert {tuple(c) for c in colours} <= set(palette.colours)


def test_every_class_appears_in_every_big_tile(big_tiles, palette):
    for _, classes in big_tiles:
        assert set(np.unique(classes)) == set(range(palette.num_classes))


def test_class_shares_are_potsdam_like(big_tiles, palette):
    """Potsdam: impervious ~28 %, building ~26 %, low vegetation ~23 %, tree ~15 %, car ~2 %, clutter ~5 %."""
    counts = sum(np.bincount(classes.ravel(), minlength=palette.num_classes) for _, classes in big_tiles)
    share = dict(zip(palette.names, counts / counts.sum()))
    expected = {
        "impervious_surfaces": (0.18, 0.40),
        "building": (0.15, 0.38),
        "low_vegetation": (0.15, 0.40),
        "tree": (0.06, 0.25),
        "car": (0.008, 0.05),
        "clutter": (0.01, 0.09),
    }
    for name, (low, high) in expected.items():
        assert low <= share[name] <= high, f"{name}: {share[name]:.3f} not in [{low}, {high}]"


def test_cars_are_large_enough_to_learn_after_halving(big_tiles, palette):
    """Connected car blobs of at least ~8 x 16 px at half resolution, i.e. ~16 x 32 px here."""
    car = palette.names.index("car")
    _, classes = big_tiles[1]
    count, _, stats, _ = cv2.connectedComponentsWithStats((classes == car).astype(np.uint8))
    whole = stats[1:][
        (stats[1:, cv2.CC_STAT_LEFT] > 0)
        & (stats[1:, cv2.CC_STAT_TOP] > 0)
        & (stats[1:, cv2.CC_STAT_LEFT] + stats[1:, cv2.CC_STAT_WIDTH] < 1024)
        & (stats[1:, cv2.CC_STAT_TOP] + stats[1:, cv2.CC_STAT_HEIGHT] < 1024)
    ]
    assert count > 5
    short_sides = np.minimum(whole[:, cv2.CC_STAT_WIDTH], whole[:, cv2.CC_STAT_HEIGHT])
    long_sides = np.maximum(whole[:, cv2.CC_STAT_WIDTH], whole[:, cv2.CC_STAT_HEIGHT])
    assert np.median(short_sides) >= 16 and np.median(long_sides) >= 32


@pytest.mark.parametrize("size, shape", [(600, (600, 600)), (64, (64, 64)), ((300, 457), (300, 457))])
def test_any_size_is_respected(palette, size, shape):
    photo, label = generate_tile(3, size, palette)
    assert photo.shape == label.shape == (*shape, 3)
    palette.rgb_to_index(label)  # raises on any colour outside the palette


def test_label_follows_the_palette_order_and_colours_by_class_name(palette):
    """Classes are looked up by name, so a reordered, recoloured palette gives the same map."""
    order = [5, 3, 1, 0, 2, 4]
    shuffled = Palette(tuple(palette.names[i] for i in order), tuple((10 * i, 20, 30) for i in range(len(order))))
    _, label = generate_tile(11, 256, palette)
    _, shuffled_label = generate_tile(11, 256, shuffled)
    names = np.array(palette.names)[palette.rgb_to_index(label)]
    shuffled_names = np.array(shuffled.names)[shuffled.rgb_to_index(shuffled_label)]
    assert np.array_equal(names, shuffled_names)


def test_palette_without_potsdam_classes_is_refused(palette):
    with pytest.raises(ValueError, match="car"):
        generate_tile(0, 64, Palette(palette.names[:4] + ("water", "clutter"), palette.colours))


def test_tile_ids_are_potsdam_style_rows_of_five():
    assert tile_ids(7) == ["2_10", "2_11", "2_12", "2_13", "2_14", "3_10", "3_11"]


def test_write_dataset_writes_potsdam_named_8bit_rgb_tiffs(tmp_path, palette):
    out = TileFolder(tmp_path)
    ids = write_dataset(out, 3, 96, 5, palette)
    assert ids == ["2_10", "2_11", "2_12"]
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == sorted(
        f"top_potsdam_{tile}_RGB.{suffix}" for tile in ids for suffix in ("tif", "tfw")
    )
    assert sorted(p.name for p in (tmp_path / "labels").iterdir()) == [f"top_potsdam_{tile}_label.tif" for tile in ids]
    photos = []
    for tile in ids:
        with rasterio.open(out.photo(tile)) as photo:
            assert [colour.name for colour in photo.colorinterp] == ["red", "green", "blue"]
            assert photo.tags(ns="IMAGE_STRUCTURE").get("NBITS", "8") == "8"
        photos.append(read_image(out.photo(tile)))
        assert photos[-1].shape == (96, 96, 3) and photos[-1].dtype == np.uint8
        palette.rgb_to_index(read_image(out.label(tile)))  # palette colours only
        read_label(out.label(tile, "no_boundary"), palette)  # and black
    assert not np.array_equal(photos[0], photos[1]), "each tile has its own seed"


def test_write_dataset_is_reproducible_and_extending_keeps_earlier_tiles(tmp_path, palette):
    write_dataset(TileFolder(tmp_path / "a"), 2, 64, 9, palette)
    write_dataset(TileFolder(tmp_path / "b"), 3, 64, 9, palette)
    for tile in ("2_10", "2_11"):
        name = f"images/top_potsdam_{tile}_RGB.tif"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_infrared_band_sets_share_the_rgb_bands_and_vegetation_shines_in_infrared(palette):
    rgb, label = generate_tile(4, 256, palette)
    rgbir, _ = generate_tile(4, 256, palette, "RGBIR")
    irrg, _ = generate_tile(4, 256, palette, "IRRG")
    assert rgbir.shape == (256, 256, 4) and irrg.shape == (256, 256, 3)
    np.testing.assert_array_equal(rgbir[..., :3], rgb)  # the same RGB bytes, whichever set is asked for
    np.testing.assert_array_equal(irrg, rgbir[..., [3, 0, 1]])  # infrared, red, green
    classes = palette.rgb_to_index(label)
    infrared = rgbir[..., 3].astype(float)
    vegetation = np.isin(classes, [palette.names.index("tree"), palette.names.index("low_vegetation")])
    assert infrared[vegetation].mean() > infrared[~vegetation].mean() + 40


def test_tiles_lie_side_by_side_on_the_ground(tmp_path, palette):
    """Neighbouring ids are neighbouring tiles: 2_11 starts where 2_10 ends, at 5 cm per pixel."""
    write_dataset(TileFolder(tmp_path), 2, 64, 0, palette)
    first, second = (read_georef(TileFolder(tmp_path).photo(tile)).transform for tile in ("2_10", "2_11"))
    assert (first.a, first.e) == (0.05, -0.05)
    assert second @ (0, 0) == pytest.approx(first @ (0, 64))  # top of 2_11 = bottom of 2_10
