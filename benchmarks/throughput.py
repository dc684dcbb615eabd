"""Benchmark: training throughput of the default and the seed-size U-Net, and the loader alone.

For each model, patches/s and achieved GFLOP/s of the training step (the training model, which
applies the D4 augmentation on the device), from arrays in memory and through the pipeline's
input path (memory-mapped .npy, PatchSequence with shuffling and D4 symmetry numbers), with and
without XLA compilation, with and without the training metrics; beside them, in the same run,
the input path with Keras' own BatchNormalization and Adam (op by op, instead of TensorFlow's
fused kernels) and SpatialDropout2D (a scale and a select, instead of one multiplication), and the
previous training path, kept here as the reference: the bare U-Net with Keras' own layers and
Adam, fed float32 batches that the loader turned in NumPy, one sample at a time.
Then the loader alone (no model): patches/s of PatchSequence over 256 x 256 patches, in memory
and memory-mapped, without and with D4, beside the previous loader. TensorFlow's CPU settings
(threads, oneDNN): benchmarks/cpu_settings.py.

The models have a dropout of 0.1 (the seed's, and the default's until it dropped it: the rows
"without the dropout" are the default's training now).

FLOPs are counted from the model's layers: 2 k_h k_w C_in C_out per output pixel of every Conv2D
(per input pixel of every Conv2DTranspose); a training step counts 3 forward passes (the
backward pass costs about two), the usual approximation. BatchNorm, activations, pooling and the
loss are left out (a few percent). The CPU model and its vector extensions are printed first:
figures from different CPUs must not be compared as if alike.

    python -m benchmarks.throughput             # both models, every variant, the loader (~8 min on 2 cores)
    python -m benchmarks.throughput --quick     # fewer patches and steps, for a check of the script
    KERAS_BACKEND=jax python -m benchmarks.throughput --model seed --batch-size 64 --mixed-precision  # a GPU
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import aerialseg  # noqa: F401  first: sets TensorFlow's CPU kernels as the pipeline has them (oneDNN)

# isort: split
import keras
import numpy as np

from aerialseg.evaluate.metrics import training_metrics
from aerialseg.train.augmentation import draw_symmetries, training_model
from aerialseg.train.dataset import PatchSequence, open_patches
from aerialseg.train.losses import make_loss
from aerialseg.train.model import build_unet, stock_model
from aerialseg.train.optimizer import Adam
from benchmarks.machine import machine

CLASSES = 6
DROPOUT = 0.1  # the seed's train.dropout
MODELS = {  # name: (base filters, patch side, batch size, batches per round, rounds, every variant?)
    "default (classic U-Net, 16 filters, 64 px)": (16, 64, 8, 40, 3, True),
    # about 290 GFLOP per patch: seconds per patch on 2 cores, so fewer batches, rounds and variants
    "seed size (classic U-Net, 64 filters, 256 px)": (64, 256, 4, 5, 1, False),
}
DEFAULT_MODEL = next(iter(MODELS))
INPUTS = ("in-memory arrays", "input path (memory-mapped PatchSequence, shuffle + D4)")
KERAS_LAYERS = "input path, Keras' own BatchNormalization, SpatialDropout2D and Adam"
NO_DROPOUT = "input path, without the dropout"
# what the convolutions alone allow: the bare U-Net without batch norm, dropout or D4, with
# cross-entropy and no metrics, from arrays in memory
CONVOLUTIONS_ONLY = "convolutions and ReLU only (no batch norm, dropout, D4 or metrics; cross-entropy; arrays)"
PREVIOUS = "previous input path (NumPy D4 per sample, float32 batches, bare U-Net, Keras' own layers and Adam)"


def conv_flops(model: keras.Model) -> float:
    """Forward-pass FLOPs of the convolutions of a model built for one fixed patch size."""
    total = 0.0
    for layer in _all_layers(model):
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            kernel_h, kernel_w, c_in, c_out = layer.kernel.shape
            if isinstance(layer, keras.layers.Conv2DTranspose):
                c_in, c_out = c_out, c_in  # Keras stores (k, k, out, in) for transposed convolutions
                height, width = layer.input.shape[1:3]
            else:
                height, width = layer.output.shape[1:3]
            total += 2.0 * kernel_h * kernel_w * c_in * c_out * height * width
    return total


def _all_layers(model: keras.Model):
    for layer in model.layers:
        yield from _all_layers(layer) if isinstance(layer, keras.Model) else (layer,)


def xla_choices() -> tuple[bool, ...]:
    """XLA off (what training uses on a CPU) and on under TensorFlow; only on under JAX, which
    compiles every step with XLA (``jit_compile=False`` would run it op by op)."""
    return (False, True) if keras.backend.backend() == "tensorflow" else (True,)


def fresh_model(base_filters: int, side: int, jit_compile: bool, metrics: bool, source: str) -> keras.Model:
    """The model the training of ``source`` compiles: the training model (D4 on the device) but
    for the previous input path and CONVOLUTIONS_ONLY; Keras' own BatchNormalization,
    SpatialDropout2D and Adam for the previous path and for KERAS_LAYERS."""
    keras.utils.set_random_seed(0)
    convolutions_only = source == CONVOLUTIONS_ONLY
    keras_own = source in (KERAS_LAYERS, PREVIOUS)
    dropout = 0.0 if source in (NO_DROPOUT, CONVOLUTIONS_ONLY) else DROPOUT
    model = build_unet(
        CLASSES,
        base_filters=base_filters,
        batch_norm=not convolutions_only,
        dropout=dropout,
        input_shape=(side, side, 3),
    )
    if keras_own:
        model = stock_model(model)
    if source not in (PREVIOUS, CONVOLUTIONS_ONLY):
        model = training_model(model)
    model.compile(
        optimizer=keras.optimizers.Adam() if keras_own else Adam(),
        loss=make_loss("crossentropy" if convolutions_only else "dice_focal", CLASSES),
        metrics=training_metrics(CLASSES) if metrics else None,
        jit_compile=jit_compile,
    )
    return model


class BatchTimer(keras.callbacks.Callback):
    """Seconds from one batch's end to the next's (fetching the batch included), after the
    first ``skip`` batches (tracing and compiling)."""

    def __init__(self, skip: int):
        super().__init__()
        self.skip, self.ends = skip, []

    def on_train_batch_end(self, batch, logs=None):
        if batch >= self.skip:
            self.ends.append(time.perf_counter())

    @property
    def seconds(self) -> np.ndarray:
        return np.diff(self.ends)


def batch_seconds(model: keras.Model, data: dict, skip: int) -> np.ndarray:
    """Seconds per batch of one epoch of training, after the warm-up batches."""
    timer = BatchTimer(skip)
    model.fit(callbacks=[timer], verbose=0, epochs=1, **data)
    return timer.seconds


def interleaved_rates(models: dict, inputs: dict, batch: int, rounds: int) -> dict:
    """Patches/s of each variant (median batch time). The variants take turns, one epoch each per
    round, so that a shared machine's drift over minutes (seen here: 30 % between runs) weighs on
    every variant alike instead of on whichever ran last."""
    seconds = {variant: [] for variant in models}
    for _ in range(rounds):
        for variant, model in models.items():
            seconds[variant] += list(batch_seconds(model, inputs[variant[0]], skip=1))
    return {variant: batch / float(np.median(times)) for variant, times in seconds.items()}


def saved_patches(folder: Path, count: int, side: int, rng: np.random.Generator):
    """``count`` random photo and label patches: in memory, and saved and memory-mapped as the
    patches stage leaves them."""
    images = rng.integers(0, 256, (count, side, side, 3), dtype=np.uint8)
    labels = rng.integers(0, CLASSES, (count, side, side), dtype=np.uint8)
    np.save(folder / "images.npy", images)
    np.save(folder / "labels.npy", labels)
    return images, labels, open_patches(folder / "images.npy", folder / "labels.npy", CLASSES)


def input_path(loader: type[PatchSequence], mapped: tuple, batch: int) -> dict:
    """``model.fit``'s data through ``loader`` (the pipeline's or the previous one) over the
    memory-mapped patches: shuffled, with D4, seeded; one per variant, each with its own epochs."""
    return dict(x=loader(*mapped, batch, shuffle=True, augment=True, seed=0))


def model_rows(
    name: str, filters: int, side: int, batch: int, batches: int, rounds: int, every_variant: bool, folder: Path
):
    rng = np.random.default_rng(0)
    images, labels, mapped = saved_patches(folder, batch * batches, side, rng)
    symmetries = draw_symmetries(len(images), rng)
    inputs = {
        INPUTS[0]: dict(x=[images, symmetries], y=labels, batch_size=batch, shuffle=False),
        INPUTS[1]: input_path(PatchSequence, mapped, batch),
        KERAS_LAYERS: input_path(PatchSequence, mapped, batch),
        NO_DROPOUT: input_path(PatchSequence, mapped, batch),
        PREVIOUS: input_path(PreviousPatchSequence, mapped, batch),
        CONVOLUTIONS_ONLY: dict(x=images, y=labels, batch_size=batch, shuffle=False),
    }
    xla = xla_choices()
    variants = [(source, jit, metrics) for source in INPUTS for jit in xla for metrics in (True, False)]
    if not every_variant:
        variants = [(INPUTS[0], jit, True) for jit in xla] + [(INPUTS[1], xla[0], True)]
    else:
        variants += [(NO_DROPOUT, xla[0], True), (CONVOLUTIONS_ONLY, xla[0], False)]
    variants += [(KERAS_LAYERS, xla[0], True), (PREVIOUS, xla[0], True)]
    flops = training_flops(filters, side)
    print(f"{name}: {flops / 1e9:.2f} GFLOP per training patch (3 x forward convolutions)", flush=True)
    models = {
        (source, jit, metrics): fresh_model(filters, side, jit, metrics, source) for source, jit, metrics in variants
    }
    rates = interleaved_rates(models, inputs, batch, rounds)
    rows = [
        f"| {name} | {source} | {'on' if jit else 'off'} | {'on' if metrics else 'off'} "
        f"| {rate:.2f} | {rate * flops / 1e9:.0f} |"
        for (source, jit, metrics), rate in rates.items()
    ]
    print("\n".join(rows), flush=True)
    speed_up = rates[INPUTS[1], xla[0], True] / rates[PREVIOUS, xla[0], True]
    print(f"{name}: this training / the previous one: {speed_up:.2f}x", flush=True)
    return rows + [f"| {name} | this training (input path) / the previous one | | | {speed_up:.2f}x | |"]


def training_flops(filters: int, side: int) -> float:
    """FLOPs of one training step per patch: 3 forward passes' convolutions."""
    return 3 * conv_flops(build_unet(CLASSES, base_filters=filters, input_shape=(side, side, 3)))


def previous_augment_d4(images, labels, rng):
    """The loader's D4 augmentation before this benchmark: one Python step per sample."""
    images, labels = images.copy(), labels.copy()
    for i, (turns, flip) in enumerate(zip(rng.integers(0, 4, len(images)), rng.integers(0, 2, len(images)))):
        image, label = np.rot90(images[i], turns), np.rot90(labels[i], turns)
        if flip:
            image, label = image[:, ::-1], label[:, ::-1]
        images[i], labels[i] = image, label
    return images, labels


class PreviousPatchSequence(PatchSequence):
    """The loader before this benchmark: per-sample D4 in NumPy and a float32 copy of every batch."""

    def __getitem__(self, index: int):
        batch = np.sort(self._order[index * self.batch_size : (index + 1) * self.batch_size])
        images, labels = self.images[batch], self.labels[batch]
        if self.augment:
            images, labels = previous_augment_d4(images, labels, np.random.default_rng([self.seed, self.epoch, index]))
        return images.astype(np.float32), labels


def loader_rate(sequence: PatchSequence) -> float:
    """Patches/s of reading every batch of one epoch (the second epoch, so the page cache is warm)."""
    sequence.on_epoch_end()
    started = time.perf_counter()
    count = sum(len(sequence[index][1]) for index in range(len(sequence)))  # [1]: the labels
    return count / (time.perf_counter() - started)


def loader_rows(patches: int, folder: Path, side: int = 256, batch: int = 16) -> list[str]:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (patches, side, side, 3), dtype=np.uint8)
    labels = rng.integers(0, CLASSES, (patches, side, side), dtype=np.uint8)
    np.save(folder / "loader_images.npy", images)
    np.save(folder / "loader_labels.npy", labels)
    mapped = open_patches(folder / "loader_images.npy", folder / "loader_labels.npy", CLASSES)
    rows = []
    for storage, arrays in (("in memory", (images, labels)), ("memory-mapped", mapped)):
        for augment in (False, True):
            rates = [
                loader_rate(kind(*arrays, batch, shuffle=True, augment=augment, seed=0))
                for kind in (PreviousPatchSequence, PatchSequence)
            ]
            rows.append(
                f"| {storage} | {'D4' if augment else 'none'} | {rates[0]:.0f} | {rates[1]:.0f} "
                f"| {rates[1] / rates[0]:.1f}x |"
            )
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer patches: checks the script, not the machine")
    parser.add_argument("--model", choices=("both", "default", "seed"), default="both", help="which model(s) to train")
    parser.add_argument("--batch-size", type=int, help="instead of each model's own (larger, to fill a GPU)")
    parser.add_argument("--mixed-precision", action="store_true", help="compute in bfloat16 (mixed_bfloat16)")
    args = parser.parse_args()
    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    policy = keras.mixed_precision.global_policy().name
    print(f"CPU: {machine()}; Keras {keras.__version__} on {keras.backend.backend()}, {policy}", flush=True)
    chosen = [name for name in MODELS if args.model == "both" or name.startswith(args.model)]
    with tempfile.TemporaryDirectory() as folder:
        model_table = ["| model | input | XLA | metrics | patches/s | GFLOP/s |", "|---|---|---|---|---:|---:|"]
        for name in chosen:
            filters, side, batch, batches, rounds, every_variant = MODELS[name]
            if args.quick:
                batches, rounds, every_variant = 3, 1, False
            batch = args.batch_size or batch
            model_table += model_rows(name, filters, side, batch, batches, rounds, every_variant, Path(folder))
        loader_table = [
            "| storage | augmentation | previous loader patches/s | loader patches/s | speed-up |",
            "|---|---|---:|---:|---:|",
        ]
        loader_table += loader_rows(64 if args.quick else 1024, Path(folder))
    print("\n".join(["", *model_table, "", "Loader alone, 256 x 256 patches, batches of 16:", *loader_table]))


if __name__ == "__main__":
    main()
