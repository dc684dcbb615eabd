"""The eight symmetries of the square (the dihedral group D4), written once.

Training augments every patch with one of them, and prediction averages a window's maps over
some of them (test-time augmentation), on the device with Keras or in NumPy. Each of those once
had its own copy, in two encodings; a map predicted under one symmetry and undone under another
numbering is silently wrong, so every user now takes the symmetries from here.

A symmetry is a number 0..7. Its bits choose three elementary steps on axes 1 and 2 (rows and
columns) of a batch, applied in this order: bit 0 transposes rows and columns, bit 1 flips the
rows, bit 2 flips the columns. 0 is the identity. Each step is its own inverse, so undoing a
symmetry is its steps in reverse order.

The functions take the array library as ``ops``: NumPy (the default) and ``keras.ops`` have the
same ``transpose`` and ``flip``. Keras is imported only by :func:`apply_each`, so the data stages,
which never touch a model, start without it.
"""

from __future__ import annotations

import numpy as np

SYMMETRIES = 8

# Test-time augmentation sets, as symmetry numbers: "flips" is the identity, the left-right flip
# (columns), the up-down flip (rows) and both (a half turn); "d4" is all eight.
TTA_SETS: dict[str, tuple[int, ...]] = {
    "none": (0,),
    "flips": (0, 4, 2, 6),
    "d4": tuple(range(SYMMETRIES)),
}


def _steps(ops, rank: int) -> tuple:
    """(bit, step) of the three elementary steps on a batch of ``rank`` axes, in the order applied."""
    return (
        (1, lambda batch: ops.transpose(batch, (0, 2, 1, *range(3, rank)))),
        (2, lambda batch: ops.flip(batch, axis=1)),
        (4, lambda batch: ops.flip(batch, axis=2)),
    )


def apply(batch, symmetry: int, ops=np):
    """Every sample of ``batch`` (N, H, W, ...), H == W, under the symmetry numbered ``symmetry``."""
    for bit, step in _steps(ops, len(batch.shape)):
        if symmetry & bit:
            batch = step(batch)
    return batch


def undo(batch, symmetry: int, ops=np):
    """The inverse of :func:`apply`: ``undo(apply(batch, s), s)`` is ``batch``."""
    for bit, step in reversed(_steps(ops, len(batch.shape))):
        if symmetry & bit:
            batch = step(batch)
    return batch


def apply_each(batch, symmetries):
    """Each sample of ``batch`` (N, H, W, ...), H == W, under its own symmetry number
    (``symmetries``, (N,) int32), with ``keras.ops``: each step is computed for the whole batch
    and selected per sample, so it compiles into the training step as a few element-wise selects."""
    from keras import ops

    rank = len(batch.shape)
    for bit, step in _steps(ops, rank):
        chosen = ops.not_equal(ops.mod(ops.floor_divide(symmetries, bit), 2), 0)
        batch = ops.where(ops.reshape(chosen, (-1,) + (1,) * (rank - 1)), step(batch), batch)
    return batch
