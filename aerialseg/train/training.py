"""The train stage: fit the U-Net on the patches, log every epoch to MLflow, snapshot, resume.

Outputs: models/model.keras (written only when training finished, so a failed run keeps the last
good model), models/snapshots/ (weights and predicted maps every ``snapshot_every`` epochs), each
weights file and the model carrying the model card (aerialseg.train.card), metrics/train_history.csv
and metrics/train.json (with the training tiles' resolution, also an MLflow param:
aerialseg.data.resolution). While it runs, models/checkpoint/ holds the last finished epoch, so a
killed run resumes there (removed when training finishes).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd

from aerialseg.data.manifest import read_manifest
from aerialseg.data.resolution import TrainingResolution
from aerialseg.data.splits import read_split
from aerialseg.evaluate.metrics import training_metrics
from aerialseg.pipeline import tracking
from aerialseg.pipeline.atomic import atomic_file, read_json, write_json
from aerialseg.pipeline.params import Params, TrainParams
from aerialseg.pipeline.paths import Layout, SnapshotFolder
from aerialseg.predict.blending import Blending
from aerialseg.predict.inference import predict_map
from aerialseg.predict.keras_predictor import KerasPredictor
from aerialseg.raster.pictures import read_image, write_image
from aerialseg.train.augmentation import segmentation_model, training_model
from aerialseg.train.card import ModelCard, card_from_params, data_version, write_card
from aerialseg.train.checkpoint import Checkpoint, TrainingState, code_digest, fingerprint
from aerialseg.train.dataset import PatchSequence, open_patches
from aerialseg.train.distribution import ONE_DEVICE, Cluster, join
from aerialseg.train.history import write_history
from aerialseg.train.losses import class_weights_from_counts, make_loss
from aerialseg.train.model import build_model, set_encoder_trainable, stock_model
from aerialseg.train.optimizer import Adam

PARAMS_OUTSIDE_TRAINING = {"mlflow", "evaluate", "report"}  # changing these must not restart a checkpoint


def train(layout: Layout, params: Params) -> dict | None:
    """Train (or resume) as ``params`` say; write the model, history and summary; return the summary.

    Under ``train.distribution: data_parallel`` on several hosts, every process trains its share
    and only the chief writes and logs; the others return None.
    """
    cfg, num_classes = params.train, params.palette.num_classes
    cluster = join(cfg.distribution, cfg.batch_size)  # first: hosts join before anything runs on a device
    keras.utils.set_random_seed(cfg.seed)
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    patches = layout.patches
    train_x, train_y = open_patches(patches.images("train"), patches.labels("train"), num_classes)
    val_x, val_y = open_patches(patches.images("val"), patches.labels("val"), num_classes)
    class_weights = training_class_weights(layout, params)
    train_tiles = read_split(patches.splits, "train")
    resolution = TrainingResolution.of(read_manifest(layout.resized.manifest), train_tiles)
    tracking_uri, origin = tracking.tracking_uri_and_origin(params.mlflow.tracking_uri, layout.root)
    if cluster.chief:
        tracking.check_store(tracking_uri, origin)  # before anything is deleted or written
    checkpoint = Checkpoint(layout.checkpoint, training_fingerprint(params, train_x.shape, val_x.shape))
    with cluster.scope():
        model, state, resumed = resume_or_start(checkpoint, params, class_weights, train_x.shape)
    cluster.check_same(state.epoch, "the epoch they resume after")
    train_batches, val_batches = patch_batches(cfg, cluster, state, train_x, train_y, val_x, val_y)
    if not cluster.chief:
        fit(model, train_batches, val_batches, state, [], cfg, num_classes, class_weights, cluster)
        return None
    if not resumed:
        layout.snapshots.clear()

    with tracking.start_run(tracking_uri, params.mlflow.experiment, state.run_id) as run:
        if run.info.run_id != state.run_id:  # a new run: a fresh training, or the old run is gone
            state.run_id = run.info.run_id
            mlflow.log_params(tracking.flatten({**params.model_dump(), **resolution.summary()}))
            mlflow.set_tag("git_commit", tracking.git_commit(layout.root))
        relog_missing_epochs(state)
        val_photo = read_image(layout.resized.photo(read_split(patches.splits, "val")[0]))
        card = card_from_params(params, resolution.median, data_version(layout.root), tracking.git_commit(layout.root))
        snapshot = snapshot_writer(layout.snapshots, params, val_photo, cluster, card)
        callbacks = [EpochEnd(state, checkpoint, snapshot, cfg.snapshot_every, len(train_x), cluster)]
        fit(model, train_batches, val_batches, state, callbacks, cfg, num_classes, class_weights, cluster)
        write_outputs(layout, model, state, run.info.run_id, tracking_uri, resolution, card)
        checkpoint.remove()
        tracking.log_model(stock_model(segmentation_model(model)), params.mlflow.experiment, card)
    summary = {**final_summary(pd.DataFrame(state.history)), **resolution.summary()}
    print(json.dumps(summary, indent=2))
    return summary


def training_fingerprint(params: Params, train_shape: tuple, val_shape: tuple) -> str:
    """What a checkpoint must have been trained with to be resumed: the params that shape the
    training, the patch arrays' shapes and the library's code."""
    trained_by = params.model_dump(exclude=PARAMS_OUTSIDE_TRAINING)
    return fingerprint(trained_by, train_shape, val_shape, code_digest(Path(__file__).parent))


def resume_or_start(
    checkpoint: Checkpoint, params: Params, class_weights, train_shape: tuple
) -> tuple[keras.Model, TrainingState, bool]:
    """The checkpoint's model and state if it matches, else a fresh compiled model; and which."""
    resumed = checkpoint.load()
    if resumed:
        print(f"resuming after epoch {resumed[1].epoch}")
        return *resumed, True
    steps = math.ceil(train_shape[0] / params.train.batch_size)
    return fresh_model(params, class_weights, steps, bands=train_shape[-1]), TrainingState(), False


def patch_batches(cfg: TrainParams, cluster: Cluster, state: TrainingState, train_x, train_y, val_x, val_y):
    """The training and validation batches from the last finished epoch on, as this process feeds them."""
    shares = dict(devices=cluster.devices, part=cluster.part)
    train = PatchSequence(
        train_x,
        train_y,
        cfg.batch_size,
        shuffle=True,
        augment=cfg.augment,
        seed=cfg.seed,
        first_epoch=state.epoch,
        **shares,
    )
    return train, PatchSequence(val_x, val_y, cfg.batch_size, **shares)


def training_class_weights(layout: Layout, params: Params) -> list[float] | None:
    """Inverse-frequency class weights from the patches stage's train counts, if asked for."""
    if not params.train.class_weights:
        return None
    counts = read_json(layout.class_distribution, written_by="patches")["train"]
    return class_weights_from_counts([counts[name] for name in params.palette.names])


class EpochEnd(keras.callbacks.Callback):
    """After each epoch: snapshot if due, save the checkpoint, then log to MLflow (in that order,
    so a kill in between never logs an epoch that a resumed run would train again). Only the
    chief has this callback; its work is the chief's alone (``cluster.alone``).

    MLflow's ``MlflowCallback`` is not used: it logs asynchronously to the active run at steps 0..N-1
    (the history, snapshots and checkpoint count epochs 1..N), logs whether or not the checkpoint
    was written, and its ``ExceptionSafeClass`` swallows a failing store, which would leave a
    resumed run with silent gaps."""

    def __init__(
        self,
        state: TrainingState,
        checkpoint: Checkpoint,
        snapshot,
        snapshot_every: int,
        patches: int,
        cluster: Cluster = ONE_DEVICE,
    ):
        super().__init__()
        self.state, self.checkpoint, self.snapshot = state, checkpoint, snapshot
        self.snapshot_every, self.patches, self.cluster = snapshot_every, patches, cluster

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.trained = time.perf_counter()  # the epoch's training ends here; validation follows

    def on_epoch_end(self, epoch, logs=None):
        number = epoch + 1
        logs["patches_per_s"] = self.patches / (self.trained - self.started)  # the progress bar shows it
        row = {"epoch": number, **{k: float(v) for k, v in logs.items()}}
        with self.cluster.alone():
            if number % self.snapshot_every == 0:
                self.snapshot(self.model, number)
            self.state.epoch, self.state.history = number, self.state.history + [row]
            self.checkpoint.save(self.model, self.state)
        mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=number)


def snapshot_writer(
    snapshots: SnapshotFolder, params: Params, val_photo: np.ndarray, cluster: Cluster, card: ModelCard
):
    """Save the weights (with ``card``, so a snapshot can be evaluated or mapped with on its own) and
    the predicted map of a fixed validation tile in each of ``train.snapshot_modes`` (a smooth map
    takes 32 times the forward passes of a plain one)."""

    def snapshot(model, epoch):
        model = segmentation_model(model)
        with atomic_file(snapshots.weights(epoch)) as tmp:
            model.save_weights(tmp)
            write_card(tmp, card)
        with cluster.on_this_process(model) as local:
            predictor = KerasPredictor(local, params.palette.num_classes)
            for mode in params.train.snapshot_modes:
                blending = Blending.from_params(params.predict, params.patches.patch_size, mode)
                index = predict_map(predictor, val_photo, blending)
                colours = params.palette.index_to_rgb(index)
                write_image(snapshots.map(epoch, mode), colours)
                tracking.log_map(colours, f"val_map_{mode}", epoch)

    return snapshot


def compile_model(model, cfg: TrainParams, num_classes: int, class_weights, epochs: int, steps_per_epoch: int) -> None:
    """Adam with the learning rate decayed by a cosine over ``epochs``: the last epochs settle
    instead of hopping between minima, so the model written at the end is a good one.

    ``cfg.jit_compile``: XLA for the training step. Keras' ``auto`` turns it on on a GPU and off on
    a CPU, where it pays only on some CPUs and for long trainings (README, Performance).

    The optimizer's slots are made here, not in the first training step as Keras leaves them:
    under TensorFlow a step that makes variables is traced twice, the second time without them
    (benchmarks/first_step.py)."""
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, epochs * steps_per_epoch, alpha=0.01)
    model.compile(
        optimizer=Adam(schedule),
        loss=make_loss(cfg.loss, num_classes, class_weights),
        metrics=training_metrics(num_classes),
        jit_compile=cfg.jit_compile,
    )
    model.optimizer.build(model.trainable_variables)


def fresh_model(params: Params, class_weights, steps_per_epoch: int, bands: int = 3):
    """A new training model (aerialseg.train.augmentation.training_model), compiled for its first
    phase: the frozen-encoder epochs if any, else all.

    ``bands``: of the patches (4 for RGBIR), so the model's input shape carries it to prediction.
    """
    cfg = params.train
    model = build_model(cfg, params.palette.num_classes, bands)
    if cfg.freeze_encoder_epochs:
        set_encoder_trainable(model, False)
    model = training_model(model)
    compile_model(
        model, cfg, params.palette.num_classes, class_weights, cfg.freeze_encoder_epochs or cfg.epochs, steps_per_epoch
    )
    return model


def fit(
    model,
    train,
    val,
    state: TrainingState,
    callbacks,
    cfg: TrainParams,
    num_classes: int,
    class_weights,
    cluster: Cluster = ONE_DEVICE,
) -> None:
    """Train from the last finished epoch. After the frozen-encoder epochs the encoder is
    unfrozen and the model recompiled, with a fresh optimizer for the fine-tuning epochs.

    ``shuffle=False``: PatchSequence shuffles itself, seeded by the epoch. Keras' own batch
    shuffling draws from Python's global random state, which a resumed process does not share.
    """
    options = dict(validation_data=val, callbacks=callbacks, shuffle=False)
    if state.epoch < cfg.freeze_encoder_epochs:
        with cluster.fitting():
            model.fit(train, initial_epoch=state.epoch, epochs=cfg.freeze_encoder_epochs, **options)
        set_encoder_trainable(segmentation_model(model), True)
        with cluster.scope():
            compile_model(model, cfg, num_classes, class_weights, cfg.epochs - cfg.freeze_encoder_epochs, len(train))
    if state.epoch < cfg.epochs:
        with cluster.fitting():
            model.fit(train, initial_epoch=state.epoch, epochs=cfg.epochs, **options)


def write_outputs(
    layout: Layout,
    model,
    state: TrainingState,
    run_id: str,
    tracking_uri: str,
    resolution: TrainingResolution,
    card: ModelCard,
) -> None:
    history = write_history(layout.train_history, state.history)
    write_json(layout.train_summary, {**final_summary(history), **resolution.summary()})
    write_json(layout.mlflow_run, {"tracking_uri": tracking_uri, "run_id": run_id})
    with atomic_file(layout.model) as tmp:
        stock_model(segmentation_model(model)).save(tmp)
        write_card(tmp, card)


def final_summary(history: pd.DataFrame) -> dict:
    last = history.iloc[-1]
    summary = {key: float(last[key]) for key in history.columns if key not in ("epoch", "patches_per_s")}
    summary.update(epochs=int(last["epoch"]), patches_per_s=float(history["patches_per_s"].median()))
    return summary


def relog_missing_epochs(state: TrainingState) -> None:
    """Log epochs that finished but were not logged before a kill, so MLflow misses none."""
    logged = tracking.logged_steps(state.run_id, "loss")
    for row in state.history:
        if row["epoch"] not in logged:
            mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
