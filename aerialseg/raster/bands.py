"""Which band of a photo is which: matched by name to the bands a model takes, in the model's order.

A network learns its input bands in one order (R, G, B for RGB photos; IR, R, G for IRRG ones,
infrared first), and a photo given to it may hold them in another order, hold more, or lack
one: taking its first bands would map infrared as red without a word. Only names can tell, so
each band of a photo is named, from the first of:

1. ``--bands IR,R,G`` (the user's word, for files that name their bands wrongly: Potsdam's
   IRRG TIFFs say red, green, blue, as GDAL writes any 3-band 8-bit TIFF), the first bands in
   file order (any further ones unnamed);
2. its description (``IR``, ``NIR``, ``near infrared``, ``red`` ...; GDAL's band description);
3. GDAL's colour interpretation (red, green, blue; alpha is the photo's mask, never a band).

A photo whose bands are all unnamed (grey or undefined) and that has 3 or more is taken as R, G,
B (further bands unnamed), with a note. Names are compared in one spelling (:func:`canonical`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rasterio.enums import ColorInterp

from aerialseg.errors import InputError

ALPHA = "alpha"
ALIASES = {
    "R": ("r", "red"),
    "G": ("g", "green"),
    "B": ("b", "blue"),
    "IR": ("ir", "nir", "infrared", "near infrared", "near-infrared"),
}
_SPELLINGS = {alias: name for name, aliases in ALIASES.items() for alias in aliases}
COLOUR_NAMES = {ColorInterp.red: "R", ColorInterp.green: "G", ColorInterp.blue: "B", ColorInterp.alpha: ALPHA}


class BandError(InputError, ValueError):
    """A photo's bands cannot be the model's, or ``--bands`` does not name them; names both lists."""


@dataclass(frozen=True)
class BandChoice:
    """The photo's bands the model gets, as 1-based band numbers in the model's order, and what
    a user should be told about the choice."""

    indexes: tuple[int, ...]
    notes: tuple[str, ...] = ()


def canonical(name: str) -> str:
    """One spelling per band: ``near infrared``, ``NIR`` and ``ir`` are all ``IR``; other names
    are kept as written (stripped), so an error can show them."""
    written = " ".join(name.split())
    return _SPELLINGS.get(written.lower(), written)


def parse_bands(text: str) -> tuple[str, ...]:
    """``--bands IR,R,G``: the photo's bands in file order, in canonical spelling."""
    names = tuple(canonical(name) for name in text.split(","))
    if not all(names):
        raise BandError(f"--bands {text!r}: expected one name per band of the photo, comma-separated, e.g. IR,R,G")
    return names


def file_band_names(descriptions: Sequence[str | None], colours: Sequence[ColorInterp]) -> tuple[str | None, ...]:
    """Each band's name from the file: a known description, else its colour interpretation, else
    any description as written, else None (unnamed)."""
    names = []
    for description, colour in zip(descriptions, colours):
        described = canonical(description) if description and description.strip() else None
        names.append(described if described in ALIASES else COLOUR_NAMES.get(colour, described))
    return tuple(names)


def choose_bands(
    path: str, file_names: Sequence[str | None], model_bands: Sequence[str], given: Sequence[str] | None = None
) -> BandChoice:
    """The bands of the photo at ``path`` (named ``file_names`` by the file, or ``given`` by
    ``--bands``) the model taking ``model_bands`` gets, in its order; refused, naming both lists,
    if any of the model's is missing."""
    model = tuple(canonical(name) for name in model_bands)
    names, notes = _photo_names(path, tuple(file_names), given)
    missing = [name for name in model if name not in names]
    if missing:
        raise BandError(
            f"{path}: has bands {_shown(names)}, but the model takes {_shown(model)} (no {', '.join(missing)}): "
            f"name the photo's bands in file order with --bands (e.g. --bands {','.join(model)}), or use a model "
            "trained on its bands"
        )
    indexes = tuple(names.index(name) + 1 for name in model)
    left_out = [name for number, name in enumerate(names, 1) if number not in indexes and name != ALPHA]
    if left_out or list(indexes) != sorted(indexes):
        notes.append(
            f"{path}: has bands {_shown(names)}: mapping the model's {_shown(model)} from its bands "
            f"{', '.join(map(str, indexes))}"
        )
    return BandChoice(indexes, tuple(notes))


def _photo_names(path: str, file_names: tuple, given: Sequence[str] | None) -> tuple[tuple, list[str]]:
    """The photo's band names, from ``--bands`` or the file, unnamed ones taken as R, G, B; and the note saying so."""
    if given is not None:
        if len(given) > len(file_names):
            raise BandError(
                f"{path}: has {len(file_names)} bands, but is named as having {len(given)} ({','.join(given)}) "
                "(give a photo of those bands, or name its bands in file order)"
            )
        return tuple(canonical(name) for name in given) + (None,) * (len(file_names) - len(given)), []
    if len(file_names) >= 3 and not any(file_names):
        rgb = ("R", "G", "B") + (None,) * (len(file_names) - 3)
        note = (
            f"{path}: its bands are not named (no colour interpretation or description): taking bands 1 to 3 as R, G, B"
        )
        return rgb, [f"{note} (if they are not, name them with --bands, e.g. --bands IR,R,G)"]
    return file_names, []


def _shown(names: Sequence[str | None]) -> str:
    return ", ".join(name or "?" for name in names)
