"""Where a picture lies on the ground: a CRS and an affine transform, read by GDAL, scaled on resize.

Potsdam's TIFFs carry no GeoTIFF tags; their position is only in a world file beside each photo
(``top_potsdam_2_10_RGB.tfw``: six numbers A, D, B, E, C, F, for the CENTRE of the top-left pixel).
Other photos may carry GeoTIFF tags instead, or as well. rasterio (GDAL) reads either into one
:class:`Georeference`: a CRS and the transform from pixel corners (col, row) to ground (x, y).
It follows a photo through the resize stage (pixels get larger) to every map predicted from it,
so a map lies on its photo in a GIS: in the GeoTIFF, and as a world file (``.tfw`` beside a
``.tif``, ``.pgw`` beside a ``.png``) where the photo had one.

GDAL skips a world file it cannot parse without a word, so one beside a picture is checked here
first: a broken one stops the stage, naming the file, rather than leaving the maps unplaced.

The ground size of a pixel (:func:`ground_pixel_size`) is known only with a CRS: a world file
alone gives numbers in unknown units (Potsdam's could be metres or feet), so its photo's size
comes from elsewhere (aerialseg.data.resolution).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import transform as transform_points

from aerialseg.errors import InputError
from aerialseg.pipeline.atomic import write_text

CENTRE = Affine.translation(0.5, 0.5)  # from the corner to the centre of a pixel, in pixel coordinates
SQUARE_TOLERANCE = 0.01  # pixel sides on the ground differing by more than this share: not square
POLAR_LATITUDE = 85.0  # photos in degrees reaching beyond it have no one ground pixel size
RESIZE_INSTEAD = "set resize.scale or resize.size instead of resize.pixel_size"  # the resize stage's other way
ALIGNED_PX = 0.01  # a label's pixel corners within this share of a photo pixel of the photo's: on its grid


class WorldFileError(InputError, ValueError):
    """A world file is not six numbers."""


class PixelSizeError(InputError, ValueError):
    """A photo's pixels have no one ground size: its transform is rotated, or its pixels not square."""


@dataclass(frozen=True)
class Georeference:
    """Where a raster lies: its coordinate reference system (None if unknown), its pixel-to-map
    transform, and whether a world file beside it gave it (so pictures made from it get one too)."""

    crs: CRS | None = None
    transform: Affine = Affine.identity()
    world_file: bool = False

    @property
    def located(self) -> bool:
        """False for a plain picture: no CRS and the identity transform (pixel coordinates)."""
        return self.crs is not None or self.transform != Affine.identity()

    def profile(self) -> dict:
        """rasterio creation options that put a new raster in the same place."""
        return dict(crs=self.crs, transform=self.transform) if self.located else {}

    def scaled(self, old_hw: tuple[int, int], new_hw: tuple[int, int]) -> Georeference:
        """The position of the picture resampled from ``old_hw`` to ``new_hw`` pixels over the same
        ground: the transform counts from the outer corner, so only the pixel size changes."""
        stretch = Affine.scale(old_hw[1] / new_hw[1], old_hw[0] / new_hw[0])
        return dataclasses.replace(self, transform=self.transform @ stretch)


@dataclass(frozen=True)
class Grid:
    """The pixels of a raster on the ground: its size and where it lies. A label must have its
    photo's grid, pixel for pixel; polygon labels are drawn onto it."""

    height: int
    width: int
    georef: Georeference

    def differences(self, other: Grid) -> list[str]:
        """How ``other`` does not lie on this grid: size, and where both are located, CRS and transform
        (a transform whose pixels lie more than ALIGNED_PX of a pixel off this grid's)."""
        found = []
        if (self.height, self.width) != (other.height, other.width):
            found.append(f"{other.width}x{other.height} px against {self.width}x{self.height} px")
        if self.georef.located and other.georef.located:
            if self.georef.crs != other.georef.crs:
                found.append(f"CRS {other.georef.crs} against {self.georef.crs}")
            off = self._pixels_off(other)
            if off > ALIGNED_PX:
                found.append(
                    f"transform {_numbers(other.georef.transform)} against {_numbers(self.georef.transform)}, "
                    f"up to {off:.3g} px apart"
                )
        return found

    def _pixels_off(self, other: Grid) -> float:
        """How far, in this grid's pixels, a corner of ``other``'s pixels lies from the same corner of
        this grid's, at worst over this grid's four corners.

        Measured in pixels, not in the CRS's units: an absolute tolerance (Affine.almost_equals'
        1e-5) is a ten-thousandth of a 10 cm pixel but ten pixels of 1e-6 degrees. Shifted origins
        and pixel sizes that differ both show here, the latter growing across the grid as they do
        on the ground.
        """
        mine, theirs = self.georef.transform, other.georef.transform
        if mine.is_degenerate:  # no pixel to measure in: only the very same transform lies on it
            return 0.0 if mine == theirs else math.inf
        relative = ~mine @ theirs  # other's pixel coordinates to this grid's
        corners = [(0, 0), (self.width, 0), (0, self.height), (self.width, self.height)]
        return max(math.dist(relative @ corner, corner) for corner in corners)


def ground_pixel_size(
    georef: Georeference, shape_hw: tuple[int, int], name: str, instead: str = RESIZE_INSTEAD
) -> float | None:
    """Metres per pixel on the ground, or None where the CRS cannot tell (none, or no unit), for
    resizing a tile to one resolution: its pixels must be square (see :func:`ground_pixel_sides`);
    sides differing on the ground by more than SQUARE_TOLERANCE are refused, as ``instead`` names
    the caller's other way."""
    sides = ground_pixel_sides(georef, shape_hw, name, instead)
    if sides is None:
        return None
    width, height = sides
    if abs(width - height) > SQUARE_TOLERANCE * max(width, height):
        raise PixelSizeError(
            f"{name}: its pixels are {width:.4g} m wide and {height:.4g} m high on the ground ({georef.crs}), not "
            "square: reproject it to square pixels in metres (gdalwarp -t_srs <a projected CRS> -tr <size> <size>), "
            f"or {instead}"
        )
    return width


def ground_pixel_sides(
    georef: Georeference, shape_hw: tuple[int, int], name: str, instead: str = RESIZE_INSTEAD
) -> tuple[float, float] | None:
    """A pixel's width and height in metres on the ground, or None where the CRS cannot tell (none,
    or no unit).

    A projected CRS gives them in its linear unit (metres, or feet converted by the CRS's own
    factor); a geographic one in degrees, which PROJ measures at the photo's centre
    (:func:`_geographic_sides`): a photo with square pixels in degrees has narrower pixels than
    high ones away from the equator. A rotated transform, or a photo in degrees reaching within
    90 - POLAR_LATITUDE degrees of a pole (where a degree of longitude shrinks to nothing across
    the photo), has no one pixel size and is refused; ``instead`` is the caller's other way, for the message.
    """
    crs = georef.crs
    transform = georef.transform
    if crs is None or not (crs.is_projected or crs.is_geographic) or transform == Affine.identity():
        return None  # no unit, or a CRS without a geotransform: GDAL's identity is no pixel size
    if transform.b or transform.d:
        raise PixelSizeError(
            f"{name}: its transform {_numbers(transform)} is rotated, so its pixels have no one ground size: "
            f"warp it north-up (gdalwarp), or {instead}"
        )
    if crs.is_projected:
        metres = crs.linear_units_factor[1]
        return abs(transform.a) * metres, abs(transform.e) * metres
    _refuse_polar(crs, transform, shape_hw, name, instead)
    return _geographic_sides(crs, transform, shape_hw)


def _refuse_polar(crs: CRS, transform: Affine, shape_hw: tuple[int, int], name: str, instead: str) -> None:
    """Refuse a photo in degrees with a corner beyond POLAR_LATITUDE: near a pole the ground size of
    its pixels changes from row to row by far more than SQUARE_TOLERANCE, so no one size is true."""
    latitudes = [(transform @ corner)[1] for corner in ((0, 0), (0, shape_hw[0]))]
    latitude = max(latitudes, key=abs)
    if abs(latitude) > POLAR_LATITUDE:
        raise PixelSizeError(
            f"{name}: reaches latitude {latitude:.2f} in {crs}, too near a pole for its pixels in degrees to have one "
            "ground size: reproject it to a polar CRS in metres (gdalwarp -t_srs EPSG:3413 in the Arctic, EPSG:3031 "
            f"in the Antarctic), or {instead}"
        )


def _geographic_sides(crs: CRS, transform: Affine, shape_hw: tuple[int, int]) -> tuple[float, float]:
    """Width and height in metres of the centre pixel of a photo in degrees: the pixel's centre and
    its right and lower neighbours' in an azimuthal equidistant projection centred on it, where
    distances from the centre are true on the ellipsoid (PROJ does the geodesy)."""
    column, row = shape_hw[1] // 2, shape_hw[0] // 2
    points = [transform @ CENTRE @ offset for offset in ((column, row), (column + 1, row), (column, row + 1))]
    lon, lat = points[0]
    local = CRS.from_proj4(f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m")
    xs, ys = transform_points(crs, local, [x for x, _ in points], [y for _, y in points])
    return math.hypot(xs[1] - xs[0], ys[1] - ys[0]), math.hypot(xs[2] - xs[0], ys[2] - ys[0])


def _numbers(transform: Affine) -> tuple[float, ...]:
    """The six numbers of an affine transform (a, b, c, d, e, f), for a message."""
    return tuple(transform)[:6]


def world_file_path(image: str | Path) -> Path:
    """The world file beside a picture, by the usual rule: ``.tif`` -> ``.tfw``, ``.png`` -> ``.pgw``."""
    image = Path(image)
    suffix = image.suffix.lower()
    return image.with_suffix(f".{suffix[1]}{suffix[-1]}w")


def read_georef(image: str | Path) -> Georeference:
    """Where ``image`` lies, from its GeoTIFF tags or the world file beside it (GDAL reads both);
    a world file that is not six numbers is an error naming it."""
    world = world_file_path(image)
    if world.is_file():
        check_world_file(world)
    with allow_plain(), rasterio.open(image) as dataset:
        return Georeference(dataset.crs, dataset.transform, world.is_file())


@contextlib.contextmanager
def allow_plain():
    """rasterio warns of every raster read or written without a position; a plain picture is fine
    here (its maps are in pixel coordinates, and the predict command says so once)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def check_world_file(path: str | Path, name: str | None = None) -> None:
    """Raise WorldFileError, naming the file (as ``name``, if given), unless it holds six finite numbers."""
    words = Path(path).read_text(errors="replace").split()
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


def world_file_text(transform: Affine) -> str:
    """A world file of ``transform``: A, D, B, E, then C, F moved to the top-left pixel's centre.

    Written here, not by GDAL (TFW=YES): GDAL writes one only beside a picture it creates, under
    that picture's temporary name (and as ``.wld`` for a PNG), while this one goes into a zip too.
    """
    centred = transform @ CENTRE
    return "".join(f"{value!r}\n" for value in (centred.a, centred.d, centred.b, centred.e, centred.c, centred.f))


def write_world_file(image: str | Path, transform: Affine) -> None:
    """Write the world file beside ``image`` (``.tfw``, ``.pgw``), atomically."""
    write_text(world_file_path(image), world_file_text(transform))
