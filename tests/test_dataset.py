import numpy as np
import pytest

from aerialseg.dataset import PatchDataError, PatchSequence, augment_d4, open_patches


def write_patches(folder, n=10, size=8, classes=6):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, (n, size, size)).astype(np.uint8)
    images = np.stack([labels * 40, labels * 40 + 1, labels * 40 + 2], axis=-1).astype(np.uint8)
    np.save(folder / "images.npy", images)
    np.save(folder / "labels.npy", labels)
    return folder / "images.npy", folder / "labels.npy"


def test_missing_and_empty_arrays_are_named(tmp_path):
    images, labels = write_patches(tmp_path)
    with pytest.raises(PatchDataError, match="nothere.npy: no such file"):
        open_patches(tmp_path / "nothere.npy", labels, 6)
    np.save(tmp_path / "empty.npy", np.zeros((0, 8, 8), np.uint8))
    with pytest.raises(PatchDataError, match="empty.npy: holds no patches"):
        open_patches(images, tmp_path / "empty.npy", 6)
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(PatchDataError, match="junk.npy"):
        open_patches(tmp_path / "junk.npy", labels, 6)


def test_class_count_mismatch(tmp_path):
    images, labels = write_patches(tmp_path, classes=6)
    with pytest.raises(PatchDataError, match=r"class indices \[4, 5\] but params name 4 classes"):
        open_patches(images, labels, 4)


def test_batches_are_memory_mapped_uint8_and_aligned(tmp_path):
    images, labels = open_patches(*write_patches(tmp_path), 6)
    assert isinstance(images, np.memmap)
    sequence = PatchSequence(images, labels, batch_size=4, shuffle=True, augment=True, seed=1)
    assert len(sequence) == 3
    seen = 0
    for i in range(len(sequence)):
        x, y = sequence[i]
        assert x.dtype == np.uint8 and y.dtype == np.uint8  # the model's input layer casts to float
        np.testing.assert_array_equal(x[..., 0], y * 40)  # augmentation moved photo and label together
        seen += len(x)
    assert seen == 10


def test_epoch_order_depends_only_on_seed_and_epoch(tmp_path):
    images, labels = open_patches(*write_patches(tmp_path, n=40), 6)
    uninterrupted = PatchSequence(images, labels, 8, shuffle=True, augment=True, seed=5)
    uninterrupted.on_epoch_end()
    uninterrupted.on_epoch_end()
    resumed = PatchSequence(images, labels, 8, shuffle=True, augment=True, seed=5, first_epoch=2)
    for i in range(len(resumed)):
        np.testing.assert_array_equal(resumed[i][0], uninterrupted[i][0])
    first_epoch = PatchSequence(images, labels, 8, shuffle=True, seed=5)
    assert not np.array_equal(first_epoch[0][1], resumed[0][1])


def test_d4_augmentation_uses_all_eight_transforms():
    patch = np.arange(16, dtype=np.uint8).reshape(1, 4, 4)
    images = np.repeat(patch[..., None], 3, axis=-1).repeat(200, axis=0)
    augmented, labels = augment_d4(images, patch.repeat(200, axis=0), np.random.default_rng(0))
    assert len({a[..., 0].tobytes() for a in augmented}) == 8
    np.testing.assert_array_equal(augmented[..., 0], labels)


def test_each_sample_gets_the_symmetry_it_drew_as_one_at_a_time_would():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (64, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 6, (64, 8, 8), dtype=np.uint8)
    augmented, augmented_labels = augment_d4(images, labels, np.random.default_rng(9))
    draws = np.random.default_rng(9)
    turns, flips = draws.integers(0, 4, 64), draws.integers(0, 2, 64)
    for i in range(64):
        expected = np.rot90(images[i], turns[i])
        expected_label = np.rot90(labels[i], turns[i])
        if flips[i]:
            expected, expected_label = expected[:, ::-1], expected_label[:, ::-1]
        np.testing.assert_array_equal(augmented[i], expected)
        np.testing.assert_array_equal(augmented_labels[i], expected_label)
