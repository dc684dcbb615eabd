"""Boundary-free labels: the band around class boundaries left out, as ISPRS made them."""

import numpy as np
from conftest import POTSDAM_PALETTE

from aerialseg.data.boundaries import ISPRS_RADIUS, erode_boundaries
from aerialseg.data.palette import IGNORE_COLOUR, IGNORE_INDEX
from aerialseg.data.synthetic import boundary_free, generate_tile


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


def test_synthetic_boundary_free_labels_paint_the_boundary_band_black():
    _, label = generate_tile(2, 128, POTSDAM_PALETTE)
    free = boundary_free(label, POTSDAM_PALETTE)
    black = (free == IGNORE_COLOUR).all(axis=-1)
    index = POTSDAM_PALETTE.rgb_to_index(label)
    np.testing.assert_array_equal(black, erode_boundaries(index, ISPRS_RADIUS) == IGNORE_INDEX)
    assert 0.02 < black.mean() < 0.5  # a band around every boundary, not everything
    np.testing.assert_array_equal(free[~black], label[~black])  # elsewhere the very same colours
    read_back = POTSDAM_PALETTE.rgb_to_index(free, with_ignored=True)
    assert (read_back[black] == IGNORE_INDEX).all() and (read_back[~black] == index[~black]).all()
