"""Class palette: the one place where label colours and class indices are converted.

Potsdam labels are RGB pictures; the network wants class indices. Every stage converts through
this module so a colour means the same class everywhere, and an unknown colour is caught once,
with the file, the colours and their pixel counts in the message.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aerialseg.errors import InputError

IGNORE_INDEX = 255
# How ignored pixels are drawn and stored (boundary-free labels mark their boundaries so, and
# data/raw the pixels a source leaves unlabelled); so no class may have this colour.
IGNORE_COLOUR = (0, 0, 0)


class UnknownColourError(InputError, ValueError):
    """A label picture holds colours that are not in the palette; ``share`` is their share of its pixels."""

    def __init__(self, message: str, share: float):
        super().__init__(message)
        self.share = share

    def __reduce__(self):  # raised in the resize stage's worker processes, so it must pickle whole
        return type(self), (str(self), self.share)


@dataclass(frozen=True)
class Palette:
    names: tuple[str, ...]
    colours: tuple[tuple[int, int, int], ...]

    def __post_init__(self):
        if len(self.names) != len(self.colours):
            raise ValueError("palette: names and colours differ in length")
        if len(set(self.colours)) != len(self.colours):
            raise ValueError(f"palette: the same colour is given to two classes: {self.colours}")
        if IGNORE_COLOUR in self.colours:
            raise ValueError(f"palette: {IGNORE_COLOUR} (black) marks pixels without a label; no class may have it")
        if not 1 <= len(self.colours) < IGNORE_INDEX:
            raise ValueError(f"palette: needs 1 to {IGNORE_INDEX - 1} classes")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def rgb_to_index(
        self, rgb: np.ndarray, source: str = "label", ignore_unknown: bool = False, with_ignored: bool = False
    ) -> np.ndarray:
        """Map an H x W x 3 uint8 label picture to H x W class indices (uint8).

        Unknown colours raise UnknownColourError naming ``source``; with ``ignore_unknown`` they
        become IGNORE_INDEX instead, so a few stray pixels need not stop a run. ``with_ignored``:
        the picture marks ignored pixels in IGNORE_COLOUR (black, as the boundary-free labels mark
        class boundaries), which become IGNORE_INDEX.
        """
        if rgb.ndim != 3 or rgb.shape[2] < 3:
            raise ValueError(f"{source}: a label must be an RGB picture, got an array of shape {rgb.shape}")
        codes = _pack(rgb[..., :3])
        palette_codes = _pack(np.asarray(self.colours, dtype=np.uint8))
        order = np.argsort(palette_codes)
        sorted_codes = palette_codes[order]
        position = np.clip(np.searchsorted(sorted_codes, codes), 0, len(sorted_codes) - 1)
        known = sorted_codes[position] == codes
        index = order[position].astype(np.uint8)
        if with_ignored:
            ignored = codes == _pack(np.asarray(IGNORE_COLOUR, np.uint8))
            index[ignored], known[ignored] = IGNORE_INDEX, True
        if not known.all():
            if not ignore_unknown:
                raise UnknownColourError(f"{source}: {_describe_unknown(codes[~known])}", (~known).mean())
            index[~known] = IGNORE_INDEX
        return index

    def index_to_rgb(self, index: np.ndarray) -> np.ndarray:
        """Colour an H x W class-index map; IGNORE_INDEX pixels become IGNORE_COLOUR."""
        lut = np.full((256, 3), IGNORE_COLOUR, dtype=np.uint8)
        lut[: self.num_classes] = self.colours
        return lut[index]


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _describe_unknown(codes: np.ndarray, shown: int = 5) -> str:
    values, counts = np.unique(codes, return_counts=True)
    top = np.argsort(counts)[::-1][:shown]
    listed = ", ".join(
        f"({v >> 16 & 255}, {v >> 8 & 255}, {v & 255}): {c} px" for v, c in zip(values[top], counts[top])
    )
    more = f" and {len(values) - shown} more" if len(values) > shown else ""
    return f"{len(values)} colour(s) not in the palette, {counts.sum()} px in all: {listed}{more}"
