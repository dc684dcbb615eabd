"""Label pictures of any encoding, decoded to the class-index maps every later stage reads.

People label aerial photos in two ways: a picture of class values (0 road, 1 building, ...: what
most annotation tools export, often as a one-band PNG) or a picture of class colours (as Potsdam
does). Both become one H x W uint8 map of class indices in the order of params.yaml's
``classes``, with IGNORE_INDEX where the label says "not labelled" (its ignore value). A value
or colour that is neither a class nor the ignore value is an error naming the file, how many
pixels have it, which values and where the first one is: a label is checked once, in the
download stage, and a wrong ``label_values`` or palette is found there, not as a poor score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aerialseg.data.palette import IGNORE_INDEX, Palette
from aerialseg.errors import InputError

ENCODINGS = ("colour", "index")
VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp")  # label files of polygons (aerialseg.data.polygons)
SHOWN = 5  # unknown values listed in a message; the rest are counted


class LabelValueError(InputError, ValueError):
    """A label holds values (or colours) that are no class and not the ignore value, or has the wrong bands."""


@dataclass(frozen=True)
class LabelDecoding:
    """How a source's labels say which class a pixel is: ``encoding`` colour (the palette's
    colours) or index (``label_values``, one per class in palette order), and ``ignore_value``
    (a value, an (R, G, B) colour, or None) for pixels without a label. Polygon labels name
    each polygon's class (or its value) in the attribute ``class_field``; pixels no polygon
    covers are class ``background`` (an index), or not labelled where it is None."""

    encoding: str
    palette: Palette
    label_values: tuple[int, ...]
    ignore_value: int | tuple[int, int, int] | None = None
    class_field: str = "class"
    background: int | None = None

    def decode(self, pixels: np.ndarray, name: str) -> np.ndarray:
        return decode_label(pixels, self.encoding, self.palette, self.label_values, self.ignore_value, name)


def decode_label(
    pixels: np.ndarray,
    encoding: str,
    palette: Palette,
    label_values: tuple[int, ...],
    ignore_value: int | tuple[int, int, int] | None,
    name: str,
) -> np.ndarray:
    """The class-index map (uint8, IGNORE_INDEX where ``ignore_value`` is) of an H x W x bands label.

    Index labels must have one band, colour labels three (a fourth, alpha, is dropped); ``name``
    is what errors call the file.
    """
    codes = _codes(pixels, encoding, name)
    class_codes = _class_codes(encoding, palette, label_values)
    index, known = _lookup(codes, class_codes)
    if ignore_value is not None:
        ignored = codes == _code_of(ignore_value)
        index[ignored], known[ignored] = IGNORE_INDEX, True
    if not known.all():
        raise LabelValueError(_unknown(codes, known, encoding, class_codes, ignore_value, name))
    return index


def _codes(pixels: np.ndarray, encoding: str, name: str) -> np.ndarray:
    """One integer per pixel: its value (index labels) or its packed 0xRRGGBB colour."""
    bands = pixels.shape[2]
    if encoding == "index":
        if bands != 1:
            raise LabelValueError(
                f"{name}: has {bands} bands, but index labels have one (a class value per pixel): if its pixels are "
                "class colours, set data.pairs.label_encoding to colour"
            )
        return pixels[..., 0].astype(np.uint32)
    if bands not in (3, 4):
        raise LabelValueError(
            f"{name}: has {bands} band(s), but colour labels are RGB pictures: if its pixels are class values, set "
            "data.pairs.label_encoding to index"
        )
    rgb = pixels[..., :3].astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _code_of(value: int | tuple[int, ...]) -> int:
    """The code of a value (index) or an (R, G, B) colour, as _codes packs them."""
    if isinstance(value, int):
        return value
    red, green, blue = value
    return red << 16 | green << 8 | blue


def _class_codes(encoding: str, palette: Palette, label_values: tuple[int, ...]) -> np.ndarray:
    """The code of each class, in palette order."""
    values = palette.colours if encoding == "colour" else label_values
    return np.array([_code_of(value) for value in values], np.uint32)


def _lookup(codes: np.ndarray, class_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class index of each pixel, whether its code is a class's at all), by binary search."""
    order = np.argsort(class_codes)
    sorted_codes = class_codes[order]
    position = np.clip(np.searchsorted(sorted_codes, codes), 0, len(sorted_codes) - 1)
    return order[position].astype(np.uint8), sorted_codes[position] == codes


def _unknown(
    codes: np.ndarray,
    known: np.ndarray,
    encoding: str,
    class_codes: np.ndarray,
    ignore_value,
    name: str,
) -> str:
    """What is wrong, where, and which keys to change."""
    values, counts = np.unique(codes[~known], return_counts=True)
    top = np.argsort(counts)[::-1][:SHOWN]
    listed = ", ".join(f"{_shown(value, encoding)}: {count} px" for value, count in zip(values[top], counts[top]))
    more = f" and {len(values) - SHOWN} more" if len(values) > SHOWN else ""
    row, col = divmod(int(np.argmin(known)), codes.shape[1])
    classes = ", ".join(_shown(code, encoding) for code in class_codes)
    key = "label_values" if encoding == "index" else "classes"
    return (
        f"{name}: {counts.sum()} px have {len(values)} {encoding} value(s) that are no class and not "
        f"data.pairs.ignore_value ({_described(ignore_value)}): {listed}{more}; the first at row {row}, col {col}. "
        f"The classes are {classes}: fix the label, or set {'data.pairs.' if key == 'label_values' else ''}{key} "
        "or data.pairs.ignore_value to match it"
    )


def _shown(code, encoding: str) -> str:
    code = int(code)
    return str(code) if encoding == "index" else f"[{code >> 16 & 255}, {code >> 8 & 255}, {code & 255}]"


def _described(ignore_value) -> str:
    if ignore_value is None:
        return "null"
    return str(list(ignore_value)) if isinstance(ignore_value, tuple) else str(ignore_value)
