"""Synthetic Potsdam-like tiles, so the whole pipeline runs (and is tested) without the 3 GB download.

A tile is a small town seen from above at roughly Potsdam's 5 cm per pixel: a grid of asphalt
roads with pavements and parked cars, blocks of perimeter buildings, detached houses, flat-roofed
halls with parking lots, parks, tree crowns, lawns and odd clutter (gravel heaps, containers,
building sites). The classes are made to be confusable the way real ones are (grey roofs next to
grey roads, lawns next to trees, shadows over everything), yet each stays recognisable from its
local colour, texture and shape, so a small U-Net can learn them in minutes.

Like Potsdam, a tile comes as a photo of one band set (RGB, or with near infrared, where
vegetation shines: IRRG, RGBIR), a world file placing it on the ground, a label picture and a
boundary-free label picture (class boundaries eroded and painted black, as ISPRS made them).

Everything is drawn with OpenCV and vectorised numpy from one seed: the same seed gives the same
bytes on every machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from affine import Affine
from tqdm import tqdm

from aerialseg.data.boundaries import ISPRS_RADIUS, erode_boundaries
from aerialseg.data.palette import Palette
from aerialseg.data.potsdam import BAND_ORDER, BOUNDARY_FREE, PIXEL_SIZE_M
from aerialseg.pipeline.paths import TileFolder
from aerialseg.raster.georef import write_world_file
from aerialseg.raster.pictures import write_image

CLASSES = ("impervious_surfaces", "building", "low_vegetation", "tree", "car", "clutter")  # looked up by name

# Materials decide texture; classes decide the label. Several materials share a class
# (asphalt and paving are both impervious surfaces) and shadows change neither.
ASPHALT, PAVING, MARKING, ROOF, LAWN, TREE, CAR, GRAVEL, SOIL, CONTAINER = range(10)
# Per material: amplitude of pixel grain, of foliage clumps (a few px) and of broad patches (tens of px).
_TEXTURE = np.zeros((256, 3), np.float32)
_TEXTURE[[ASPHALT, PAVING, MARKING, ROOF, LAWN, TREE, CAR, GRAVEL, SOIL, CONTAINER]] = [
    (0.05, 0.00, 0.06),
    (0.05, 0.00, 0.05),
    (0.03, 0.00, 0.02),
    (0.04, 0.00, 0.03),
    (0.07, 0.04, 0.05),
    (0.07, 0.30, 0.06),
    (0.02, 0.00, 0.00),
    (0.22, 0.10, 0.05),
    (0.10, 0.12, 0.12),
    (0.03, 0.00, 0.02),
]
# Near infrared: a material's mean visible brightness times this; leaves reflect it strongly.
_NIR_GAIN = np.full(256, 0.95, np.float32)
_NIR_GAIN[[LAWN, TREE, SOIL]] = (1.9, 2.6, 1.2)
# Broad patches also turn parts of lawns dry and yellowish, as in a real summer.
_PATCH_TINT = np.zeros((256, 3), np.float32)
_PATCH_TINT[LAWN] = (10.0, 7.0, -3.0)

_ROOF_COLOURS = {  # mean RGB of a sunlit roof; grey ones are deliberately close to asphalt
    "red": (158, 82, 62),
    "brown": (128, 84, 70),
    "dark": (82, 80, 84),
    "grey": (138, 138, 136),
}
_CAR_COLOURS = [
    (225, 225, 228),
    (30, 32, 36),
    (160, 162, 166),
    (150, 30, 30),
    (35, 60, 130),
    (95, 100, 105),
    (200, 200, 190),
    (70, 90, 60),
]
_CONTAINER_COLOURS = [(40, 80, 150), (180, 90, 30), (60, 120, 60), (150, 40, 40), (200, 170, 40)]


@dataclass(frozen=True)
class _Rect:
    """A rotated rectangle: ``length`` runs along ``angle`` (degrees), ``width`` across it."""

    cx: float
    cy: float
    length: float
    width: float
    angle: float = 0.0

    def corners(self) -> np.ndarray:
        return cv2.boxPoints(((self.cx, self.cy), (self.length, self.width), self.angle))


@dataclass(frozen=True)
class _Road:
    """A straight road across the tile; ``vertical`` roads run top to bottom at x = ``centre``."""

    vertical: bool
    centre: float
    asphalt: float  # half width of the carriageway
    pavement: float  # width of each pavement strip
    verge: float  # width of the grass verge beyond each pavement (0: none)

    @property
    def half_width(self) -> float:
        return self.asphalt + self.pavement + self.verge


class _Scene:
    """The layers a tile is drawn into before it is rendered to a photo."""

    def __init__(self, size_hw: tuple[int, int], rng: np.random.Generator, palette: Palette):
        self.height, self.width = size_hw
        self.rng = rng
        self.index = {name: palette.names.index(name) for name in CLASSES}
        self.classes = np.full(size_hw, self.index["low_vegetation"], np.uint8)
        self.material = np.full(size_hw, LAWN, np.uint8)
        self.albedo = np.empty((*size_hw, 3), np.float32)
        dryness = rng.uniform(0, 0.6)  # summer lawns range from green to straw
        self.albedo[:] = _jitter(rng, (1 - dryness) * np.array([100, 138, 62]) + dryness * np.array([150, 146, 88]), 4)
        self.building_shade = np.ones(size_hw, np.float32)  # shadows cast by buildings
        self.tree_shade = np.ones(size_hw, np.float32)  # shadows of low things: trees, cars, containers
        self.unit = rng.uniform(0.85, 1.2)  # object scale of this tile: pixels per nominal pixel
        sun = rng.uniform(0, 2 * math.pi)
        self.sun = np.array([math.cos(sun), math.sin(sun)], np.float32)  # direction shadows fall
        self.shadow_strength = rng.uniform(0.45, 0.62)  # light left in a shadow

    def n(self, low: float, high: float) -> float:
        """A random length in nominal pixels, scaled to this tile."""
        return self.rng.uniform(low, high) * self.unit

    def paint_rect(self, rect: _Rect, klass: str, material: int, colour_fn) -> None:
        """Fill ``rect``; ``colour_fn(u, v)`` gives the colour from along/across coordinates."""
        corners = rect.corners()
        x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int), 0)
        x1 = min(int(np.ceil(corners[:, 0].max())) + 1, self.width)
        y1 = min(int(np.ceil(corners[:, 1].max())) + 1, self.height)
        if x1 <= x0 or y1 <= y0:
            return
        inside = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(inside, [np.round(corners - (x0, y0)).astype(np.int32)], 1)
        inside = inside.astype(bool)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        cos, sin = math.cos(math.radians(rect.angle)), math.sin(math.radians(rect.angle))
        u = (xs - rect.cx) * cos + (ys - rect.cy) * sin
        v = -(xs - rect.cx) * sin + (ys - rect.cy) * cos
        self.albedo[y0:y1, x0:x1][inside] = colour_fn(u, v)[inside]
        self.classes[y0:y1, x0:x1][inside] = self.index[klass]
        self.material[y0:y1, x0:x1][inside] = material

    def fill(self, polygon: np.ndarray, klass: str, material: int, colour) -> None:
        points = [np.round(polygon).astype(np.int32)]
        cv2.fillPoly(self.albedo, points, tuple(float(c) for c in colour))
        cv2.fillPoly(self.classes, points, self.index[klass])
        cv2.fillPoly(self.material, points, material)

    def cast_shadow(self, shade: np.ndarray, corners: np.ndarray, height: float) -> None:
        """Darken the ground swept by ``corners`` moved ``height`` px away from the sun."""
        swept = np.vstack([corners, corners + self.sun * height])
        cv2.fillPoly(shade, [cv2.convexHull(np.round(swept).astype(np.int32))], self.shadow_strength)

    def free(self, points, allowed: tuple[str, ...]) -> bool:
        """Whether every (x, y) point (moved into the tile) lies on one of the ``allowed`` classes."""
        xy = np.asarray(points, np.float32).reshape(-1, 2).astype(int)
        xy = np.clip(xy, 0, (self.width - 1, self.height - 1))
        return bool(np.isin(self.classes[xy[:, 1], xy[:, 0]], [self.index[name] for name in allowed]).all())


def _per_area(scene: _Scene, area, low: float, high: float) -> int:
    """How many things to place in ``area``, given between ``low`` and ``high`` per 300 x 300 px."""
    x0, y0, x1, y1 = area
    expected = scene.rng.uniform(low, high) * max(x1 - x0, 0) * max(y1 - y0, 0) / 300**2
    return int(expected + scene.rng.random())


def _jitter(rng: np.random.Generator, colour, spread: float) -> np.ndarray:
    return np.clip(np.asarray(colour, np.float32) + rng.normal(0, spread, 3), 0, 255)


# --- roads -------------------------------------------------------------------------------------


def _lay_roads(scene: _Scene) -> list[_Road]:
    """A grid of roads with irregular spacing, so blocks come in many sizes."""
    roads = []
    for vertical, extent in ((True, scene.width), (False, scene.height)):
        position = scene.n(40, 300)
        while position < extent + 60:
            verge = scene.n(10, 16) if scene.rng.random() < 0.4 else 0.0
            roads.append(_Road(vertical, position, scene.n(20, 28), scene.n(6, 10), verge))
            position += scene.n(380, 560)
    _draw_roads(scene, roads)
    return roads


def _road_strip(scene: _Scene, road: _Road, start: float, end: float) -> np.ndarray:
    """Polygon of the strip ``start``..``end`` px from the road's centre line, along its length."""
    length = scene.height if road.vertical else scene.width
    a, b = road.centre + start, road.centre + end
    if road.vertical:
        return np.array([(a, -1), (b, -1), (b, length + 1), (a, length + 1)], np.float32)
    return np.array([(-1, a), (-1, b), (length + 1, b), (length + 1, a)], np.float32)


def _draw_roads(scene: _Scene, roads: list[_Road]) -> None:
    """Layer by layer (verges, pavements, kerbs, asphalt, markings), so crossings join cleanly."""
    rng = scene.rng
    paving = _jitter(rng, (176, 172, 162), 8)
    asphalt = _jitter(rng, (112, 112, 112), 6)
    for road in roads:
        scene.fill(
            _road_strip(scene, road, -road.half_width, road.half_width),
            "low_vegetation",
            LAWN,
            _jitter(rng, (105, 135, 68), 10),
        )
    for road in roads:
        kerb = road.asphalt + road.pavement
        scene.fill(_road_strip(scene, road, -kerb, kerb), "impervious_surfaces", PAVING, paving)
    for road in roads:  # light kerb stones between carriageway and pavement
        kerb = road.asphalt + 2
        scene.fill(_road_strip(scene, road, -kerb, kerb), "impervious_surfaces", PAVING, paving * 1.1)
    for road in roads:
        scene.fill(
            _road_strip(scene, road, -road.asphalt, road.asphalt),
            "impervious_surfaces",
            ASPHALT,
            asphalt * rng.uniform(0.95, 1.05),
        )
    for road in roads:
        _draw_centre_line(scene, road, _crossings(road, roads, 0))


def _crossings(road: _Road, roads: list[_Road], margin: float) -> list[tuple[float, float]]:
    """Spans along ``road`` taken by the roads crossing it, widened by ``margin``."""
    return [
        (r.centre - r.half_width - margin, r.centre + r.half_width + margin)
        for r in roads
        if r.vertical != road.vertical
    ]


def _draw_centre_line(scene: _Scene, road: _Road, crossings: list[tuple[float, float]]) -> None:
    """Dashed white centre line; still impervious surface, but brighter than any roof."""
    length = scene.height if road.vertical else scene.width
    dash, gap = scene.n(14, 20), scene.n(14, 22)
    for start in np.arange(scene.rng.uniform(0, dash + gap) - dash, length, dash + gap):
        if any(a < start + dash and start < b for a, b in crossings):
            continue
        along = (start, start + dash)
        across = (road.centre - 1.5, road.centre + 1.5)
        x0, x1 = across if road.vertical else along
        y0, y1 = along if road.vertical else across
        scene.fill(np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)]), "impervious_surfaces", MARKING, (228, 228, 222))


def _blocks(scene: _Scene, roads: list[_Road]) -> list[tuple[float, float, float, float]]:
    """Rectangles (x0, y0, x1, y1) of land between the roads, clipped to the tile."""

    def gaps(vertical: bool, extent: int) -> list[tuple[float, float]]:
        edges = (
            [(-200.0, 0.0)]
            + sorted((r.centre - r.half_width, r.centre + r.half_width) for r in roads if r.vertical == vertical)
            + [(extent, extent + 200.0)]
        )
        return [(left[1], right[0]) for left, right in zip(edges, edges[1:]) if right[0] - left[1] > 20]

    return [(x0, y0, x1, y1) for x0, x1 in gaps(True, scene.width) for y0, y1 in gaps(False, scene.height)]


# --- buildings ---------------------------------------------------------------------------------


def _build(scene: _Scene, rect: _Rect, style: str, colour: np.ndarray, height: float) -> None:
    """A building with its shadow; gable roofs have a sunny and a shady slope and tile rows."""
    scene.cast_shadow(scene.building_shade, rect.corners(), height)
    rng = scene.rng
    across = np.array([-math.sin(math.radians(rect.angle)), math.cos(math.radians(rect.angle))])
    sunny_side = 1.0 if float(across @ scene.sun) < 0 else -1.0  # the slope facing the sun is brighter
    shady = rng.uniform(0.62, 0.8)
    period = rng.uniform(4.0, 6.0)
    half_width = rect.width / 2

    def gable(u, v):
        slope = np.where(v * sunny_side > 0, 1.0, shady)
        rows = 1.0 - 0.09 * (np.sin(2 * np.pi * v / period) > 0.5)
        ridge = np.where(np.abs(v) < 1.5, 1.15, 1.0)
        return colour * (slope * rows * ridge)[..., None]

    def flat(u, v):
        rim = (np.abs(u) > rect.length / 2 - 3) | (np.abs(v) > half_width - 3)
        return colour * np.where(rim, 1.18, 1.0)[..., None]

    scene.paint_rect(rect, "building", ROOF, gable if style == "gable" else flat)
    if style == "flat":
        _roof_boxes(scene, rect, colour)


def _roof_boxes(scene: _Scene, roof: _Rect, colour: np.ndarray) -> None:
    """Plant rooms and skylights that break up a large flat roof."""
    rng = scene.rng
    cos, sin = math.cos(math.radians(roof.angle)), math.sin(math.radians(roof.angle))
    for _ in range(rng.poisson(roof.length * roof.width / 6000)):
        u, v = rng.uniform(-0.35, 0.35) * roof.length, rng.uniform(-0.3, 0.3) * roof.width
        side = rng.uniform(8, 22)
        box = _Rect(roof.cx + u * cos - v * sin, roof.cy + u * sin + v * cos, side, side * 0.7, roof.angle)
        light = colour * rng.uniform(1.15, 1.35)
        scene.paint_rect(box, "building", ROOF, lambda u, v, light=light: np.broadcast_to(light, (*u.shape, 3)))


def _roof(scene: _Scene) -> tuple[str, np.ndarray]:
    """A roof style and colour; grey roofs are often flat."""
    name = scene.rng.choice(list(_ROOF_COLOURS), p=[0.35, 0.15, 0.25, 0.25])
    style = "flat" if name == "grey" and scene.rng.random() < 0.6 else "gable"
    return style, _jitter(scene.rng, _ROOF_COLOURS[name], 8) * scene.rng.uniform(0.9, 1.1)


def _perimeter_block(scene: _Scene, block) -> None:
    """Berlin-style block: a ring of gable-roofed buildings around a courtyard."""
    x0, y0, x1, y1 = block
    setback, depth = scene.n(4, 12), scene.n(60, 95)
    x0, y0, x1, y1 = x0 + setback, y0 + setback, x1 - setback, y1 - setback
    if min(x1 - x0, y1 - y0) < 2.5 * depth:
        return _houses(scene, block)
    _, colour = _roof(scene)
    height = scene.n(25, 45)
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    sides = [
        _Rect(cx, y0 + depth / 2, w, depth),
        _Rect(cx, y1 - depth / 2, w, depth),
        _Rect(x0 + depth / 2, cy, h - 2 * depth, depth, 90),
        _Rect(x1 - depth / 2, cy, h - 2 * depth, depth, 90),
    ]
    gateway = scene.rng.integers(4) if scene.rng.random() < 0.4 else None  # one side left open
    for index, side in enumerate(sides):
        if index != gateway:
            _build(scene, side, "gable", colour * scene.rng.uniform(0.93, 1.07), height)
    yard = (x0 + depth, y0 + depth, x1 - depth, y1 - depth)
    if scene.rng.random() < 0.3:
        _paved_area(scene, yard, cars=scene.rng.random() < 0.5)
    for _ in range(scene.rng.integers(0, 3)):  # rear buildings in the yard
        site = _find_site(scene, yard)
        if site is not None:
            _build(scene, site, *_roof(scene), scene.n(18, 32))
    _clutter_patches(scene, yard, _per_area(scene, yard, 1.5, 3.5))
    _tree_clusters(scene, yard, _per_area(scene, yard, 2.5, 5))


def _find_site(scene: _Scene, area) -> _Rect | None:
    """Room for a house-sized building on open ground in ``area``; None if the try failed."""
    x0, y0, x1, y1 = area
    rng = scene.rng
    length, width = scene.n(80, 140), scene.n(55, 90)
    if min(x1 - x0, y1 - y0) < length + 12:
        return None
    rect = _Rect(
        rng.uniform(x0 + length / 2 + 6, x1 - length / 2 - 6),
        rng.uniform(y0 + length / 2 + 6, y1 - length / 2 - 6),
        length,
        width,
        rng.choice([0.0, 90.0]) + rng.normal(0, 6),
    )
    ground = ("low_vegetation",) if scene.rng.random() < 0.5 else ("low_vegetation", "impervious_surfaces")
    return rect if scene.free(_outline_points(rect), ground) else None


def _outline_points(rect: _Rect) -> np.ndarray:
    """Corners, edge midpoints and centre: enough to tell whether a rectangle lands on free ground."""
    corners = rect.corners()
    return np.vstack([corners, (corners + np.roll(corners, 1, axis=0)) / 2, (rect.cx, rect.cy)])


def _houses(scene: _Scene, block) -> None:
    """Detached houses in gardens, each with a paved drive to the nearest road side."""
    for _ in range(_per_area(scene, block, 10, 16) + 1):
        site = _find_site(scene, block)
        if site is not None:
            _drive(scene, site, block)
            _build(scene, site, *_roof(scene), scene.n(18, 32))
    _clutter_patches(scene, block, _per_area(scene, block, 1.5, 4))
    _tree_clusters(scene, block, _per_area(scene, block, 2.5, 5))


def _drive(scene: _Scene, house: _Rect, block) -> None:
    """A paved drive from the house to the nearest edge of its block (drawn before the house)."""
    x0, y0, x1, y1 = block
    to_left, to_right, to_top, to_bottom = house.cx - x0, x1 - house.cx, house.cy - y0, y1 - house.cy
    width = scene.n(12, 20)
    colour = _jitter(scene.rng, (165, 160, 150), 10)
    if min(to_left, to_right) < min(to_top, to_bottom):
        end = x0 - 2 if to_left < to_right else x1 + 2
        polygon = [
            (house.cx, house.cy - width / 2),
            (end, house.cy - width / 2),
            (end, house.cy + width / 2),
            (house.cx, house.cy + width / 2),
        ]
    else:
        end = y0 - 2 if to_top < to_bottom else y1 + 2
        polygon = [
            (house.cx - width / 2, house.cy),
            (house.cx - width / 2, end),
            (house.cx + width / 2, end),
            (house.cx + width / 2, house.cy),
        ]
    scene.fill(np.array(polygon), "impervious_surfaces", PAVING, colour)


def _commercial(scene: _Scene, block) -> None:
    """A flat-roofed hall beside a parking lot."""
    x0, y0, x1, y1 = block
    rng = scene.rng
    margin = scene.n(6, 16)
    w, h = x1 - x0 - 2 * margin, y1 - y0 - 2 * margin
    if min(w, h) < 80:
        return _park(scene, block)
    share = rng.uniform(0.55, 0.75)
    colour = _jitter(rng, rng.choice([(150, 150, 148), (118, 118, 122), (170, 165, 158)]), 6)
    if w > h:
        hall = _Rect(x0 + margin + w * share / 2, (y0 + y1) / 2, w * share, h)
        lot = (x0 + margin + w * share + 8, y0 + margin, x1 - margin, y1 - margin)
    else:
        hall = _Rect((x0 + x1) / 2, y0 + margin + h * share / 2, w, h * share)
        lot = (x0 + margin, y0 + margin + h * share + 8, x1 - margin, y1 - margin)
    _build(scene, hall, "flat", colour, scene.n(25, 45))
    _paved_area(scene, lot, cars=True)
    _clutter_patches(scene, block, _per_area(scene, block, 2, 4), kinds=("containers", "gravel"))


def _park(scene: _Scene, block) -> None:
    """Lawn with paths, groups of trees and maybe a building site."""
    x0, y0, x1, y1 = block
    rng = scene.rng
    colour = _jitter(rng, (165, 162, 152), 8)
    for _ in range(rng.integers(0, 3)):
        a = (rng.uniform(x0, x1), y0 - 2) if rng.random() < 0.5 else (x0 - 2, rng.uniform(y0, y1))
        b = (rng.uniform(x0, x1), y1 + 2) if rng.random() < 0.5 else (x1 + 2, rng.uniform(y0, y1))
        thickness = max(int(scene.n(8, 14)), 2)
        points = np.round([a, b]).astype(np.int32)
        cv2.line(scene.albedo, *map(tuple, points), tuple(float(c) for c in colour), thickness)
        cv2.line(scene.classes, *map(tuple, points), scene.index["impervious_surfaces"], thickness)
        cv2.line(scene.material, *map(tuple, points), PAVING, thickness)
    _clutter_patches(scene, block, _per_area(scene, block, 3, 6))
    _tree_clusters(scene, block, _per_area(scene, block, 4, 7))


def _paved_area(scene: _Scene, area, cars: bool) -> None:
    """A paved yard or parking lot, optionally with rows of parked cars."""
    x0, y0, x1, y1 = area
    if x1 - x0 < 20 or y1 - y0 < 20:
        return
    scene.fill(
        np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)]),
        "impervious_surfaces",
        ASPHALT,
        _jitter(scene.rng, (122, 120, 118), 10),
    )
    if not cars:
        return
    length, width = scene.n(40, 46), scene.n(19, 22)
    across_x = (x1 - x0) < (y1 - y0)  # cars stand across the long side of the lot
    row_step, slot = length + scene.n(18, 30), width + scene.n(5, 10)
    (row_start, row_end), (slot_start, slot_end) = ((y0, y1), (x0, x1)) if across_x else ((x0, x1), (y0, y1))
    for row in np.arange(row_start + length / 2 + 4, row_end - length / 2, row_step):
        slots = np.arange(slot_start + slot / 2, slot_end - slot / 2, slot)
        for position in slots[scene.rng.random(len(slots)) < 0.25]:
            cx, cy = (position, row) if across_x else (row, position)
            _car(scene, _Rect(cx, cy, length, width, 90.0 if across_x else 0.0))


# --- small things --------------------------------------------------------------------------------


def _car(scene: _Scene, rect: _Rect) -> None:
    """A car: body colour, dark windscreen and rear window, lighter roof, small shadow."""
    rng = scene.rng
    colour = _jitter(rng, _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))], 6)
    glass = np.array([38, 42, 48], np.float32)
    front = 1.0 if rng.random() < 0.5 else -1.0
    half = rect.length / 2

    def body(u, v):
        t = u * front / half  # -1 rear .. 1 front
        windows = ((t > 0.12) & (t < 0.45)) | ((t > -0.78) & (t < -0.55))
        roof = (t >= -0.55) & (t <= 0.12) & (np.abs(v) < rect.width * 0.38)
        out = np.where(roof[..., None], np.minimum(colour * 1.12 + 10, 255), colour)
        return np.where(windows[..., None] & (np.abs(v) < rect.width * 0.42)[..., None], glass, out)

    scene.cast_shadow(scene.tree_shade, rect.corners(), scene.n(5, 8))
    scene.paint_rect(rect, "car", CAR, body)


def _park_cars(scene: _Scene, roads: list[_Road]) -> None:
    """Cars parked along both kerbs and a few driving, never in a crossing."""
    rng = scene.rng
    for road in roads:
        extent = scene.height if road.vertical else scene.width
        crossings = _crossings(road, roads, 25)
        length, width = scene.n(40, 48), scene.n(19, 22)
        kerb, lane = road.asphalt - width / 2 - 2, 0.45 * road.asphalt
        parked = rng.uniform(0, 0.22, 2)
        for offset, density in ((-kerb, parked[0]), (kerb, parked[1]), (-lane, 0.03), (lane, 0.03)):
            across = road.centre + offset
            position = rng.uniform(0, 30)
            while position < extent:
                if rng.random() < density and not any(a < position < b for a, b in crossings):
                    cx, cy = (across, position) if road.vertical else (position, across)
                    _car(scene, _Rect(cx, cy, length, width, 90.0 if road.vertical else 0.0))
                position += length + scene.n(4, 14)


def _crown(scene: _Scene, x: float, y: float, radius: float, colour: np.ndarray) -> None:
    """A round crown lit from the sun's side: dark rim, lighter centre shifted towards the sun."""
    toward_sun = -scene.sun
    cv2.circle(
        scene.tree_shade,
        (int(x + scene.sun[0] * radius * 0.8), int(y + scene.sun[1] * radius * 0.8)),
        int(radius),
        scene.shadow_strength,
        -1,
    )
    for fraction, light in ((1.0, 0.72), (0.72, 0.9), (0.42, 1.08)):
        shift = (1 - fraction) * radius * 0.6
        centre = (int(x + toward_sun[0] * shift), int(y + toward_sun[1] * shift))
        cv2.circle(scene.albedo, centre, int(radius * fraction), tuple(float(c) for c in colour * light), -1)
    cv2.circle(scene.classes, (int(x), int(y)), int(radius), scene.index["tree"], -1)
    cv2.circle(scene.material, (int(x), int(y)), int(radius), TREE, -1)


def _tree_clusters(scene: _Scene, area, count: int) -> None:
    """Groups of overlapping crowns rooted on open ground; they may overhang roads and roofs."""
    x0, y0, x1, y1 = area
    rng = scene.rng
    for _ in range(count):
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        if not scene.free((x, y), ("low_vegetation", "impervious_surfaces")):
            continue
        colour = _jitter(rng, (58, 88, 48), 8)
        for _ in range(rng.integers(2, 8)):
            radius = scene.n(18, 38)
            _crown(scene, x + rng.normal(0, radius), y + rng.normal(0, radius), radius, colour * rng.uniform(0.9, 1.1))


def _street_trees(scene: _Scene, roads: list[_Road]) -> None:
    """Rows of trees on the verges; their crowns hang over pavement and road."""
    rng = scene.rng
    for road in roads:
        if road.verge == 0:
            continue
        extent = scene.height if road.vertical else scene.width
        colour = _jitter(rng, (60, 90, 50), 8)
        for side in (-1, 1):
            across = road.centre + side * (road.asphalt + road.pavement + road.verge / 2)
            spacing = scene.n(55, 90)
            for along in np.arange(rng.uniform(0, spacing), extent, spacing):
                if rng.random() < 0.75:
                    x, y = (across, along) if road.vertical else (along, across)
                    if scene.free((x, y), ("low_vegetation",)):
                        _crown(scene, x, y, scene.n(18, 30), colour * rng.uniform(0.9, 1.1))


def _blob(scene: _Scene, x: float, y: float, radius: float) -> np.ndarray:
    """An irregular star-shaped polygon, for heaps and building sites."""
    angles = np.sort(scene.rng.uniform(0, 2 * np.pi, 9))
    radii = radius * scene.rng.uniform(0.65, 1.0, 9)
    return np.stack([x + radii * np.cos(angles), y + radii * np.sin(angles)], axis=1)


def _clutter_patches(scene: _Scene, area, count: int, kinds=("gravel", "soil", "containers")) -> None:
    """Odd things that belong to no other class: gravel heaps, building sites, containers."""
    x0, y0, x1, y1 = area
    for _ in range(count):
        kind = kinds[scene.rng.integers(len(kinds))]
        for _attempt in range(5):  # blocks are crowded; look a few times for open ground
            if _clutter_at(scene, scene.rng.uniform(x0, x1), scene.rng.uniform(y0, y1), kind):
                break


def _clutter_at(scene: _Scene, x: float, y: float, kind: str) -> bool:
    """Place one clutter object at (x, y) if it lies on open ground only; say whether it did."""
    rng = scene.rng
    ground = ("low_vegetation", "impervious_surfaces")
    if kind in ("gravel", "soil"):
        outline = _blob(scene, x, y, scene.n(35, 70) if kind == "gravel" else scene.n(40, 75))
        if not scene.free(outline, ground):
            return False
        material, colour = (GRAVEL, (178, 168, 148)) if kind == "gravel" else (SOIL, (120, 92, 66))
        scene.fill(outline, "clutter", material, _jitter(rng, colour, 10))
        return True
    colour = _jitter(rng, _CONTAINER_COLOURS[rng.integers(len(_CONTAINER_COLOURS))], 10)
    angle = rng.choice([0.0, 90.0]) + rng.normal(0, 5)
    length, width, ribs = scene.n(45, 60), scene.n(20, 26), rng.uniform(3, 5)
    step = (width + 3) * np.array([-math.sin(math.radians(angle)), math.cos(math.radians(angle))])
    containers = [_Rect(x + i * step[0], y + i * step[1], length, width, angle) for i in range(rng.integers(1, 4))]
    if not scene.free(np.vstack([rect.corners() for rect in containers]), ground):
        return False
    for rect in containers:
        scene.cast_shadow(scene.tree_shade, rect.corners(), scene.n(6, 10))
        scene.paint_rect(
            rect,
            "clutter",
            CONTAINER,
            lambda u, v: colour * (1 - 0.18 * (np.sin(2 * np.pi * u / ribs) > 0.3))[..., None],
        )
    return True


def _guarantee_clutter(scene: _Scene) -> None:
    """Every tile of fair size shows some clutter, so each class appears in each tile."""
    if (scene.classes == scene.index["clutter"]).any():
        return
    for _ in range(100):
        if _clutter_at(scene, scene.rng.uniform(0, scene.width), scene.rng.uniform(0, scene.height), "gravel"):
            return


# --- rendering -----------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, size_hw: tuple[int, int], cell: int) -> np.ndarray:
    """Unit-variance noise with features about ``cell`` px wide (coarse noise, upsampled)."""
    h, w = size_hw
    coarse = rng.standard_normal((h // cell + 2, w // cell + 2), dtype=np.float32)
    field = cv2.resize(coarse, ((w // cell + 2) * cell, (h // cell + 2) * cell), interpolation=cv2.INTER_CUBIC)
    field = field[:h, :w]
    return field / max(float(field.std()), 1e-6)


def _render(scene: _Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Texture, shadows, per-tile light and sensor noise turn the layers into an 8-bit RGB photo.

    Returns the photo and its texture and light fields, which the infrared band shares.
    """
    rng = scene.rng
    size_hw = (scene.height, scene.width)
    grain = rng.standard_normal(size_hw, dtype=np.float32)
    foliage = cv2.GaussianBlur(rng.standard_normal(size_hw, dtype=np.float32), (0, 0), 1.8)
    foliage /= max(float(foliage.std()), 1e-6)
    patches = _smooth_noise(rng, size_hw, 40)
    amplitude = _TEXTURE[scene.material]
    texture = 1 + amplitude[..., 0] * grain + amplitude[..., 1] * foliage + amplitude[..., 2] * patches
    photo = scene.albedo * texture[..., None] + _PATCH_TINT[scene.material] * np.maximum(patches, 0)[..., None]

    roofs = scene.classes == scene.index["building"]
    scene.building_shade[roofs] = 1.0  # a building's shadow falls beside it, not on its own roof
    shade = cv2.GaussianBlur(scene.building_shade * scene.tree_shade, (0, 0), 1.2)
    light = rng.uniform(0.85, 1.12) * (1 + 0.05 * _smooth_noise(rng, size_hw, 256))
    tint = rng.uniform(0.97, 1.03, 3).astype(np.float32)
    lighting = shade * light
    photo *= lighting[..., None] * tint
    return _sensor(rng, photo), texture, lighting


def _sensor(rng: np.random.Generator, bands: np.ndarray) -> np.ndarray:
    """Sensor noise and optical blur, then 8 bits."""
    bands += 2.5 * rng.standard_normal(bands.shape, dtype=np.float32)
    bands = cv2.GaussianBlur(bands, (0, 0), 0.6)
    return np.clip(bands + 0.5, 0, 255).astype(np.uint8)


def _near_infrared(scene: _Scene, texture: np.ndarray, lighting: np.ndarray) -> np.ndarray:
    """The infrared band, under the same texture and light as the photo (its noise drawn after the
    photo's, so a tile's RGB bands are the same bytes whichever band set is asked for)."""
    brightness = scene.albedo.mean(axis=-1) * _NIR_GAIN[scene.material]
    return _sensor(scene.rng, brightness * texture * lighting)


def _band_set(rgb: np.ndarray, infrared: np.ndarray | None, kind: str) -> np.ndarray:
    """The photo of band set ``kind`` (RGB, IRRG, RGBIR) from its RGB and infrared bands."""
    bands = {"R": rgb[..., 0], "G": rgb[..., 1], "B": rgb[..., 2], "IR": infrared}
    return np.stack([bands[band] for band in BAND_ORDER[kind]], axis=-1)


def generate_tile(
    seed: int, size: int | tuple[int, int], palette: Palette, kind: str = "RGB"
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic tile: (photo H x W x bands uint8, colour label H x W x 3 uint8 in palette colours).

    ``size`` is the side of a square tile or (height, width); ``kind`` the photo's band set (RGB,
    IRRG, RGBIR). The palette must name Potsdam's six classes; their colours and order come from
    it, so the label follows params.yaml.
    """
    size_hw = (size, size) if isinstance(size, int) else tuple(size)
    missing = set(CLASSES) - set(palette.names)
    if missing:
        raise ValueError(f"synthetic tiles need the Potsdam classes; the palette lacks {sorted(missing)}")
    scene = _Scene(size_hw, np.random.default_rng(seed), palette)
    roads = _lay_roads(scene)
    block_kinds = [_perimeter_block, _houses, _commercial, _park]
    for block in _blocks(scene, roads):
        block_kinds[scene.rng.choice(4, p=[0.4, 0.3, 0.2, 0.1])](scene, block)
    _park_cars(scene, roads)
    _street_trees(scene, roads)
    _guarantee_clutter(scene)
    rgb, texture, lighting = _render(scene)
    infrared = _near_infrared(scene, texture, lighting) if "IR" in BAND_ORDER[kind] else None
    return _band_set(rgb, infrared, kind), palette.index_to_rgb(scene.classes)


def boundary_free(label: np.ndarray, palette: Palette) -> np.ndarray:
    """The boundary-free version of a colour label: a band of ISPRS's radius around every class
    boundary painted black."""
    return palette.index_to_rgb(erode_boundaries(palette.rgb_to_index(label), ISPRS_RADIUS))


def tile_transform(tile: str, size: int) -> Affine:
    """Where a synthetic tile lies: Potsdam's 5 cm pixels, tiles side by side by id, in UTM zone 33N
    near Potsdam (the ground under the top-left pixel's outer corner)."""
    column, row = (int(part) for part in tile.split("_"))
    x, y = 366_000 + column * size * PIXEL_SIZE_M, 5_812_000 - row * size * PIXEL_SIZE_M
    return Affine(PIXEL_SIZE_M, 0.0, x, 0.0, -PIXEL_SIZE_M, y)


def tile_ids(count: int) -> list[str]:
    """Potsdam-style ids: rows of five tiles, 2_10 .. 2_14, 3_10 .. 3_14, ..."""
    return [f"{2 + i // 5}_{10 + i % 5}" for i in range(count)]


def write_dataset(out: TileFolder, tiles: int, size: int, seed: int, palette: Palette, kind: str = "RGB") -> list[str]:
    """Write ``tiles`` tiles as Potsdam names them into ``out``: photos of band set ``kind`` with
    world files, labels and boundary-free labels; return their tile ids.

    Each tile has its own seed derived from (``seed``, tile number), so adding tiles leaves the
    earlier ones unchanged.
    """
    ids = tile_ids(tiles)
    for number, tile in enumerate(tqdm(ids, desc="synthetic tiles", unit="tile")):
        tile_seed = int(np.random.SeedSequence([seed, number]).generate_state(1)[0])
        photo, label = generate_tile(tile_seed, size, palette, kind)
        write_image(out.photo(tile, kind), photo)
        write_world_file(out.photo(tile, kind), tile_transform(tile, size))  # no GeoTIFF tags, as Potsdam's
        write_image(out.label(tile), label)
        write_image(out.label(tile, BOUNDARY_FREE), boundary_free(label, palette))
    return ids
