"""Applying a trained Keras model: whole photos in, class maps out; the predict stage.

aerialseg.blending holds the algorithm over a plain ``predict_batch`` function; this module
adapts a Keras model to it (checking its input and output once), and writes the maps of the
test tiles as the pipeline stores them.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from tqdm import tqdm

import aerialseg.model  # noqa: F401  registers the encoder preprocessing layer a saved model may use
from aerialseg.atomic import atomic_dir
from aerialseg.blending import MODES, predict_probabilities, probabilities_to_index
from aerialseg.config import PredictParams
from aerialseg.georef import read_georef, world_file_path
from aerialseg.layout import Layout, PredictionFolder
from aerialseg.palette import Palette
from aerialseg.tiles import read_image, write_image
from aerialseg.tiling import read_split


class KerasPredictor:
    """``predict_batch`` for a Keras model, checked once against the classes it must output.

    Channels: an image with more channels than the model takes is cut to the model's first
    channels when the model takes 3, so RGBA pictures and Potsdam's 4-band RGBIR tiles (infrared
    last) are predicted from their RGB bands. Fewer channels than the model takes, or extra
    channels for a model that does not take 3, is an error naming both counts.
    """

    def __init__(self, model, num_classes: int):
        input_shape, output_shape = model.input_shape, model.output_shape
        if not isinstance(input_shape, tuple) or not isinstance(output_shape, tuple):
            raise ValueError(
                f"model {model.name!r}: expected one input and one output, got input shape "
                f"{input_shape} and output shape {output_shape}"
            )
        if output_shape[-1] != num_classes:
            raise ValueError(
                f"model {model.name!r} outputs {output_shape[-1]} classes per pixel, but "
                f"{num_classes} classes are expected (output shape {output_shape})"
            )
        self.model = model
        self.channels = input_shape[-1]
        self.num_classes = num_classes

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(fit_channels(batch, self.channels, source="batch")))


def fit_channels(image: np.ndarray, channels: int, source: str = "image") -> np.ndarray:
    """``image`` (..., C) cut to the ``channels`` a model takes: the first 3 (RGB) of RGBA or RGBIR."""
    available = image.shape[-1]
    if available == channels:
        return image
    if available > channels == 3:
        return image[..., :3]
    raise ValueError(
        f"{source}: has {available} channel(s) but the model takes {channels}"
        + ("" if available < channels else "; only extra channels beyond RGB are dropped")
    )


def predict_map(
    predictor: KerasPredictor, image: np.ndarray, window: int, mode: str, options: PredictParams, progress: bool = False
) -> np.ndarray:
    """Class-index map (uint8) of ``image``, plain or smooth-blended with the ``predict`` settings."""
    probabilities = predict_probabilities(
        image,
        predictor,
        window,
        predictor.num_classes,
        mode=mode,
        subdivisions=options.subdivisions,
        window_function=options.window_function,
        tta=options.tta,
        batch_size=options.batch_size,
        progress=progress,
    )
    return probabilities_to_index(probabilities)


def write_tile_predictions(
    photo: str | Path,
    tile: str,
    predictor: KerasPredictor,
    palette: Palette,
    out: PredictionFolder,
    window: int,
    options: PredictParams,
) -> None:
    """Predict one photo in each mode; write the colour PNG and the class-index TIF of each.

    Each map gets the photo's world file (``.pgw``, ``.tfw``) and the TIF its GeoTIFF tags, so the
    map lies on the photo in a GIS; a photo without a world file is warned about.
    """
    image = fit_channels(read_image(photo), predictor.channels, source=str(photo))
    georef = read_georef(photo)
    if georef.world is None:
        print(
            f"warning: {photo} has no world file ({world_file_path(photo).name}): the maps of tile {tile} are "
            "written without one, so a GIS cannot place them (GeoTIFF tags, if any, are kept in the .tif)"
        )
    for mode in MODES:
        index = predict_map(predictor, image, window, mode, options, progress=True)
        write_image(out.map(mode, tile, ".png"), palette.index_to_rgb(index))
        write_image(out.map(mode, tile, ".tif"), index, extratags=georef.geotags)
        for suffix in (".png", ".tif"):
            georef.write_world_file(out.map(mode, tile, suffix))


def predict_test_tiles(layout: Layout, palette: Palette, window: int, options: PredictParams) -> None:
    """The predict stage: map every whole test tile, plainly and smooth-blended.

    data/predictions is built aside and swapped in only when every tile is done, so a failure
    keeps the previous predictions.
    """
    tiles = read_split(layout.patches.splits, "test")
    predictor = KerasPredictor(keras.saving.load_model(layout.model), palette.num_classes)
    with atomic_dir(layout.predictions.path) as staging:
        for tile in tqdm(tiles, desc="predict", unit="tile"):
            write_tile_predictions(
                layout.resized.photo(tile), tile, predictor, palette, PredictionFolder(staging), window, options
            )
