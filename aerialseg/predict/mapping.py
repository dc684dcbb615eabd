"""Photos of any size in, land-cover maps out: the one path from a raster file to its map.

The predict stage (:func:`predict_test_tiles`) and the aerialseg-predict command
(:func:`map_raster`) both open a photo with :func:`photo_rows` (rasterio, read by rows, the
bands the model takes by name, empty pixels filled, at the model's resolution) and predict it
with aerialseg.predict.inference.predict_rows, so the two can never disagree; they differ only in
what they write. The stage keeps the pipeline's files (a colour PNG and a class-index GeoTIFF in
the photo's CRS and place per tile and mode); the command writes georeferenced Cloud-Optimized
GeoTIFFs row band by row band, on the photo's grid whatever resolution it was predicted at, so a
photo larger than memory is mapped in bounded memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from aerialseg.data.palette import IGNORE_INDEX, Palette
from aerialseg.data.potsdam import BAND_ORDER, parse_tile_name
from aerialseg.data.splits import read_split
from aerialseg.pipeline.atomic import atomic_dir
from aerialseg.pipeline.params import Params, PredictParams
from aerialseg.pipeline.paths import Layout, PredictionFolder
from aerialseg.predict.blending import MODES, Blending, FinishedRows, Rows, probabilities_to_index
from aerialseg.predict.inference import Predictor, predict_map, predict_rows
from aerialseg.predict.model_source import ModelSource, model_card, prediction_settings
from aerialseg.predict.resampling import SAME_RESOLUTION, PhotoRows, ResampledRows, model_shape, to_photo_grid
from aerialseg.predict.runtimes import load_predictor
from aerialseg.raster.bands import choose_bands, file_band_names
from aerialseg.raster.georef import PixelSizeError, ground_pixel_sides, read_georef, world_file_path
from aerialseg.raster.opening import open_raster
from aerialseg.raster.pictures import read_valid, write_image
from aerialseg.raster.streaming import BLOCK_SIZE, RasterRows, cog_writer, fill_values

INDEX_NODATA = IGNORE_INDEX  # 255: the class-index maps' empty pixels, as the predict stage's
PROBABILITY_NODATA = 0  # the probability maps' empty pixels; predicted ones are stored 1..255


@dataclass(frozen=True)
class ModelInput:
    """A photo as a model takes it: ``rows``, its bands in the model's order at the model's
    resolution (``photo`` itself where that is the photo's own), what blending predicts; ``photo``,
    the photo on its own grid, which the map is written on; and the notes on how it was taken."""

    photo: RasterRows
    rows: Rows
    notes: tuple[str, ...] = ()

    def to_photo(self, pieces: Iterator[FinishedRows]) -> Iterator[PhotoRows]:
        """Finished probability rows of ``rows`` as (first row, probabilities, classes) of the photo's grid."""
        if self.rows is self.photo:
            return ((first, probabilities, probabilities_to_index(probabilities)) for first, probabilities in pieces)
        return to_photo_grid(pieces, self.rows.shape[:2], self.photo.shape[:2])


@contextlib.contextmanager
def photo_rows(
    photo: str | Path,
    model_pixel_size_m: float | None,
    model_bands: Sequence[str],
    photo_pixel_size_m: float | None = None,
    photo_bands: Sequence[str] | None = None,
) -> Iterator[ModelInput]:
    """The photo, read by rows, as a model trained on ``model_bands`` at ``model_pixel_size_m``
    metres per pixel (None: unknown) takes it: its bands chosen by name (aerialseg.raster.bands;
    ``photo_bands``: ``--bands``), its empty pixels filled, and resampled to the model's resolution
    where the photo's is known (its CRS's, else ``photo_pixel_size_m``: ``--pixel-size``) and not
    within 1 % of it (aerialseg.predict.resampling)."""
    path = Path(photo)
    with open_raster(path) as dataset:
        names = file_band_names(dataset.descriptions, dataset.colorinterp)
        bands = choose_bands(str(path), names, model_bands, photo_bands)
        source = RasterRows(path, dataset, bands.indexes, fill_values(dataset, bands.indexes))
        sides, notes = photo_resolution(source, photo_pixel_size_m, model_pixel_size_m)
        height, width = model_shape(source.shape[:2], sides, model_pixel_size_m)
        rows = source if (height, width) == source.shape[:2] else ResampledRows(source, height, width)
        yield ModelInput(source, rows, bands.notes + notes)


def photo_resolution(
    photo: RasterRows, given: float | None, model_size: float | None
) -> tuple[tuple[float, float] | None, tuple[str, ...]]:
    """The width and height of the photo's pixels in metres, and notes on them. Its CRS's where it
    gives them (a photo whose georeferencing has no one size is refused unless ``given``); else
    ``given`` (square pixels); else None, with a note naming the model's. Nothing is asked where
    the model's is unknown: nothing is resampled."""
    if model_size is None:
        return None, ()
    name, advice = str(photo.path), "give its metres per pixel with --pixel-size M"
    try:
        own = ground_pixel_sides(photo.georeference, photo.shape[:2], name, instead=advice)
    except PixelSizeError:
        if given is None:
            raise
        return (given, given), ()
    if own is None and given is None:
        return None, (
            f"{name}: its ground resolution is unknown (no CRS in metres or degrees): mapped as it is, while the "
            f"model was trained at {model_size:g} m per pixel (give --pixel-size M to resample it to that)",
        )
    if own is None:
        return (given, given), ()
    if given is not None and any(abs(given / side - 1) >= SAME_RESOLUTION for side in own):
        shown = " x ".join(f"{side:.4g}" for side in dict.fromkeys(own))
        return own, (f"{name}: its CRS gives {shown} m per pixel: --pixel-size {given:g} is not used for it",)
    return own, ()


def photo_notes(
    photo: str | Path,
    model_pixel_size_m: float | None,
    model_bands: Sequence[str],
    photo_pixel_size_m: float | None = None,
    photo_bands: Sequence[str] | None = None,
) -> list[str]:
    """What a user should know before ``photo`` is mapped: bands left out or reordered, an unknown
    resolution, no georeferencing. Opening it here also refuses a photo that cannot be mapped
    before any other is started."""
    with photo_rows(photo, model_pixel_size_m, model_bands, photo_pixel_size_m, photo_bands) as taken:
        notes = list(taken.notes)
        if not taken.photo.georeference.located:
            notes.append(f"{photo}: not georeferenced (no GeoTIFF tags or world file): the map is in pixel coordinates")
        return notes


# --- aerialseg-predict: Cloud-Optimized GeoTIFFs ----------------------------------------------


def map_raster(
    photo: str | Path,
    index_path: str | Path,
    predictor: Predictor,
    palette: Palette,
    blending: Blending,
    *,
    model_pixel_size_m: float | None,
    model_bands: Sequence[str],
    photo_pixel_size_m: float | None = None,
    photo_bands: Sequence[str] | None = None,
    probabilities_path: str | Path | None = None,
    block_size: int = BLOCK_SIZE,
    row_writers: Sequence[Callable[[np.ndarray], None]] = (),
) -> None:
    """Map ``photo`` into Cloud-Optimized GeoTIFFs in its CRS and on its pixel grid, predicted at
    the model's resolution and from its bands (see :func:`photo_rows`, which explains the others).

    ``index_path``: the class of each pixel (uint8), with the class colours as its colour table
    and the class names in its metadata, so a GIS shows it coloured and in place; INDEX_NODATA
    (declared) where the photo is empty. ``probabilities_path``, if given: one band per class, the
    probability times 255 (uint8, 1 to 255; the band scale 1/255 gives it back), PROBABILITY_NODATA
    (declared) where the photo is empty. Rows are written as blending finishes them: the photo is
    never whole in memory, and a progress bar counts the windows and shows the time left.
    ``row_writers`` get the same finished class-index rows, (n, W) uint8, top to bottom (e.g.
    aerialseg.predict.vectorise's polygons).
    """
    photo = Path(photo)
    tags = map_tags(palette, blending)
    with (
        photo_rows(photo, model_pixel_size_m, model_bands, photo_pixel_size_m, photo_bands) as taken,
        contextlib.ExitStack() as outputs,
    ):
        height, width, _ = taken.photo.shape
        common = dict(height=height, width=width, georeference=taken.photo.georeference, tags=tags)
        common.update(block_size=block_size)
        index_colours = dict(colours=palette.colours, descriptions=["class index (see CLASS_NAMES)"])
        write_index = outputs.enter_context(
            cog_writer(index_path, bands=1, nodata=INDEX_NODATA, **index_colours, **common)
        )
        write_probabilities = None
        if probabilities_path:
            per_class = dict(descriptions=palette.names, scales=[1 / 255] * palette.num_classes, resampling="average")
            write_probabilities = outputs.enter_context(
                cog_writer(
                    probabilities_path, bands=palette.num_classes, nodata=PROBABILITY_NODATA, **per_class, **common
                )
            )
        stream = predict_rows(predictor, taken.rows, blending, progress=True, label=f"{photo.name}: ")
        pieces = outputs.enter_context(contextlib.closing(stream))  # a failed write ends its progress bar first
        for first, probabilities, index in taken.to_photo(pieces):
            valid = taken.photo.valid(first, len(index))
            index = np.where(valid, index, INDEX_NODATA)
            write_index(index[..., None])
            for write_rows in row_writers:
                write_rows(index)
            if write_probabilities:
                write_probabilities(probability_bytes(probabilities, valid))
        tqdm.write(
            f"{photo.name}: predicted; making the Cloud-Optimized GeoTIFF (tiles and overviews)", file=sys.stderr
        )


def probability_bytes(probabilities: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Probabilities 0..1 as bytes 1..255 (rounded, 0.002 apart; a quarter of float32's size), and
    PROBABILITY_NODATA (0) where not ``valid``: a probability under 0.2 % is stored as 1 (0.004),
    so that no predicted pixel reads as empty."""
    stored = np.rint(np.clip(probabilities, 0, 1) * 255).astype(np.uint8)
    np.maximum(stored, 1, out=stored)
    if valid is not None:
        stored[~valid] = PROBABILITY_NODATA
    return stored


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
    predictor: Predictor,
    palette: Palette,
    out: PredictionFolder,
    blendings: Sequence[Blending],
) -> None:
    """Predict one photo as each of ``blendings`` says (one per mode); write the colour PNG and
    the class-index TIF of each, left empty (IGNORE_INDEX, black) where the photo holds nothing.

    Each map gets the photo's world file (``.pgw``, ``.tfw``) and the TIF its CRS and transform, so
    the map lies on the photo in a GIS; a photo without a world file is warned about.
    """
    bands = BAND_ORDER[parse_tile_name(photo).kind]  # the stage's photos are of the model's kind, by name
    with photo_rows(photo, None, bands, None, bands) as taken:  # names a missing or unreadable photo
        georef, empty = read_georef(photo), ~read_valid(photo)
        if not georef.world_file:
            tqdm.write(
                f"warning: {photo} has no world file ({world_file_path(photo).name}): the maps of tile {tile} are "
                "written without one, so a GIS cannot place them (GeoTIFF tags, if any, are kept in the .tif)"
            )
        for blending in blendings:
            index = predict_map(predictor, taken.rows, blending, progress=True)
            index[empty] = IGNORE_INDEX
            write_image(out.map(blending.mode, tile, ".png"), palette.index_to_rgb(index), georef)
            write_image(out.map(blending.mode, tile, ".tif"), index, georef)


def predict_as_the_card_says(layout: Layout, params: Params, params_name: str = "params.yaml") -> None:
    """The predict stage: :func:`predict_test_tiles` with the classes, window and ``predict``
    settings of the model's card, as aerialseg-predict takes them (aerialseg.predict.model_source):
    ``params`` (read from ``params_name``) changes the settings it sets, and classes other than
    the card's are refused in one line."""
    advice = "run `dvc repro`, which trains the model again on these classes, or put back the classes it was trained on"
    card = model_card(ModelSource.of_file(layout.model), params, Path(params_name), advice).card
    options = prediction_settings(card, params, {}, str(layout.model))
    predict_test_tiles(layout, card.palette, window=card.window, options=options)


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
