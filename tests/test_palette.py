import numpy as np
import pytest
from conftest import POTSDAM_PALETTE

from aerialseg.data.palette import IGNORE_INDEX, Palette, UnknownColourError


def test_round_trip_of_every_class():
    rng = np.random.default_rng(0)
    index = rng.integers(0, POTSDAM_PALETTE.num_classes, (37, 53)).astype(np.uint8)
    rgb = POTSDAM_PALETTE.index_to_rgb(index)
    assert rgb.shape == (37, 53, 3)
    np.testing.assert_array_equal(POTSDAM_PALETTE.rgb_to_index(rgb), index)
    assert tuple(rgb[index == 4][0]) == (255, 255, 0)


def test_unknown_colour_names_file_colours_and_counts():
    rgb = POTSDAM_PALETTE.index_to_rgb(np.zeros((4, 4), np.uint8))
    rgb[0, :3] = (10, 20, 30)
    rgb[1, 0] = (1, 2, 3)
    with pytest.raises(UnknownColourError) as error:
        POTSDAM_PALETTE.rgb_to_index(rgb, source="tiles/x_label.tif")
    message = str(error.value)
    assert "tiles/x_label.tif" in message
    assert "(10, 20, 30): 3 px" in message and "(1, 2, 3): 1 px" in message


def test_unknown_colour_can_map_to_ignore_index():
    rgb = POTSDAM_PALETTE.index_to_rgb(np.ones((2, 2), np.uint8))
    rgb[0, 0] = (9, 9, 9)
    index = POTSDAM_PALETTE.rgb_to_index(rgb, ignore_unknown=True)
    assert index[0, 0] == IGNORE_INDEX and (index.ravel()[1:] == 1).all()


def test_palette_refuses_duplicate_colours():
    with pytest.raises(ValueError, match="same colour"):
        Palette(("a", "b"), ((1, 1, 1), (1, 1, 1)))
