"""Benchmark: training throughput from the memory-mapped patch files vs from in-memory arrays.

The train stage feeds Keras from data/patches/*.npy through aerialseg.dataset.PatchSequence
(memory-mapped, shuffled, augmented) so that the data set never has to fit in memory. That is
only worth it if the model is not kept waiting: target, patches/s within 10% of model.fit on
arrays already in memory (no shuffling cost, no augmentation, no disk).

    python -m benchmarks.input_pipeline [--patches 256] [--size 128] [--epochs 3]
"""

import argparse
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from aerialseg.dataset import PatchSequence, open_patches
from aerialseg.losses import make_loss
from aerialseg.metrics import training_metrics
from aerialseg.model import build_unet

CLASSES = 6


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def fresh_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = build_unet(CLASSES, base_filters=16)
    model.compile(optimizer="adam", loss=make_loss("dice_focal", CLASSES), metrics=training_metrics(CLASSES))
    return model


def patches_per_second(fit_kwargs: dict, count: int, epochs: int) -> float:
    """Median throughput over the epochs after the first (which includes tracing)."""
    timer = EpochTimer()
    fresh_model().fit(epochs=epochs, callbacks=[timer], verbose=0, **fit_kwargs)
    return count / float(np.median(timer.seconds[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=256)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.patches, args.size, args.size, 3), dtype=np.uint8)
    labels = rng.integers(0, CLASSES, (args.patches, args.size, args.size), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        np.save(Path(folder) / "images.npy", images)
        np.save(Path(folder) / "labels.npy", labels)
        mapped = open_patches(Path(folder) / "images.npy", Path(folder) / "labels.npy", CLASSES)
        sequence = PatchSequence(*mapped, args.batch_size, shuffle=True, augment=True, seed=0)
        in_memory = patches_per_second(
            dict(x=images.astype(np.float32), y=labels, batch_size=args.batch_size, shuffle=False),
            args.patches,
            args.epochs,
        )
        pipeline = patches_per_second(dict(x=sequence), args.patches, args.epochs)

    ratio = pipeline / in_memory
    print(
        f"{args.patches} patches of {args.size}x{args.size}, classic U-Net (16 filters), batch {args.batch_size}, "
        f"backend {keras.backend.backend()}"
    )
    print(
        f"| input | patches/s |\n|---|---:|\n| in-memory arrays | {in_memory:.1f} |\n"
        f"| memory-mapped PatchSequence (shuffle + D4 augmentation) | {pipeline:.1f} |"
    )
    print(f"pipeline / in-memory: {ratio:.1%} (target >= 90%)")


if __name__ == "__main__":
    main()
