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


def test_every_batch_splits_evenly_over_the_devices(tmp_path):
    """A short last batch is cut to a multiple of the device count, or left out below it."""
    images, labels = open_patches(*write_patches(tmp_path, n=11), 6)
    for devices, sizes in ((1, [4, 4, 3]), (2, [4, 4, 2]), (4, [4, 4])):
        sequence = PatchSequence(images, labels, 4, shuffle=True, devices=devices)
        assert [len(batch) for batch, _ in sequence] == sizes


def test_the_parts_of_all_processes_are_the_batch_of_one(tmp_path):
    """Each process of a multi-host training feeds its slice; in process order the slices are
    the batch one process would feed, with the same augmentation."""
    images, labels = open_patches(*write_patches(tmp_path, n=24), 6)
    options = dict(shuffle=True, augment=True, seed=3, first_epoch=1, devices=4)
    whole = PatchSequence(images, labels, 8, **options)
    parts = [PatchSequence(images, labels, 8, part=(index, 2), **options) for index in range(2)]
    assert len(parts[0]) == len(parts[1]) == len(whole) == 3
    for i in range(len(whole)):
        for got, expected in zip(zip(*(part[i] for part in parts)), whole[i]):
            np.testing.assert_array_equal(np.concatenate(got), expected)
