"""Photos of any size in, land-cover maps out: the one path from a raster file to its map.

The predict stage (:func:`predict_test_tiles`) and the aerialseg-predict command
(:func:`map_raster`) both open a photo with :func:`photo_rows` (rasterio, read by rows, the
bands the model takes) and predict it with aerialseg.predict.inference.predict_rows, so the two can
never disagree; they differ only in what they write. The stage keeps the pipeline's files (a
colour PNG and a class-index GeoTIFF in the photo's CRS and place per tile and mode); the command
writes georeferenced Cloud-Optimized GeoTIFFs row band by row band, so a photo larger than
memory is mapped in bounded memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from aerialseg.data.palette import IGNORE_INDEX, Palette
from aerialseg.data.splits import read_split
from aerialseg.pipeline.atomic import atomic_dir
from aerialseg.pipeline.params import PredictParams
from aerialseg.pipeline.paths import Layout, PredictionFolder
from aerialseg.predict.blending import MODES, Blending, probabilities_to_index
from aerialseg.predict.inference import KerasPredictor, load_predictor, predict_map, predict_rows, usable_channels
from aerialseg.raster.georef import read_georef, world_file_path
from aerialseg.raster.pictures import read_valid, write_image
from aerialseg.raster.streaming import BLOCK_SIZE, RasterRows, cog_writer, open_raster


@contextlib.contextmanager
def photo_rows(photo: str | Path, channels: int) -> Iterator[RasterRows]:
    """The photo, read by rows, as a model taking ``channels`` bands gets it (see
    aerialseg.predict.inference.usable_channels: RGBA and RGBIR photos give their RGB bands)."""
    with open_raster(photo) as dataset:
        yield RasterRows(Path(photo), dataset, usable_channels(dataset.count, channels, str(photo)))


def photo_notes(photo: str | Path, channels: int) -> list[str]:
    """What a user should know before ``photo`` is mapped: bands left out, no georeferencing.
    Opening it here also refuses a photo that cannot be mapped before any other is started."""
    with photo_rows(photo, channels) as rows:
        notes = []
        if rows.dropped_bands:
            notes.append(
                f"{photo}: has {rows.bands + rows.dropped_bands} bands and the model takes {rows.bands}: "
                f"mapping it from bands 1 to {rows.bands} (RGB)"
            )
        if not rows.georeference.located:
            notes.append(f"{photo}: not georeferenced (no GeoTIFF tags or world file): the map is in pixel coordinates")
        return notes


# --- aerialseg-predict: Cloud-Optimized GeoTIFFs ----------------------------------------------


def map_raster(
    photo: str | Path,
    index_path: str | Path,
    predictor: KerasPredictor,
    palette: Palette,
    blending: Blending,
    probabilities_path: str | Path | None = None,
    block_size: int = BLOCK_SIZE,
    row_writers: Sequence[Callable[[np.ndarray], None]] = (),
) -> None:
    """Map ``photo`` into Cloud-Optimized GeoTIFFs in its CRS and on its pixel grid.

    ``index_path``: the class of each pixel (uint8), with the class colours as its colour table
    and the class names in its metadata, so a GIS shows it coloured and in place.
    ``probabilities_path``, if given: one band per class, the probability times 255 (uint8; the
    band scale 1/255 gives it back). Rows are written as blending finishes them: the photo is
    never whole in memory, and a progress bar counts the windows and shows the time left.
    ``row_writers`` get the same finished class-index rows, (n, W) uint8, top to bottom (e.g.
    aerialseg.predict.vectorise's polygons).
    """
    photo = Path(photo)
    tags = map_tags(palette, blending)
    with photo_rows(photo, predictor.channels) as rows, contextlib.ExitStack() as outputs:
        height, width, _ = rows.shape
        common = dict(height=height, width=width, georeference=rows.georeference, tags=tags, block_size=block_size)
        index_colours = dict(colours=palette.colours, descriptions=["class index (see CLASS_NAMES)"])
        write_index = outputs.enter_context(cog_writer(index_path, bands=1, **index_colours, **common))
        write_probabilities = None
        if probabilities_path:
            per_class = dict(descriptions=palette.names, scales=[1 / 255] * palette.num_classes, resampling="average")
            write_probabilities = outputs.enter_context(
                cog_writer(probabilities_path, bands=palette.num_classes, **per_class, **common)
            )
        for _, probabilities in predict_rows(predictor, rows, blending, progress=True, label=f"{photo.name}: "):
            index = probabilities_to_index(probabilities)
            write_index(index[..., None])
            for write_rows in row_writers:
                write_rows(index)
            if write_probabilities:
                write_probabilities(probability_bytes(probabilities))
        tqdm.write(
            f"{photo.name}: predicted; making the Cloud-Optimized GeoTIFF (tiles and overviews)", file=sys.stderr
        )


def probability_bytes(probabilities: np.ndarray) -> np.ndarray:
    """Probabilities 0..1 as bytes 0..255 (rounded): a quarter of float32's size, 0.002 apart."""
    return np.rint(np.clip(probabilities, 0, 1) * 255).astype(np.uint8)


def map_tags(palette: Palette, blending: Blending) -> dict[str, str]:
    """Metadata of a map: what its values mean and how it was predicted."""
    return {
        "CLASS_NAMES": json.dumps(list(palette.names)),
        "CLASS_COLOURS": json.dumps([list(colour) for colour in palette.colours]),
        "PREDICTION": json.dumps(dataclasses.asdict(blending)),
    }


# --- The predict stage ------------------------------------------------------------------------


def write_tile_predictions(
    photo: str | Path,
    tile: str,
    predictor: KerasPredictor,
    palette: Palette,
    out: PredictionFolder,
    blendings: Sequence[Blending],
) -> None:
    """Predict one photo as each of ``blendings`` says (one per mode); write the colour PNG and
    the class-index TIF of each, left empty (IGNORE_INDEX, black) where the photo holds nothing.

    Each map gets the photo's world file (``.pgw``, ``.tfw``) and the TIF its CRS and transform, so
    the map lies on the photo in a GIS; a photo without a world file is warned about.
    """
    with photo_rows(photo, predictor.channels) as rows:  # names a missing or unreadable photo
        georef, empty = read_georef(photo), ~read_valid(photo)
        if not georef.world_file:
            tqdm.write(
                f"warning: {photo} has no world file ({world_file_path(photo).name}): the maps of tile {tile} are "
                "written without one, so a GIS cannot place them (GeoTIFF tags, if any, are kept in the .tif)"
            )
        for blending in blendings:
            index = predict_map(predictor, rows, blending, progress=True)
            index[empty] = IGNORE_INDEX
            write_image(out.map(blending.mode, tile, ".png"), palette.index_to_rgb(index), georef)
            write_image(out.map(blending.mode, tile, ".tif"), index, georef)


def predict_test_tiles(layout: Layout, palette: Palette, window: int, options: PredictParams) -> None:
    """The predict stage: map every whole test tile, plainly and smooth-blended.

    data/predictions is built aside and swapped in only when every tile is done, so a failure
    keeps the previous predictions.
    """
    tiles = read_split(layout.patches.splits, "test")
    blendings = [Blending.from_params(options, window, mode) for mode in MODES]
    predictor = load_predictor(layout.model, palette.num_classes, window)
    with atomic_dir(layout.predictions.path) as staging:
        for tile in tqdm(tiles, desc="predict", unit="tile"):
            write_tile_predictions(
                layout.resized.photo(tile), tile, predictor, palette, PredictionFolder(staging), blendings
            )
