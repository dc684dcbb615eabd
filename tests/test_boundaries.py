"""Boundary-free labels: the band around class boundaries left out, as ISPRS made them."""

import numpy as np

from aerialseg.boundaries import erode_boundaries
from aerialseg.palette import IGNORE_INDEX


def test_erosion_ignores_exactly_the_band_around_a_boundary():
    label = np.zeros((30, 40), np.uint8)
    label[:, 20:] = 1
    radius = 3

    eroded = erode_boundaries(label, radius)

    ignored_columns = np.flatnonzero((eroded == IGNORE_INDEX).all(axis=0))
    np.testing.assert_array_equal(ignored_columns, np.arange(20 - radius, 20 + radius))
    kept = eroded != IGNORE_INDEX
    np.testing.assert_array_equal(eroded[kept], label[kept])  # the rest, image edges included, is untouched
    assert kept.sum() == label.size - 2 * radius * label.shape[0]
    np.testing.assert_array_equal(erode_boundaries(label, 0), label)
