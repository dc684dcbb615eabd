import numpy as np
import pytest

from aerialseg.train.dataset import PatchDataError, PatchSequence, open_patches


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
    symmetries = []
    for i in range(len(sequence)):
        (x, s), y = sequence[i]
        assert x.dtype == np.uint8 and y.dtype == np.uint8  # the model's input layer casts to float
        np.testing.assert_array_equal(x[..., 0], y * 40)  # photo and label as stored: the model turns them
        assert s.dtype == np.int32 and s.shape == (len(x),)
        seen, symmetries = seen + len(x), symmetries + s.tolist()
    assert seen == 10 and set(symmetries) <= set(range(8)) and len(set(symmetries)) > 1


def test_without_augmentation_every_patch_stays_as_it_is(tmp_path):
    images, labels = open_patches(*write_patches(tmp_path), 6)
    for (_, symmetries), _ in PatchSequence(images, labels, batch_size=4, shuffle=True, seed=1):
        assert not symmetries.any()


def test_epoch_order_depends_only_on_seed_and_epoch(tmp_path):
    images, labels = open_patches(*write_patches(tmp_path, n=40), 6)
    uninterrupted = PatchSequence(images, labels, 8, shuffle=True, augment=True, seed=5)
    uninterrupted.on_epoch_end()
    uninterrupted.on_epoch_end()
    resumed = PatchSequence(images, labels, 8, shuffle=True, augment=True, seed=5, first_epoch=2)
    for i in range(len(resumed)):
        for got, expected in zip(resumed[i][0], uninterrupted[i][0]):
            np.testing.assert_array_equal(got, expected)
    first_epoch = PatchSequence(images, labels, 8, shuffle=True, seed=5)
    assert not np.array_equal(first_epoch[0][1], resumed[0][1])


def test_every_batch_splits_evenly_over_the_devices(tmp_path):
    """A short last batch is cut to a multiple of the device count, or left out below it."""
    images, labels = open_patches(*write_patches(tmp_path, n=11), 6)
    for devices, sizes in ((1, [4, 4, 3]), (2, [4, 4, 2]), (4, [4, 4])):
        sequence = PatchSequence(images, labels, 4, shuffle=True, devices=devices)
        assert [len(batch_labels) for _, batch_labels in sequence] == sizes


def test_the_parts_of_all_processes_are_the_batch_of_one(tmp_path):
    """Each process of a multi-host training feeds its slice; in process order the slices are
    the batch one process would feed, with the same augmentation."""
    images, labels = open_patches(*write_patches(tmp_path, n=24), 6)
    options = dict(shuffle=True, augment=True, seed=3, first_epoch=1, devices=4)
    whole = PatchSequence(images, labels, 8, **options)
    parts = [PatchSequence(images, labels, 8, part=(index, 2), **options) for index in range(2)]
    assert len(parts[0]) == len(parts[1]) == len(whole) == 3
    for i in range(len(whole)):
        (whole_images, whole_symmetries), whole_labels = whole[i]
        (images_0, symmetries_0), labels_0 = parts[0][i]
        (images_1, symmetries_1), labels_1 = parts[1][i]
        np.testing.assert_array_equal(np.concatenate([images_0, images_1]), whole_images)
        np.testing.assert_array_equal(np.concatenate([symmetries_0, symmetries_1]), whole_symmetries)
        np.testing.assert_array_equal(np.concatenate([labels_0, labels_1]), whole_labels)
