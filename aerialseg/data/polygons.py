"""Labels drawn as polygons: a vector file of classed polygons burnt into a class-index map on a photo's grid.

Nobody paints label pictures pixel by pixel outside a benchmark: people digitise land cover as
polygons in QGIS, or take it from OpenStreetMap, and keep it in a GeoPackage, GeoJSON or
Shapefile with a class attribute. One such file usually covers many photos, in its own CRS.
:func:`rasterise_polygons` turns it into what the pipeline trains on, a uint8 class-index map on
one photo's own grid: it reads only the features that can touch the photo (pyogrio, a
maintained reader over GDAL's vector drivers), moves them into the photo's CRS and burns them in
with GDAL's rasteriser (rasterio), which takes a pixel when its centre lies inside a polygon.
Only polygons label pixels: an OpenStreetMap export's roads as lines or trees as points would
be burnt as one-pixel streaks and dots, so they are refused, not drawn.
Everything that can go wrong with such a file (no CRS, no class field, features that are no
polygons, a class the params do not name, polygons that miss the photo, a file GDAL cannot read)
stops with a one-line :class:`PolygonLabelError` that names the file (and the photo, where one
file labels many) and says what to do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.errors
import shapely
import shapely.geometry
from pyogrio import raw
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.transform import array_bounds
from rasterio.warp import transform_bounds, transform_geom

from aerialseg.data.palette import IGNORE_INDEX
from aerialseg.errors import InputError
from aerialseg.raster.georef import Georeference

Bounds = tuple[float, float, float, float]  # west, south, east, north
POLYGONAL = frozenset({"Polygon", "MultiPolygon"})  # the geometries that cover an area, so label pixels


class PolygonLabelError(InputError, ValueError):
    """A polygon label file cannot label a photo; the message names the file and what to do."""


class UnreadableVectorError(PolygonLabelError):
    """GDAL cannot open or read the vector file (the message gives GDAL's reason)."""


class VectorCrsError(PolygonLabelError):
    """The vector file does not say which CRS its coordinates are in."""


class UnlocatedPhotoError(PolygonLabelError):
    """The photo has no CRS and transform, so there is no ground on which to lay polygons."""


class ClassFieldError(PolygonLabelError):
    """The vector file has no attribute of the name the params give for the class."""


class GeometryTypeError(PolygonLabelError):
    """Features that touch the photo are lines, points or other geometries, which cover no area."""


class UnknownClassError(PolygonLabelError):
    """Features name classes (or class values) that the params do not have."""


class PolygonsMissPhotoError(PolygonLabelError):
    """No feature of the vector file touches the photo: most likely the wrong file or CRS."""


def rasterise_polygons(
    vector: Path,
    photo: Path,
    grid: Georeference,
    shape: tuple[int, int],
    classes: Sequence[str],
    class_field: str,
    background: int | None,
    label_values: Sequence[int] | None = None,
    name: str | None = None,
) -> np.ndarray:
    """The uint8 (H, W) class-index map that the polygons of ``vector`` draw on a photo.

    ``grid`` and ``shape`` are the georeference (:func:`aerialseg.raster.georef.read_georef`) and
    (height, width) of ``photo``, which the messages name: one file may label many photos. Each
    feature's class is its ``class_field`` attribute: a class name (one of ``classes``) or, in an
    integer field, a class value (the class whose entry in ``label_values``, 0..K-1 by default, it
    equals). A pixel is a polygon's when its centre lies
    inside it (GDAL's rule, not all-touched); where polygons overlap, the later feature in the
    file wins. Pixels no polygon covers get ``background``, or IGNORE_INDEX (255) when it is None
    (unlabelled, not a class). ``name`` is how messages call the file (default: its file name).
    Only the features whose extent can meet the photo are read, so one file may serve many photos.
    """
    shown = name or Path(vector).name
    if not grid.located or grid.crs is None:
        raise UnlocatedPhotoError(
            f"{shown}: photo {photo}, which it should label, has no georeference (CRS and transform), so polygons "
            "cannot be placed on it. Give the photo GeoTIFF tags, or a world file and a .prj beside it, or label it "
            "with a label picture instead."
        )
    photo_bounds = array_bounds(shape[0], shape[1], grid.transform)
    info = _info(vector, shown)
    file_crs = _file_crs(info, shown)
    _check_field(info, class_field, shown)
    geometries, values = _read_near(vector, shown, class_field, transform_bounds(grid.crs, file_crs, *photo_bounds))
    if file_crs != grid.crs:
        geometries = _reproject(geometries, file_crs, grid.crs)
    touching = shapely.intersects(geometries, shapely.box(*photo_bounds))
    if not touching.any():
        raise PolygonsMissPhotoError(_miss_message(vector, shown, photo, file_crs, grid.crs, photo_bounds))
    _check_polygons(geometries[touching], shown, photo)
    indices = _class_indices(values[touching], classes, label_values, class_field, shown, photo)
    fill = IGNORE_INDEX if background is None else background
    return rasterize(
        zip(geometries[touching], indices.tolist()),
        out_shape=shape,
        transform=grid.transform,
        fill=fill,
        all_touched=False,
        dtype="uint8",
    )


def _info(vector: Path, shown: str) -> dict:
    """The first layer's CRS and fields, or the reason GDAL cannot open the file."""
    try:
        return pyogrio.read_info(vector)
    except pyogrio.errors.DataSourceError as error:
        raise UnreadableVectorError(_unreadable(shown, error)) from None


def _unreadable(shown: str, error: Exception) -> str:
    reason = " ".join(str(error).split())  # GDAL's reason, kept to one line
    return f"{shown}: cannot be read as a vector file (GeoPackage, GeoJSON, Shapefile...): {reason}. Check the file."


def _file_crs(info: dict, shown: str) -> CRS:
    """The file's CRS: without one, its coordinates could be metres of any zone or degrees."""
    if not info.get("crs"):
        raise VectorCrsError(
            f"{shown}: the file does not say which CRS its coordinates are in. Set it when exporting (in QGIS: "
            "Export > Save Features As... > CRS), or give a Shapefile its .prj file."
        )
    return CRS.from_user_input(info["crs"])


def _check_field(info: dict, class_field: str, shown: str) -> None:
    fields = list(info["fields"])
    if class_field not in fields:
        raise ClassFieldError(
            f"{shown}: has no field {class_field!r} to take the class from; its fields are: "
            f"{', '.join(map(repr, fields)) or 'none'}. Name one of them in the params, or add the field."
        )


def _read_near(vector: Path, shown: str, class_field: str, bbox: Bounds) -> tuple[np.ndarray, np.ndarray]:
    """The geometries (shapely) and class attributes of the features whose extent meets ``bbox``
    (in the file's CRS): GDAL's spatial filter (a GeoPackage's R-tree) leaves the others unread."""
    try:
        _, _, wkb, (values,) = raw.read(vector, columns=[class_field], bbox=bbox)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as error:
        raise UnreadableVectorError(_unreadable(shown, error)) from None
    return shapely.from_wkb(wkb), values


def _reproject(geometries: np.ndarray, source: CRS, target: CRS) -> np.ndarray:
    """The geometries moved from the file's CRS into the photo's, by GDAL (a null geometry stays null)."""
    present = ~shapely.is_missing(geometries)
    moved = geometries.copy()
    if present.any():
        moved[present] = [
            shapely.geometry.shape(geometry) for geometry in transform_geom(source, target, list(geometries[present]))
        ]
    return moved


def _check_polygons(geometries: np.ndarray, shown: str, photo: Path) -> None:
    """Refuse features that are not polygons, counted by kind: GDAL would burn a line as a
    one-pixel streak and a point as one pixel, labels nobody drew."""
    kinds = Counter(kind for kind in map(_not_polygon, geometries) if kind)
    if kinds:
        listed = ", ".join(f"{count} {kind}" for kind, count in kinds.most_common())
        raise GeometryTypeError(
            f"{shown}: {kinds.total()} feature(s) that touch photo {photo} are not polygons: {listed}. Only polygons "
            "label pixels (a line or point would be burnt as a 1-pixel label): buffer lines and points into "
            "polygons (QGIS: Vector > Geoprocessing Tools > Buffer) or drop them, and keep Polygon and "
            "MultiPolygon features only."
        )


def _not_polygon(geometry) -> str | None:
    """None for a polygon, a multipolygon, or a geometry collection of nothing else (burnt as its
    polygons); else what the geometry is, for the message."""
    kind = geometry.geom_type
    if kind in POLYGONAL:
        return None
    if kind == "GeometryCollection":
        inside = sorted({part for part in map(_not_polygon, shapely.get_parts(geometry)) if part})
        return f"GeometryCollection (with {', '.join(inside)})" if inside else None
    return kind


def _class_indices(
    values: np.ndarray,
    classes: Sequence[str],
    label_values: Sequence[int] | None,
    class_field: str,
    shown: str,
    photo: Path,
) -> np.ndarray:
    """Each feature's class index: by value in an integer (or integral float) field, by name otherwise;
    every attribute that names no class is listed in one error."""
    by_value = values.dtype.kind in "iuf"
    if by_value:
        lookup = {value: index for index, value in enumerate(_label_values(classes, label_values))}
    else:
        lookup = {class_name: index for index, class_name in enumerate(classes)}
    indices = [lookup.get(_as_key(value, by_value)) for value in values]
    unknown = Counter(_as_key(value, by_value) for value, index in zip(values, indices) if index is None)
    if unknown:
        raise UnknownClassError(_unknown_message(shown, photo, class_field, unknown, classes, label_values, by_value))
    return np.asarray(indices, dtype=np.uint8)


def _label_values(classes: Sequence[str], label_values: Sequence[int] | None) -> Sequence[int]:
    """Each class's value in a label file: as the params give them, else the class indices."""
    return range(len(classes)) if label_values is None else label_values


def _as_key(value, by_value: bool):
    """A field value as the lookup key: integral numbers as int (a Shapefile may store 3 as 3.0),
    a null number (NaN) as None."""
    if by_value:
        return None if not np.isfinite(value) else int(value) if float(value).is_integer() else float(value)
    return value.item() if isinstance(value, np.generic) else value


def _unknown_message(
    shown: str,
    photo: Path,
    class_field: str,
    unknown: Counter,
    classes: Sequence[str],
    label_values: Sequence[int] | None,
    by_value: bool,
) -> str:
    listed = ", ".join(f"{value!r} ({count} feature(s))" for value, count in unknown.most_common())
    if by_value:
        valid = ", ".join(f"{value} ({name})" for value, name in zip(_label_values(classes, label_values), classes))
        kind = "class value(s)"
    else:
        valid = ", ".join(map(repr, classes))
        kind = "class name(s)"
    return (
        f"{shown}: field {class_field!r} holds {kind} that the params do not name, on features that touch photo "
        f"{photo}: {listed}. Valid: {valid}. Fix those features, or add the classes to the params."
    )


def _miss_message(vector: Path, shown: str, photo: Path, file_crs: CRS, photo_crs: CRS, photo_bounds: Bounds) -> str:
    """Both extents in the photo's CRS, so a swapped axis order or wrong CRS shows at a glance (the
    file's extent is only asked for here: a Shapefile or GeoJSON must be read through for it)."""
    file_bounds = pyogrio.read_info(vector, force_total_bounds=True)["total_bounds"]
    if file_bounds is None or not np.all(np.isfinite(file_bounds)):
        where = "holds no features"
    else:
        where = f"lies at {_format_bounds(transform_bounds(file_crs, photo_crs, *file_bounds))}"
    return (
        f"{shown}: no polygon touches photo {photo}: the file {where}, the photo at {_format_bounds(photo_bounds)} "
        f"(west, south, east, north in {photo_crs.to_string()}). Check that the file covers this photo and that "
        "its CRS is right."
    )


def _format_bounds(bounds: Bounds) -> str:
    return "(" + ", ".join(f"{value:.2f}" for value in bounds) + ")"
