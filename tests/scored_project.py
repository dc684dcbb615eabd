"""A scored project for the evaluation and reporting tests: resized tiles (labels full and
boundary-free), predictions with known errors, a training history and, on request, snapshots of
known skill, under a temporary root."""

import keras
import numpy as np
import pandas as pd
from conftest import repo_params

from aerialseg.data.boundaries import erode_boundaries
from aerialseg.data.splits import write_splits
from aerialseg.pipeline.paths import Layout
from aerialseg.raster.pictures import write_image

TEST_TILES = ["2_10", "2_11"]
VAL_TILE = "3_10"
SHAPE = (32, 48)
HISTORY_EPOCHS = range(1, 5)
BOUNDARY_RADIUS = 1


SCORING_PARAMS = {
    "evaluate": {"labels": "full", "snapshot_modes": ["plain", "smooth"]},
    "patches": {"patch_size": 16},
    "predict": {"subdivisions": 2, "window_function": "spline", "tta": "none", "batch_size": 8},
}


def scored_project(root, changes: dict | None = None) -> dict:
    """Write the project under ``root``; return its layout, params, labels and predictions."""
    layout, params = Layout(root), repo_params({**SCORING_PARAMS, **(changes or {})})
    palette = params.palette
    write_splits(layout.patches.splits, {"train": ["1_1"], "val": [VAL_TILE], "test": TEST_TILES})
    rng = np.random.default_rng(0)
    labels = {}
    for tile in TEST_TILES + [VAL_TILE]:
        labels[tile] = rng.integers(0, palette.num_classes, SHAPE).astype(np.uint8)
        labels[tile][:, : SHAPE[1] // 2] = labels[tile][0, 0]  # one class on the left half, noise on the right
        write_image(layout.resized.label(tile), palette.index_to_rgb(labels[tile]))
        boundary_free = palette.index_to_rgb(erode_boundaries(labels[tile], BOUNDARY_RADIUS))
        write_image(layout.resized.label(tile, "no_boundary"), boundary_free)
        write_image(layout.resized.photo(tile), palette.index_to_rgb(labels[tile]))
    predictions = {
        mode: {tile: with_errors(labels[tile], share, rng) for tile in TEST_TILES}
        for mode, share in (("plain", 0.4), ("smooth", 0.2))
    }
    for mode, maps in predictions.items():
        for tile, index in maps.items():
            write_prediction(layout, mode, tile, index, palette)
    history = pd.DataFrame(
        {
            "epoch": HISTORY_EPOCHS,
            "loss": [1.0, 0.8, 0.6, 0.5],
            "accuracy": [0.3, 0.5, 0.6, 0.7],
            "jaccard": [0.1, 0.3, 0.4, 0.5],
            "val_loss": [1.1, 0.9, 0.7, 0.6],
            "val_accuracy": [0.3, 0.4, 0.5, 0.6],
            "val_jaccard": [0.1, 0.2, 0.3, 0.4],
            "patches_per_s": [100.0] * 4,
        }
    )
    layout.train_history.parent.mkdir(parents=True)
    history.to_csv(layout.train_history, index=False)
    return {"layout": layout, "params": params, "palette": palette, "labels": labels, "predictions": predictions}


def with_errors(label: np.ndarray, share: float, rng) -> np.ndarray:
    wrong = rng.random(label.shape) < share
    return np.where(wrong, (label + 1) % 6, label).astype(np.uint8)


def write_prediction(layout: Layout, mode: str, tile: str, index: np.ndarray, palette) -> None:
    write_image(layout.predictions.map(mode, tile, ".tif"), index)
    write_image(layout.predictions.map(mode, tile, ".png"), palette.index_to_rgb(index))


def nearest_colour_model(palette) -> keras.Model:
    """A 1x1 convolution whose logits are minus the squared distance to each class colour.

    On photos painted in the class colours it predicts every pixel right: a snapshot of known skill.
    """
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Conv2D(palette.num_classes, 1, activation="softmax")(inputs)
    model = keras.Model(inputs, outputs)
    colours = np.asarray(palette.colours, np.float32)
    sharpness = 10 / 255**2
    model.layers[-1].set_weights([(2 * colours.T * sharpness)[None, None], -(colours**2).sum(axis=1) * sharpness])
    return model


def write_snapshots(layout: Layout, palette) -> keras.Model:
    """models/model.keras plus snapshots: epoch 2 predicts perfectly, epoch 4 has all-zero weights."""
    model = nearest_colour_model(palette)
    layout.snapshots.path.mkdir(parents=True)
    model.save(layout.model)
    model.save_weights(layout.snapshots.weights(2))
    model.layers[-1].set_weights([np.zeros_like(w) for w in model.layers[-1].get_weights()])
    model.save_weights(layout.snapshots.weights(4))
    return model


def write_snapshot_maps(layout: Layout, labels: dict, palette) -> None:
    for epoch in (2, 4):
        for mode in ("plain", "smooth"):
            write_image(
                layout.snapshots.map(epoch, mode), palette.index_to_rgb(np.roll(labels[VAL_TILE], epoch, axis=1))
            )


def pooled(maps: dict) -> np.ndarray:
    return np.concatenate([maps[tile].ravel() for tile in TEST_TILES])
