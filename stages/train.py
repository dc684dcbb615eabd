"""train stage: fit the U-Net on the patches, log every epoch to MLflow, snapshot, resume.

Outputs: models/model.keras (written only when training finished, so a failed run keeps the last
good model), models/snapshots/ (weights and predicted maps every `snapshot_every` epochs),
metrics/train_history.csv and metrics/train.json. While it runs, models/checkpoint/ holds the last
finished epoch, so a killed run resumes there (not a DVC output; removed when training finishes).
"""

import json
import math
import time
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd

from aerialseg import tracking
from aerialseg.blending import predict_map
from aerialseg.checkpoint import Checkpoint, TrainingState, code_digest, fingerprint
from aerialseg.config import load_params
from aerialseg.dataset import PatchSequence, open_patches
from aerialseg.losses import class_weights_from_counts, make_loss
from aerialseg.metrics import training_metrics
from aerialseg.model import build_model, set_encoder_trainable
from aerialseg.tiles import atomic_file, photo_name, read_image, write_image, write_json
from aerialseg.tiling import read_split

PATCHES = Path("data/patches")
RESIZED = Path("data/resized")
MODELS = Path("models")
MODEL_PATH = MODELS / "model.keras"
SNAPSHOTS = MODELS / "snapshots"
CHECKPOINT = MODELS / "checkpoint"
RUN_FILE = MODELS / "mlflow_run.json"
HISTORY = Path("metrics/train_history.csv")
SUMMARY = Path("metrics/train.json")
DISTRIBUTION = Path("metrics/class_distribution.json")


class EpochEnd(keras.callbacks.Callback):
    """After each epoch: snapshot if due, save the checkpoint, then log to MLflow (in that order,
    so a kill in between never logs an epoch that a resumed run would train again)."""

    def __init__(self, state: TrainingState, checkpoint: Checkpoint, snapshot, snapshot_every: int, patches: int):
        super().__init__()
        self.state, self.checkpoint, self.snapshot = state, checkpoint, snapshot
        self.snapshot_every, self.patches = snapshot_every, patches

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.trained = time.perf_counter()  # the epoch's training ends here; validation follows

    def on_epoch_end(self, epoch, logs=None):
        number = epoch + 1
        logs["patches_per_s"] = self.patches / (self.trained - self.started)  # the progress bar shows it
        row = {"epoch": number, **{k: float(v) for k, v in logs.items()}}
        if number % self.snapshot_every == 0:
            self.snapshot(self.model, number)
        self.state.epoch, self.state.history = number, self.state.history + [row]
        self.checkpoint.save(self.model, self.state)
        mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=number)


def snapshot_writer(params, val_photo: np.ndarray):
    """Save the weights and the predicted map of a fixed validation tile, plain and smooth."""
    def snapshot(model, epoch):
        SNAPSHOTS.mkdir(parents=True, exist_ok=True)
        with atomic_file(SNAPSHOTS / f"epoch_{epoch:03d}.weights.h5") as tmp:
            model.save_weights(tmp)
        for mode in ("plain", "smooth"):
            index = predict_map(model, val_photo, params.patches.patch_size, params.palette.num_classes, mode,
                                **params.predict.model_dump())
            colours = params.palette.index_to_rgb(index)
            write_image(SNAPSHOTS / f"epoch_{epoch:03d}_{mode}.png", colours)
            tracking.log_map(colours, f"val_map_{mode}", epoch)
    return snapshot


def compile_model(model, cfg, num_classes: int, class_weights, epochs: int, steps_per_epoch: int) -> None:
    """Adam with the learning rate decayed by a cosine over ``epochs``: the last epochs settle
    instead of hopping between minima, so the model written at the end is a good one."""
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, epochs * steps_per_epoch, alpha=0.01)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=make_loss(cfg.loss, num_classes, class_weights),
                  metrics=training_metrics(num_classes))


def fresh_model(params, class_weights, steps_per_epoch: int):
    """A new model, compiled for its first phase: the frozen-encoder epochs if any, else all."""
    cfg = params.train
    model = build_model(cfg.model, params.palette.num_classes, encoder=cfg.encoder,
                        encoder_weights=cfg.encoder_weights, base_filters=cfg.base_filters,
                        batch_norm=cfg.batch_norm, dropout=cfg.dropout)
    if cfg.freeze_encoder_epochs:
        set_encoder_trainable(model, False)
    compile_model(model, cfg, params.palette.num_classes, class_weights,
                  cfg.freeze_encoder_epochs or cfg.epochs, steps_per_epoch)
    return model


def fit(model, train, val, state, callbacks, cfg, num_classes, class_weights) -> None:
    """Train from the last finished epoch. After the frozen-encoder epochs the encoder is
    unfrozen and the model recompiled, with a fresh optimizer for the fine-tuning epochs.

    ``shuffle=False``: PatchSequence shuffles itself, seeded by the epoch. Keras' own batch
    shuffling draws from Python's global random state, which a resumed process does not share.
    """
    options = dict(validation_data=val, callbacks=callbacks, shuffle=False)
    if state.epoch < cfg.freeze_encoder_epochs:
        model.fit(train, initial_epoch=state.epoch, epochs=cfg.freeze_encoder_epochs, **options)
        set_encoder_trainable(model, True)
        compile_model(model, cfg, num_classes, class_weights, cfg.epochs - cfg.freeze_encoder_epochs, len(train))
    if state.epoch < cfg.epochs:
        model.fit(train, initial_epoch=state.epoch, epochs=cfg.epochs, **options)


def write_outputs(model, state: TrainingState, run_id: str, tracking_uri: str) -> None:
    history = pd.DataFrame(state.history)
    with atomic_file(HISTORY) as tmp:
        history.to_csv(tmp, index=False)
    write_json(SUMMARY, final_summary(history))
    write_json(RUN_FILE, {"tracking_uri": tracking_uri, "run_id": run_id})
    with atomic_file(MODEL_PATH) as tmp:
        inference_model(model).save(tmp)


def inference_model(model: keras.Model) -> keras.Model:
    """The trained layers without loss and optimizer, so models/model.keras loads with plain
    keras.saving.load_model (no custom loss to import) wherever it is used for prediction."""
    return keras.Model(model.inputs, model.outputs, name=model.name)


def final_summary(history: pd.DataFrame) -> dict:
    last = history.iloc[-1]
    summary = {key: float(last[key]) for key in history.columns if key not in ("epoch", "patches_per_s")}
    summary.update(epochs=int(last["epoch"]), patches_per_s=float(history["patches_per_s"].median()))
    return summary


def main() -> None:
    params = load_params()
    cfg, num_classes = params.train, params.palette.num_classes
    keras.utils.set_random_seed(cfg.seed)
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    train_x, train_y = open_patches(PATCHES / "train_images.npy", PATCHES / "train_labels.npy", num_classes)
    val_x, val_y = open_patches(PATCHES / "val_images.npy", PATCHES / "val_labels.npy", num_classes)
    class_weights = None
    if cfg.class_weights:
        counts = json.loads(DISTRIBUTION.read_text())["train"]
        class_weights = class_weights_from_counts([counts[name] for name in params.palette.names])

    checkpoint = Checkpoint(CHECKPOINT, fingerprint(params.model_dump(exclude={"mlflow", "evaluate", "report"}),
                                                    train_x.shape, val_x.shape, code_digest("aerialseg", __file__)))
    resumed = checkpoint.load()
    if resumed:
        model, state = resumed
        print(f"resuming after epoch {state.epoch}")
    else:
        model, state = fresh_model(params, class_weights, math.ceil(len(train_x) / cfg.batch_size)), TrainingState()
        for old in SNAPSHOTS.glob("epoch_*"):
            old.unlink()

    tracking_uri = tracking.resolve_tracking_uri(params.mlflow.tracking_uri)
    with tracking.start_run(tracking_uri, params.mlflow.experiment, state.run_id) as run:
        state.run_id = run.info.run_id
        if not resumed:
            mlflow.log_params(tracking.flatten(params.model_dump()))
            mlflow.set_tag("git_commit", tracking.git_commit())
        relog_missing_epochs(state)
        val_tile = read_split(PATCHES / "splits.json", "val")[0]
        val_photo = read_image(RESIZED / "images" / photo_name(val_tile))[..., :3]
        train = PatchSequence(train_x, train_y, cfg.batch_size, shuffle=True, augment=cfg.augment,
                              seed=cfg.seed, first_epoch=state.epoch)
        val = PatchSequence(val_x, val_y, cfg.batch_size)
        callbacks = [EpochEnd(state, checkpoint, snapshot_writer(params, val_photo), cfg.snapshot_every, len(train_x))]
        fit(model, train, val, state, callbacks, cfg, num_classes, class_weights)
        write_outputs(model, state, run.info.run_id, tracking_uri)
        checkpoint.remove()
        mlflow.keras.log_model(inference_model(model), name="model")
    print(json.dumps(final_summary(pd.DataFrame(state.history)), indent=2))


def relog_missing_epochs(state: TrainingState) -> None:
    """Log epochs that finished but were not logged before a kill, so MLflow misses none."""
    logged = tracking.logged_steps(state.run_id, "loss")
    for row in state.history:
        if row["epoch"] not in logged:
            mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])


if __name__ == "__main__":
    main()
