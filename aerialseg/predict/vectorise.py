"""Polygons out: a class-index map, arriving a band of rows at a time, as a GeoPackage of regions.

``aerialseg-predict --vector`` writes, beside each map, one polygon per connected region of a
class (4-connected, as GDAL's polygoniser joins pixels), with the class name, the class value and
the region's area in square metres, in the photo's CRS. The map is never whole in memory, so
neither is the polygonising: each band of rows is polygonised on its own
(``rasterio.features.shapes``) and a region that crosses the seam between two bands is joined
across it:

- a polygon of the band that does not reach the band's bottom edge is final and is appended to
  the GeoPackage at once (pyogrio);
- one that does stays *open*; the next band's polygons of the same class that share a stretch of
  that seam with it (an STRtree on the seam's edges; a shared corner is no join, as in the
  polygoniser) join its region, which stays open while it keeps reaching the bottom edge. A
  region is a list of its band pieces, unioned once (shapely ``union_all``) when it is final,
  so a long region is not re-unioned band after band.

Memory is the band of rows plus the open regions along one seam. The worst case is a region that
spans the whole photo (a road network, an unbroken stretch of ground around everything else):
it stays open to the last band, so its whole outline is held and unioned at the end.

Pieces are polygonised and joined in pixel coordinates (column, row): their vertices are whole
numbers, exact in floating point, so the two sides of a seam match exactly and the union leaves
no slivers; the photo's transform is applied to a region when it is written. Pixels of
IGNORE_INDEX (no data) give no polygon. The area is the region's pixel count times a pixel's
ground area, before any simplification. ``simplify`` (metres) simplifies each polygon on its own
(GEOS, topology-preserving within the polygon: it stays valid, but neighbours may then overlap
or leave gaps between them). Areas in square metres need a projected CRS; a photo without one
(none, geographic degrees, a world file alone) is refused. The GeoPackage is written under a
temporary name and renamed when complete (aerialseg.pipeline.atomic): an interrupted run leaves
no half file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
import shapely.affinity
import shapely.geometry
from affine import Affine
from pyogrio import raw
from rasterio.crs import CRS
from rasterio.features import shapes

from aerialseg.data.palette import IGNORE_INDEX
from aerialseg.errors import InputError
from aerialseg.pipeline.atomic import atomic_file
from aerialseg.raster.opening import open_raster

FIELDS = ["class", "value", "area_m2"]
BAND_ROWS = 512  # rows polygonised together: fewer seams than the predictor's row bands, 10 MB at 20000 wide


class VectorUnitsError(InputError, ValueError):
    """A photo's CRS gives no square metres: not projected, or none at all."""


@dataclass
class Region:
    """A connected region of one class seen so far: its pieces, one per band it crosses (disjoint
    polygons in pixel coordinates), and ``seam``, its edges along the bottom of the rows seen so
    far, empty once it stops short of them (then it is final)."""

    value: int
    pieces: list[shapely.Polygon]
    seam: shapely.Geometry


def metres_per_unit(crs: CRS | None, name: str) -> float:
    """Metres per unit of a projected ``crs`` (1, or the foot's factor); none or a geographic CRS
    is refused: its square units are no ground area, so the areas would be meaningless."""
    if crs is None or not crs.is_projected:
        what = "has no CRS" if crs is None else f"is in {crs.to_string()}, not a projected CRS"
        raise VectorUnitsError(
            f"{name}: {what}, so its regions have no area in square metres (give --vector a photo in a projected "
            "CRS, e.g. warped with `gdalwarp -t_srs EPSG:25833`, or map it without --vector)"
        )
    return crs.linear_units_factor[1]


def photo_grid(photo: str | Path) -> tuple[Affine, CRS]:
    """The transform and CRS of ``photo``, refused as :func:`metres_per_unit` says: checked before
    any photo is mapped, so a refusal comes before hours of prediction, not after."""
    with open_raster(photo) as dataset:
        metres_per_unit(dataset.crs, str(photo))
        return dataset.transform, dataset.crs


@contextlib.contextmanager
def photo_vector_writer(
    photo: str | Path, path: str | Path, classes: Sequence[str], simplify: float = 0.0
) -> Iterator[Callable[[np.ndarray], None]]:
    """:func:`vector_writer` on the grid of ``photo``, whose map the rows are."""
    transform, crs = photo_grid(photo)
    with vector_writer(path, transform, crs, classes, simplify) as write:
        yield write


def vectorise_rows(
    rows_iter: Iterable[np.ndarray],
    transform: Affine,
    crs: CRS,
    classes: Sequence[str],
    out_path: str | Path,
    simplify: float = 0.0,
    band_rows: int = BAND_ROWS,
) -> None:
    """Write the regions of the class-index map given as ``rows_iter`` (its rows top to bottom,
    (n, W) uint8 arrays) to the GeoPackage ``out_path``: :func:`vector_writer` without a model."""
    with vector_writer(out_path, transform, crs, classes, simplify, band_rows) as write:
        for rows in rows_iter:
            write(rows)


@contextlib.contextmanager
def vector_writer(
    path: str | Path,
    transform: Affine,
    crs: CRS,
    classes: Sequence[str],
    simplify: float = 0.0,
    band_rows: int = BAND_ROWS,
) -> Iterator[Callable[[np.ndarray], None]]:
    """Yield ``write(rows)``, which takes the map's next rows, top to bottom, as (n, W) uint8
    class indices (``classes[value]`` names value); when the block ends, ``path`` is a GeoPackage
    of every region, and if anything fails nothing is left under ``path`` (an older file stays).
    Rows are gathered into bands of at least ``band_rows`` before polygonising (each seam costs
    a join)."""
    path = Path(path)
    units = metres_per_unit(crs, str(path))
    with atomic_file(path) as staging:
        layer = _Layer(staging, path.stem, crs, classes)
        regions = _Regions(layer, _Ground(transform, units, simplify), band_rows)
        yield regions.write
        regions.close()


@dataclass(frozen=True)
class _Ground:
    """From pixel coordinates to the photo's: the transform, the area of a pixel in square metres
    and the simplification tolerance in CRS units."""

    transform: Affine
    metres_per_unit: float
    simplify: float

    def feature(self, region: Region) -> tuple[shapely.Geometry, float]:
        """The region's outline on the ground (simplified if asked) and its area in square metres."""
        t = self.transform
        placed = shapely.affinity.affine_transform(outline(region.pieces), [t.a, t.b, t.d, t.e, t.c, t.f])
        if self.simplify:
            placed = shapely.simplify(placed, self.simplify / self.metres_per_unit, preserve_topology=True)
        pixel_m2 = abs(t.determinant) * self.metres_per_unit**2
        return placed, float(shapely.area(region.pieces).sum()) * pixel_m2


def outline(pieces: list[shapely.Polygon]) -> shapely.Polygon:
    """The one polygon of a region's band pieces. Only their outer rings are unioned: a hole of a
    piece lies inside its band and is a hole of the region as it is, so the union (the costly
    part, for a region around everything else) is spared the thousands of holes such a region
    has. The vertices seams leave in the middle of straight edges are dropped (simplify 0). A
    region within one band is its one piece (most are: no overlay for them)."""
    if len(pieces) == 1:
        return pieces[0]
    shell = shapely.union_all(shapely.polygons(shapely.get_exterior_ring(pieces)))
    shell = shapely.simplify(shell, 0, preserve_topology=False)
    return shapely.Polygon(shell.exterior, [*shell.interiors, *(hole for piece in pieces for hole in piece.interiors)])


class _Layer:
    """The GeoPackage layer, created empty (a map of nothing but no data is a layer of no
    features) and appended to a batch of final regions at a time."""

    def __init__(self, path: Path, name: str, crs: CRS, classes: Sequence[str]):
        self.options = dict(layer=name, driver="GPKG", geometry_type="Polygon", crs=crs.to_wkt())
        self.path, self.classes = path, list(classes)
        self._write([], [], [], append=False)

    def append(self, features: list[tuple[shapely.Geometry, int, float]]) -> None:
        if features:
            self._write(*zip(*features), append=True)

    def _write(self, geometries, values, areas, append: bool) -> None:
        names = np.array([self.classes[value] for value in values], dtype=object)
        fields = [names, np.array(values, dtype=np.uint8), np.array(areas, dtype=float)]
        wkb = np.array(shapely.to_wkb(geometries), dtype=object)
        raw.write(self.path, wkb, fields, FIELDS, append=append, **self.options)


class _Regions:
    """The streaming polygoniser: rows in, gathered into bands; each band's polygons joined to the
    regions open along the seam above it; regions that end written to the layer at once."""

    def __init__(self, layer: _Layer, ground: _Ground, band_rows: int):
        self.layer, self.ground, self.band_rows = layer, ground, band_rows
        self.pending: list[np.ndarray] = []
        self.top = 0  # the first row of the next band
        self.open: list[Region] = []

    def write(self, rows: np.ndarray) -> None:
        if rows.ndim != 2 or rows.dtype != np.uint8:
            raise ValueError(f"{self.layer.path}: expected (n, W) uint8 class indices, got {rows.dtype} {rows.shape}")
        self.pending.append(rows)
        if sum(len(piece) for piece in self.pending) >= self.band_rows:
            self._band()

    def close(self) -> None:
        """Polygonise the rows left, then write the regions still open: the map ends below them."""
        if self.pending:
            self._band()
        self._finish(self.open)
        self.open = []

    def _band(self) -> None:
        rows = np.concatenate(self.pending)
        self.pending = []
        top, bottom, width = self.top, self.top + len(rows), rows.shape[1]
        pieces, values = band_polygons(rows, top)
        edges = shapely.get_exterior_ring(pieces)  # holes lie inside the band: they never reach its edges
        upper = shapely.intersection(edges, shapely.LineString([(0, top), (width, top)]))
        lower = shapely.intersection(edges, shapely.LineString([(0, bottom), (width, bottom)]))
        regions = join(self.open, pieces, values, upper, lower)
        self.open = [region for region in regions if not region.seam.is_empty]
        self._finish([region for region in regions if region.seam.is_empty])
        self.top = bottom

    def _finish(self, regions: list[Region]) -> None:
        features = []
        for region in regions:
            outline, area = self.ground.feature(region)
            features.append((outline, region.value, area))
        self.layer.append(features)


def band_polygons(rows: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """The polygons of a band of rows starting at row ``top`` (pixel coordinates: column, row)
    and their class values; IGNORE_INDEX pixels give none."""
    found = list(shapes(rows, mask=rows != IGNORE_INDEX, connectivity=4, transform=Affine.translation(0, top)))
    pieces = np.array([shapely.geometry.shape(geometry) for geometry, _ in found], dtype=object)
    return pieces, np.array([int(value) for _, value in found], dtype=int)


def join(
    open_regions: list[Region], pieces: np.ndarray, values: np.ndarray, upper: np.ndarray, lower: np.ndarray
) -> list[Region]:
    """The regions after a band: each band piece joined with the open regions it shares a stretch
    of the seam above with (``upper``: each piece's edges on it), and through them with each other
    (a U joins its arms); ``lower``, each piece's edges on the band's bottom, is the new seam. An
    open region that nothing joins comes back with an empty seam: it is final."""
    links = seam_links(open_regions, values, upper)
    labels = components(len(open_regions) + len(pieces), links + [[0], [len(open_regions)]])
    members: dict[int, list[int]] = {}
    for node, label in enumerate(labels):
        members.setdefault(label, []).append(node)
    return [_merge(nodes, open_regions, pieces, values, lower) for nodes in members.values()]


def _merge(nodes: list[int], open_regions, pieces, values, lower) -> Region:
    """One region of the nodes of a component: open regions first (indices below len(open_regions)),
    then band pieces."""
    old = [open_regions[node] for node in nodes if node < len(open_regions)]
    new = [node - len(open_regions) for node in nodes if node >= len(open_regions)]
    region = old[0] if old else Region(int(values[new[0]]), [], shapely.GeometryCollection())
    for other in old[1:]:
        region.pieces.extend(other.pieces)
    region.pieces.extend(pieces[new])
    region.seam = shapely.union_all(lower[new]) if len(new) > 1 else _first(lower[new])
    return region


def _first(edges: np.ndarray) -> shapely.Geometry:
    return edges[0] if len(edges) else shapely.GeometryCollection()


def seam_links(open_regions: list[Region], values: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Pairs (open region, band piece), as a 2 x n array, of the same class that share a stretch of
    the seam (an STRtree finds the candidates; a shared corner is no link)."""
    if not open_regions or not len(upper):
        return np.empty((2, 0), dtype=int)
    seams = np.array([region.seam for region in open_regions], dtype=object)
    pairs = shapely.STRtree(upper).query(seams, predicate="intersects")
    same = np.array([region.value for region in open_regions])[pairs[0]] == values[pairs[1]]
    pairs = pairs[:, same]
    shared = shapely.length(shapely.intersection(seams[pairs[0]], upper[pairs[1]])) > 0
    return pairs[:, shared]


def components(count: int, links: np.ndarray) -> list[int]:
    """The connected component of each of ``count`` nodes, given the links as a 2 x n array of
    node pairs (union-find: a label per node, the root of its tree)."""
    parent = list(range(count))

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for a, b in links.T:
        parent[root(int(a))] = root(int(b))
    return [root(node) for node in range(count)]
