"""Cutting tiles into patches with patchify: every pixel kept, photo and label aligned."""

import numpy as np
import pytest

from aerialseg.data.patches import class_pixel_counts, count_patches, extract_patches


@pytest.mark.parametrize("height, width, size, step", [(100, 70, 32, 32), (64, 64, 32, 16), (97, 131, 48, 40)])
def test_reflect_covers_every_pixel_and_crop_drops_the_edge(height, width, size, step):
    image = np.arange(height * width).reshape(height, width)
    reflected = extract_patches(image, size, step, "reflect")
    cropped = extract_patches(image, size, step, "crop")
    assert reflected.shape[1:] == cropped.shape[1:] == (size, size)
    assert len(reflected) == count_patches(height, width, size, step, "reflect")
    assert len(cropped) == count_patches(height, width, size, step, "crop")
    assert set(np.unique(reflected)) == set(image.ravel())  # nothing lost at the edge
    assert image.max() not in cropped or (height - size) % step == 0 == (width - size) % step
    np.testing.assert_array_equal(reflected[0], image[:size, :size])


def test_photo_and_label_patches_stay_aligned():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 6, (90, 90)).astype(np.uint8)
    photo = np.stack([label * 40] * 3, axis=-1)
    photo_patches = extract_patches(photo, 32, 24, "reflect")
    label_patches = extract_patches(label, 32, 24, "reflect")
    np.testing.assert_array_equal(photo_patches[..., 0], label_patches * 40)


def test_patch_larger_than_tile_names_the_tile():
    with pytest.raises(ValueError, match=r"tile 2_10: patch size 128 is larger than the tile \(100x200\)"):
        extract_patches(np.zeros((100, 200, 3), np.uint8), 128, 128, "crop", source="tile 2_10")


def test_class_pixel_counts_skip_ignored():
    label = np.array([[0, 1, 1], [255, 5, 5]], np.uint8)
    assert class_pixel_counts(label, 6).tolist() == [1, 2, 0, 0, 0, 2]
