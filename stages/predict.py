"""predict stage: map every whole test tile with the trained model, plainly and smooth-blended.

Outputs data/predictions/{plain,smooth}/top_potsdam_<tile>_pred.png (colour map) and
..._pred.tif (class indices, with the photo's GeoTIFF tags). The folder is built aside and
swapped in only when every tile is done, so a failure keeps the previous predictions.
"""

from pathlib import Path

import keras
from tqdm import tqdm

import aerialseg.model  # noqa: F401  registers the encoder preprocessing layer a saved model may use
from aerialseg.blending import keras_predictor, write_tile_predictions
from aerialseg.config import load_params
from aerialseg.tiles import atomic_dir, photo_name
from aerialseg.tiling import read_split

MODEL_PATH = Path("models/model.keras")
SPLITS = Path("data/patches/splits.json")
PHOTOS = Path("data/resized/images")
OUT = Path("data/predictions")


def main() -> None:
    params = load_params()
    tiles = read_split(SPLITS, "test")
    predictor = keras_predictor(keras.saving.load_model(MODEL_PATH), params.palette.num_classes)
    with atomic_dir(OUT) as out_dir:
        for tile in tqdm(tiles, desc="predict", unit="tile"):
            write_tile_predictions(PHOTOS / photo_name(tile), tile, predictor, params.palette, out_dir,
                                   window=params.patches.patch_size, **params.predict.model_dump())


if __name__ == "__main__":
    main()
