"""Where a picture lies on the ground: world files and GeoTIFF tags, read, written and resized.

Potsdam's TIFFs carry no GeoTIFF tags; their position is only in a world file beside each photo
(``top_potsdam_2_10_RGB.tfw``: six numbers A, D, B, E, C, F). Pixel (col, row) lies at
x = A*col + B*row + C, y = D*col + E*row + F, where (col, row) = (0, 0) is the CENTRE of the top-left
pixel. Other photos may carry GeoTIFF tags instead, or as well. Both follow a photo through the
resize stage (pixels get larger, and a pixel centre moves) to every map predicted from it, so a
map lies on its photo in a GIS: ``.tfw`` beside a ``.tif``, ``.pgw`` beside a ``.png``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from aerialseg.errors import InputError
from aerialseg.pipeline.atomic import write_text
from aerialseg.raster.pictures import read_geotags

PIXEL_SCALE, TIEPOINT, TRANSFORMATION, GEOKEYS = 33550, 33922, 34264, 34735
RASTER_TYPE_KEY, PIXEL_IS_POINT = 1025, 2  # GTRasterTypeGeoKey: 1 = PixelIsArea, 2 = PixelIsPoint


class WorldFileError(InputError, ValueError):
    """A world file is not six numbers."""


@dataclass(frozen=True)
class WorldFile:
    """The six numbers of a world file, in the file's order: x pixel size A, rotations D and B,
    y pixel size E (negative: rows run south), and the ground position C, F of the centre of the
    top-left pixel."""

    a: float
    d: float
    b: float
    e: float
    c: float
    f: float

    def ground(self, col: float, row: float) -> tuple[float, float]:
        """Ground (x, y) of a pixel position; (0, 0) is the centre of the top-left pixel, (-0.5, -0.5) its corner."""
        return self.a * col + self.b * row + self.c, self.d * col + self.e * row + self.f

    def text(self) -> str:
        """The file's content: the six numbers, one a line, exactly (repr round-trips a float)."""
        return "".join(f"{value!r}\n" for value in (self.a, self.d, self.b, self.e, self.c, self.f))

    def scaled(self, old_hw: tuple[int, int], new_hw: tuple[int, int]) -> WorldFile:
        """The world file of the picture resampled from ``old_hw`` to ``new_hw`` pixels, over the same ground."""
        (a, b, c), (d, e, f) = _scale_affine((self.a, self.b, self.c), (self.d, self.e, self.f), old_hw, new_hw, 0.5)
        return WorldFile(a, d, b, e, c, f)


def world_file_path(image: str | Path) -> Path:
    """The world file beside a picture, by the usual rule: ``.tif`` -> ``.tfw``, ``.png`` -> ``.pgw``."""
    image = Path(image)
    suffix = image.suffix.lower()
    return image.with_suffix(f".{suffix[1]}{suffix[-1]}w")


def read_world_file(path: str | Path, name: str | None = None) -> WorldFile:
    """The six numbers of a world file; anything else is an error naming the file (as ``name``, if given)."""
    path = Path(path)
    words = path.read_text(errors="replace").split()
    try:
        numbers = [float(word) for word in words]
    except ValueError:
        numbers = []
    if len(numbers) != 6 or not all(map(math.isfinite, numbers)):
        shown = " ".join(words[:8]) + (" ..." if len(words) > 8 else "")
        raise WorldFileError(
            f"{name or path}: a world file must hold 6 numbers (pixel size x, two rotations, pixel size y, x and y of "
            f"the top-left pixel's centre), one per line, but it holds {len(words)} word(s): {shown!r}. "
            "Fix or delete it (without it, the maps are written without a position)."
        )
    return WorldFile(*numbers)


def write_world_file(path: str | Path, world: WorldFile) -> None:
    write_text(path, world.text())


@dataclass(frozen=True)
class Georef:
    """A picture's position: its world file (or None) and its GeoTIFF tags (tifffile ``extratags``)."""

    world: WorldFile | None = None
    geotags: list[tuple] = field(default_factory=list)

    def scaled(self, old_hw: tuple[int, int], new_hw: tuple[int, int]) -> Georef:
        """The position of the picture resampled from ``old_hw`` to ``new_hw`` pixels."""
        world = self.world.scaled(old_hw, new_hw) if self.world else None
        return Georef(world, scale_geotags(self.geotags, old_hw, new_hw))

    def write_world_file(self, image: str | Path) -> None:
        """Write the world file beside ``image`` (``.tfw``, ``.pgw``), if there is one to write."""
        if self.world:
            write_world_file(world_file_path(image), self.world)


def read_georef(image: str | Path) -> Georef:
    """The world file beside ``image`` (if any) and its GeoTIFF tags (if any)."""
    world = world_file_path(image)
    return Georef(read_world_file(world) if world.is_file() else None, read_geotags(image))


def scale_geotags(tags: list[tuple], old_hw: tuple[int, int], new_hw: tuple[int, int]) -> list[tuple]:
    """GeoTIFF tags of a picture resampled from ``old_hw`` to ``new_hw``: pixel scale, tie points and
    transformation moved so the picture still covers the same ground (PixelIsArea or PixelIsPoint)."""
    values = {tag[0]: tag[3] for tag in tags}
    offset = 0.5 if _raster_type(values.get(GEOKEYS, ())) == PIXEL_IS_POINT else 0.0
    sx, sy = new_hw[1] / old_hw[1], new_hw[0] / old_hw[0]

    def scaled(code: int, value):
        if code == PIXEL_SCALE:
            return (value[0] / sx, value[1] / sy, *value[2:])
        if code == TIEPOINT:
            points = [list(value[i : i + 6]) for i in range(0, len(value), 6)]
            for point in points:
                point[0], point[1] = (point[0] + offset) * sx - offset, (point[1] + offset) * sy - offset
            return tuple(number for point in points for number in point)
        if code == TRANSFORMATION:
            rows = [tuple(value[i : i + 4]) for i in range(0, 16, 4)]
            x, y = _scale_affine(rows[0][:2] + rows[0][3:], rows[1][:2] + rows[1][3:], old_hw, new_hw, offset)
            return (x[0], x[1], rows[0][2], x[2], y[0], y[1], rows[1][2], y[2], *value[8:])
        return value

    return [(code, dtype, count, scaled(code, value), once) for code, dtype, count, value, once in tags]


def _raster_type(geokeys) -> int:
    """GTRasterTypeGeoKey of a GeoKeyDirectory (header of 4 shorts, then 4 per key); 1 if absent."""
    keys = [tuple(geokeys[i : i + 4]) for i in range(4, len(geokeys) - 3, 4)]
    return next((value for key, location, _, value in keys if key == RASTER_TYPE_KEY and location == 0), 1)


def _scale_affine(x_row, y_row, old_hw, new_hw, offset: float):
    """Rows (a, b, c) of x = a*col + b*row + c (and y), for pixel coordinates that count from the
    corner (``offset`` 0) or from the centre (0.5) of the top-left pixel, after resampling.

    The ground under the picture's corner stays put: in corner coordinates only the pixel size
    changes, so a centre-based origin moves by half the new pixel minus half the old one.
    """
    fx, fy = old_hw[1] / new_hw[1], old_hw[0] / new_hw[0]  # ground per pixel grows by these factors

    def row(a, b, c):
        new_a, new_b = a * fx, b * fy
        return new_a, new_b, c + (new_a - a) * offset + (new_b - b) * offset

    return row(*x_row), row(*y_row)
