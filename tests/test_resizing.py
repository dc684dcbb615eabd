"""Resizing tiles: Lanczos photos, palette-true labels, sizes from scale or size, and bad input refused."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import POTSDAM_PALETTE

from aerialseg.data.manifest import read_manifest, write_manifest
from aerialseg.data.palette import UnknownColourError
from aerialseg.data.potsdam import label_name, photo_name
from aerialseg.data.resize import TileSizeError, resize_dataset, resize_label, resize_photo, target_size
from aerialseg.data.synthetic import generate_tile
from aerialseg.pipeline.paths import TileFolder
from aerialseg.raster.opening import RasterError
from aerialseg.raster.pictures import read_image, write_image


def write_raw(raw: Path, tiles: dict[str, tuple[np.ndarray, np.ndarray]]) -> TileFolder:
    """A data/raw folder as the download stage leaves it: images/, labels/ and manifest.csv."""
    folder = TileFolder(raw)
    for tile, (photo, label) in tiles.items():
        write_image(folder.photo(tile), photo)
        write_image(folder.label(tile), label)
    write_manifest(
        folder.manifest,
        [
            {"tile": tile, "height": photo.shape[0], "width": photo.shape[1], "source": "test", "pixel_size_m": 0.05}
            for tile, (photo, _) in tiles.items()
        ],
    )
    return folder


def synthetic_tiles(count: int, size) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {f"2_{10 + i}": generate_tile(i, size, POTSDAM_PALETTE) for i in range(count)}


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "size_hw, scale, size, expected",
    [
        ((1024, 600), 0.5, None, (512, 300)),
        ((200, 201), 0.37, None, (74, 74)),
        ((200, 200), 0.5, (50, 70), (50, 70)),  # size wins over scale
        ((3, 3), 0.01, None, (1, 1)),  # never empty
    ],
)
def test_target_size_from_scale_or_size(size_hw, scale, size, expected):
    assert target_size(size_hw, scale, size) == expected


def test_target_size_needs_a_scale_or_a_size():
    with pytest.raises(ValueError, match="scale"):
        target_size((10, 10), None, None)


def test_photo_uses_lanczos_and_label_exact_nearest():
    photo, label = generate_tile(4, 200, POTSDAM_PALETTE)
    small_photo, small_label = resize_photo(photo, (74, 90)), resize_label(label, (74, 90))
    assert small_photo.shape == (74, 90, 3) and small_label.shape == (74, 90, 3)
    assert np.array_equal(small_photo, cv2.resize(photo, (90, 74), interpolation=cv2.INTER_LANCZOS4))
    assert not np.array_equal(small_photo, cv2.resize(photo, (90, 74), interpolation=cv2.INTER_LINEAR))
    assert np.array_equal(small_label, cv2.resize(label, (90, 74), interpolation=cv2.INTER_NEAREST_EXACT))
    index = POTSDAM_PALETTE.rgb_to_index(label)
    assert np.array_equal(resize_label(index, (74, 90)), POTSDAM_PALETTE.rgb_to_index(small_label))


@pytest.mark.parametrize("scale", [0.5, 0.37])
def test_resize_dataset_keeps_palette_colours_and_writes_a_manifest(tmp_path, scale):
    tiles = synthetic_tiles(2, 256)
    resized = TileFolder(tmp_path / "resized")
    raw = write_raw(tmp_path / "raw", tiles)
    manifest = resize_dataset(raw, resized, POTSDAM_PALETTE, scale=scale, workers=2)
    side = round(256 * scale)
    pixel_size = 0.05 * 256 / side  # the ground size of a pixel, scaled with the side rounded to whole pixels
    assert manifest.to_dict("records") == [
        {"tile": t, "height": side, "width": side, "source": "test", "pixel_size_m": pixel_size} for t in tiles
    ]
    assert read_manifest(resized.manifest).equals(manifest)
    for tile, (photo, label) in tiles.items():
        small_photo = read_image(resized.photo(tile))
        small_label = read_image(resized.label(tile))
        assert np.array_equal(small_photo, resize_photo(photo, (side, side)))
        colours = {tuple(c) for c in np.unique(small_label.reshape(-1, 3), axis=0)}
        original = {tuple(c) for c in np.unique(label.reshape(-1, 3), axis=0)}
        assert colours <= original <= set(POTSDAM_PALETTE.colours) and len(colours) >= 3  # no blended colours


def test_size_parameter_gives_every_tile_that_size(tmp_path):
    resized = TileFolder(tmp_path / "resized")
    raw = write_raw(
        tmp_path / "raw",
        {"2_10": generate_tile(0, (120, 90), POTSDAM_PALETTE), "3_11": generate_tile(1, 64, POTSDAM_PALETTE)},
    )
    manifest = resize_dataset(raw, resized, POTSDAM_PALETTE, scale=0.5, size=(48, 80), workers=1)
    assert list(zip(manifest["height"], manifest["width"])) == [(48, 80), (48, 80)]
    for tile in ("2_10", "3_11"):
        assert read_image(resized.photo(tile)).shape == (48, 80, 3)
        assert read_image(resized.label(tile)).shape == (48, 80, 3)


def test_photo_and_label_of_different_size_are_refused_naming_both(tmp_path):
    photo, _ = generate_tile(0, 64, POTSDAM_PALETTE)
    _, label = generate_tile(0, (64, 80), POTSDAM_PALETTE)
    resized = TileFolder(tmp_path / "resized")
    raw = write_raw(tmp_path / "raw", {"2_10": (photo, label)})
    with pytest.raises(TileSizeError) as error:
        resize_dataset(raw, resized, POTSDAM_PALETTE, scale=0.5, workers=1)
    message = str(error.value)
    assert photo_name("2_10") in message and label_name("2_10") in message
    assert "64x64" in message and "80x64" in message
    assert not resized.path.exists()


def test_unknown_label_colour_is_refused_naming_the_file_unless_ignored(tmp_path):
    photo, label = generate_tile(0, 64, POTSDAM_PALETTE)
    label[:8, :8] = (12, 34, 56)
    resized = TileFolder(tmp_path / "resized")
    raw = write_raw(tmp_path / "raw", {"2_10": (photo, label)})
    with pytest.raises(UnknownColourError, match=rf"{label_name('2_10')}.*\(12, 34, 56\)"):
        resize_dataset(raw, resized, POTSDAM_PALETTE, scale=0.5, workers=1)
    resize_dataset(raw, resized, POTSDAM_PALETTE, scale=0.5, ignore_unknown=True, workers=1)
    assert (read_image(resized.label("2_10"))[:4, :4] == (12, 34, 56)).all()


def test_truncated_photo_is_named_and_old_output_is_kept(tmp_path):
    resized = TileFolder(tmp_path / "resized")
    raw = write_raw(tmp_path / "raw", synthetic_tiles(3, 96))
    resize_dataset(raw, resized, POTSDAM_PALETTE, scale=0.5, workers=2)
    before = folder_bytes(resized.path)
    broken = raw.photo("2_11")
    broken.write_bytes(broken.read_bytes()[:500])
    with pytest.raises(RasterError, match=photo_name("2_11")):
        resize_dataset(raw, resized, POTSDAM_PALETTE, scale=0.25, workers=2)
    assert folder_bytes(resized.path) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


def test_missing_manifest_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.csv"):
        resize_dataset(TileFolder(tmp_path / "raw"), TileFolder(tmp_path / "resized"), POTSDAM_PALETTE, scale=0.5)
