"""A folder of photo/label pairs as people bring their own data, made from synthetic tiles.

The pairs layout (aerialseg.data.pairs) is tested on this: ``images/<stem>.tif`` photos
(optionally georeferenced in EPSG:25833, optionally LZW-compressed) and ``masks/<stem>.png``
labels, either class values (with an ignore value painted over a border strip, as annotation
tools leave unlabelled margins) or the colours of a palette the caller gives, with the corner of a
photo left empty as mosaics have it (:func:`empty_corner`: a nodata value or an alpha band); and, for
georeferenced photos, the same labels as one GeoPackage of classed polygons for every photo
(:func:`write_polygon_labels`), as digitised in a GIS. The classes are
those of aerialseg.data.synthetic, in its order: class i of the caller's classes is synthetic
class i, whatever the caller names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from pyogrio import raw
from rasterio.crs import CRS
from rasterio.features import shapes

from aerialseg.data.palette import IGNORE_INDEX, Palette
from aerialseg.data.synthetic import CLASSES, generate_tile
from aerialseg.raster.georef import allow_plain
from aerialseg.raster.pictures import image_profile, write_image

# Synthetic tiles are drawn in these colours; only the class indices leave this module.
_DRAWING = Palette(CLASSES, tuple((1 + number, 50, 100) for number in range(len(CLASSES))))
CRS_EPSG = 25833
PIXEL_SIZE_M = 0.1


def write_pairs_folder(
    folder: str | Path,
    stems: Sequence[str],
    size: int,
    *,
    label_values: Sequence[int] | None = None,
    colours: Palette | None = None,
    ignore_value: int | tuple[int, int, int] | None = None,
    ignore_rows: int = 0,
    georeferenced: bool = False,
    compress: bool = False,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Write a photo and a label per stem into ``folder``; return each tile's class-index map
    (IGNORE_INDEX where the label holds the ignore value).

    Labels hold ``label_values`` (class i as label_values[i]; default 0, 1, 2, ...) or, given
    ``colours``, that palette's colours. ``ignore_rows`` > 0 paints the top rows with ``ignore_value``.
    """
    folder = Path(folder)
    truths = {}
    for number, stem in enumerate(stems):
        photo, drawn = generate_tile(seed + number, size, _DRAWING)
        index = _DRAWING.rgb_to_index(drawn)
        index[:ignore_rows] = IGNORE_INDEX
        _write_photo(folder / "images" / f"{stem}.tif", photo, number, georeferenced, compress)
        write_image(folder / "masks" / f"{stem}.png", _encode(index, label_values, colours, ignore_value))
        truths[stem] = index
    return truths


def _encode(index: np.ndarray, label_values, colours: Palette | None, ignore_value) -> np.ndarray:
    """The label picture of a class-index map: class values (one band) or class colours."""
    if colours is not None:
        table = np.zeros((256, 3), np.uint8)
        table[: colours.num_classes] = colours.colours
        table[IGNORE_INDEX] = ignore_value if ignore_value is not None else 0
        return table[index]
    table = np.zeros(256, np.uint8)
    table[: len(CLASSES)] = label_values if label_values is not None else range(len(CLASSES))
    table[IGNORE_INDEX] = ignore_value if ignore_value is not None else 0
    return table[index]


def tile_transform(number: int, width: int) -> Affine:
    """Where georeferenced tile ``number`` lies: tiles side by side, 10 cm pixels in UTM zone 33N."""
    return Affine(PIXEL_SIZE_M, 0, 366_000 + number * width * PIXEL_SIZE_M, 0, -PIXEL_SIZE_M, 5_812_000)


def write_polygon_labels(path: str | Path, truths: dict[str, np.ndarray], names: Sequence[str], field: str = "class"):
    """The class-index maps of georeferenced tiles (in the order they were written) as one
    GeoPackage: a polygon per connected region of a class, its class name in ``field``; ignored
    pixels get no polygon."""
    geometries, classes = [], []
    for number, index in enumerate(truths.values()):
        regions = shapes(index, mask=index != IGNORE_INDEX, transform=tile_transform(number, index.shape[1]))
        for geometry, value in regions:
            geometries.append(shapely.geometry.shape(geometry))
            classes.append(names[int(value)])
    wkb = shapely.to_wkb(np.asarray(geometries, dtype=object))
    crs = f"EPSG:{CRS_EPSG}"
    raw.write(str(path), wkb, [np.asarray(classes, dtype=object)], [field], geometry_type="Polygon", crs=crs)


def _write_photo(path: Path, photo: np.ndarray, number: int, georeferenced: bool, compress: bool) -> None:
    """A GeoTIFF photo, in UTM zone 33N where georeferenced (:func:`tile_transform`)."""
    profile = image_profile(photo, "GTiff")
    if georeferenced:
        profile.update(crs=CRS.from_epsg(CRS_EPSG), transform=tile_transform(number, photo.shape[1]))
    if compress:
        profile.update(compress="lzw")
    path.parent.mkdir(parents=True, exist_ok=True)
    with allow_plain(), rasterio.open(path, "w", **profile) as dataset:
        dataset.write(np.moveaxis(photo, -1, 0))


def empty_corner(photo: str | Path, side: int, how: str) -> None:
    """Leave the bottom-right ``side`` x ``side`` pixels of a photo written here empty, as a
    mosaic's corner: black with nodata 0 (``how`` "nodata"), or transparent in an added alpha band
    ("alpha"). The photo keeps its position and its other pixels."""
    with allow_plain(), rasterio.open(photo) as dataset:
        profile, bands = dataset.profile, dataset.read()
    alpha = np.full(bands.shape[1:], 255, np.uint8)
    alpha[-side:, -side:] = 0
    if how == "nodata":
        bands[:, alpha == 0] = 0
        profile.update(nodata=0)
    else:
        bands = np.concatenate([bands, alpha[None]])
        profile.update(count=bands.shape[0], alpha="YES")
    with allow_plain(), rasterio.open(photo, "w", **profile) as dataset:
        dataset.write(bands)
