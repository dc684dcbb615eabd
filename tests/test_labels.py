"""Label decoding (aerialseg.data.labels): class values or colours to class indices, ignore values, errors."""

import numpy as np
import pytest
from conftest import POTSDAM_PALETTE

from aerialseg.data.labels import LabelDecoding, LabelValueError, decode_label
from aerialseg.data.palette import IGNORE_INDEX, Palette
from aerialseg.raster.pictures import read_label, write_image

PALETTE = Palette(("road", "house", "grass"), ((200, 200, 200), (220, 30, 30), (20, 160, 40)))
INDEX = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)


def values(index: np.ndarray, table) -> np.ndarray:
    """A one-band label picture holding ``table[class]`` per pixel."""
    return np.asarray(table, np.uint8)[index][..., None]


def test_index_labels_default_to_0_1_2():
    decoded = decode_label(values(INDEX, [0, 1, 2]), "index", PALETTE, (0, 1, 2), None, "a.png")
    np.testing.assert_array_equal(decoded, INDEX)
    assert decoded.dtype == np.uint8


def test_index_labels_map_label_values_and_the_ignore_value():
    pixels = values(INDEX, [10, 20, 30])
    pixels[0, 0] = 255
    decoded = decode_label(pixels, "index", PALETTE, (10, 20, 30), 255, "a.png")
    expected = INDEX.copy()
    expected[0, 0] = IGNORE_INDEX
    np.testing.assert_array_equal(decoded, expected)


def test_colour_labels_map_the_palette_and_an_ignore_colour_and_drop_alpha():
    colours = np.asarray(PALETTE.colours, np.uint8)[INDEX]
    colours[1, 2] = (0, 0, 0)
    rgba = np.concatenate([colours, np.full((2, 3, 1), 255, np.uint8)], axis=-1)
    decoded = LabelDecoding("colour", PALETTE, (), (0, 0, 0)).decode(rgba, "a.png")
    expected = INDEX.copy()
    expected[1, 2] = IGNORE_INDEX
    np.testing.assert_array_equal(decoded, expected)


def test_an_unknown_value_is_counted_listed_and_located():
    pixels = values(np.zeros((4, 5), np.uint8), [0, 1, 2])
    pixels[2, 3] = pixels[3, 1] = 7
    pixels[3, 4] = 9
    with pytest.raises(LabelValueError) as error:
        decode_label(pixels, "index", PALETTE, (0, 1, 2), 255, "masks/a.png")
    message = str(error.value)
    assert message.startswith("masks/a.png: 3 px have 2 index value(s) that are no class and not data.pairs.ignore")
    assert "(255): 7: 2 px, 9: 1 px; the first at row 2, col 3" in message
    assert (
        "The classes are 0, 1, 2: fix the label, or set data.pairs.label_values or data.pairs.ignore_value" in message
    )


def test_an_ignore_value_is_only_accepted_when_set():
    pixels = values(INDEX, [0, 1, 2])
    pixels[1, 1] = 255
    with pytest.raises(LabelValueError, match=r"not data.pairs.ignore_value \(null\): 255: 1 px; the first at row 1"):
        decode_label(pixels, "index", PALETTE, (0, 1, 2), None, "a.png")


def test_an_unknown_colour_is_named_as_rgb():
    colours = np.asarray(PALETTE.colours, np.uint8)[INDEX]
    colours[0, 1] = (1, 2, 3)
    with pytest.raises(LabelValueError) as error:
        decode_label(colours, "colour", PALETTE, (), (0, 0, 0), "b.png")
    message = str(error.value)
    assert "1 px have 1 colour value(s) that are no class and not data.pairs.ignore_value ([0, 0, 0])" in message
    assert "[1, 2, 3]: 1 px; the first at row 0, col 1" in message
    assert "The classes are [200, 200, 200], [220, 30, 30], [20, 160, 40]: fix the label, or set classes" in message


def test_black_is_unknown_in_colour_labels_without_an_ignore_value():
    colours = np.asarray(PALETTE.colours, np.uint8)[INDEX]
    colours[1, 0] = (0, 0, 0)
    with pytest.raises(LabelValueError, match=r"\[0, 0, 0\]: 1 px; the first at row 1, col 0"):
        decode_label(colours, "colour", PALETTE, (), None, "b.png")


def test_bands_that_do_not_fit_the_encoding_say_which_encoding_fits():
    colours = np.asarray(PALETTE.colours, np.uint8)[INDEX]
    with pytest.raises(
        LabelValueError, match=r"c.png: has 3 bands, but index labels have one .*\.label_encoding to colour"
    ):
        decode_label(colours, "index", PALETTE, (0, 1, 2), None, "c.png")
    with pytest.raises(LabelValueError, match=r"c.png: has 1 band\(s\), but colour labels .*\.label_encoding to index"):
        decode_label(values(INDEX, [0, 1, 2]), "colour", PALETTE, (), None, "c.png")


def test_the_palette_refuses_black_as_a_class_colour():
    with pytest.raises(ValueError, match=r"\(0, 0, 0\) \(black\) marks pixels without a label"):
        Palette(("road", "shadow"), ((200, 200, 200), (0, 0, 0)))


def test_stored_full_labels_read_black_as_ignored(tmp_path):
    """The stages after download read unlabelled pixels (black) of a full label as ignored."""
    colours = np.asarray(POTSDAM_PALETTE.colours, np.uint8)[INDEX]
    colours[0, 2] = (0, 0, 0)
    write_image(tmp_path / "label.tif", colours)
    expected = INDEX.copy()
    expected[0, 2] = IGNORE_INDEX
    np.testing.assert_array_equal(read_label(tmp_path / "label.tif", POTSDAM_PALETTE), expected)
