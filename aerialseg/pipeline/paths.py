"""Where every stage output lives: the one place that names the pipeline's files and folders.

Stages receive a :class:`Layout` rooted at the repository (or at a test's temporary folder), so
nothing else spells out ``data/resized`` or ``epoch_005.weights.h5``; each file-name rule is
written and parsed here. dvc.yaml lists the same paths (tests/test_dvc_yaml.py checks they agree).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from aerialseg.data.potsdam import BAND_COUNTS, FULL, label_name, photo_name, prediction_name

_SNAPSHOT_WEIGHTS = re.compile(r"^epoch_(?P<epoch>\d+)\.weights\.h5$")


@dataclass(frozen=True)
class TileFolder:
    """data/raw and data/resized: ``images/`` photos (each with its world file, if it has one),
    ``labels/`` label pictures, ``labels_no_boundary/`` the boundary-free ones (if the source has
    them), ``manifest.csv``."""

    path: Path

    def photo(self, tile: str, kind: str | None = None) -> Path:
        """``images/top_potsdam_<tile>_<kind>.tif``, kind RGB, IRRG or RGBIR (``data.bands``).

        A writer names the kind; a reader gets the photo that is there (a folder is written whole,
        with one kind of photo), so no stage after download needs to know the bands. Where there is
        none, the RGB name, for the error to show.
        """
        folder = self.path / "images"
        if kind is None:
            kind = next((kind for kind in BAND_COUNTS if (folder / photo_name(tile, kind)).is_file()), "RGB")
        return folder / photo_name(tile, kind)

    def label(self, tile: str, variant: str = FULL) -> Path:
        """The label of a variant: ``full`` in ``labels/``, ``no_boundary`` in ``labels_no_boundary/``."""
        folder = "labels" if variant == FULL else f"labels_{variant}"
        return self.path / folder / label_name(tile, variant)

    @property
    def manifest(self) -> Path:
        return self.path / "manifest.csv"


@dataclass(frozen=True)
class PatchFolder:
    """data/patches: one memory-mappable ``<split>_images.npy`` / ``<split>_labels.npy`` pair per
    split, and ``splits.json`` (which tile went where)."""

    path: Path

    def images(self, split: str) -> Path:
        return self.path / f"{split}_images.npy"

    def labels(self, split: str) -> Path:
        return self.path / f"{split}_labels.npy"

    @property
    def splits(self) -> Path:
        return self.path / "splits.json"


@dataclass(frozen=True)
class PredictionFolder:
    """data/predictions: ``<mode>/top_potsdam_<tile>_pred.png`` (colours) and ``.tif`` (class indices)."""

    path: Path

    def map(self, mode: str, tile: str, suffix: str) -> Path:
        return self.path / mode / prediction_name(tile, suffix)


@dataclass(frozen=True)
class SnapshotFolder:
    """models/snapshots: the weights every ``train.snapshot_every`` epochs, and the validation
    tile's predicted colour map per mode at that epoch."""

    path: Path

    def weights(self, epoch: int) -> Path:
        return self.path / f"epoch_{epoch:03d}.weights.h5"

    def map(self, epoch: int, mode: str) -> Path:
        return self.path / f"epoch_{epoch:03d}_{mode}.png"

    def epochs(self) -> list[int]:
        """Epochs that have saved weights, in order."""
        matches = (_SNAPSHOT_WEIGHTS.match(path.name) for path in self.path.glob("epoch_*"))
        return sorted(int(match["epoch"]) for match in matches if match)

    def clear(self) -> None:
        """Remove every snapshot: a training that starts afresh must not mix in an older one's."""
        for old in self.path.glob("epoch_*"):
            old.unlink()


@dataclass(frozen=True)
class Layout:
    """Every output path of the pipeline, under ``root`` (the repository)."""

    root: Path = Path(".")

    @property
    def params_valid(self) -> Path:
        """Written by the validate stage once the whole params.yaml passed; download depends on it."""
        return self.root / "data" / "params-valid.txt"

    @property
    def downloads(self) -> Path:
        """Download cache, kept between runs so an interrupted download resumes (not a DVC output)."""
        return self.root / "data" / "downloads"

    @property
    def raw(self) -> TileFolder:
        return TileFolder(self.root / "data" / "raw")

    @property
    def resized(self) -> TileFolder:
        return TileFolder(self.root / "data" / "resized")

    @property
    def patches(self) -> PatchFolder:
        return PatchFolder(self.root / "data" / "patches")

    @property
    def predictions(self) -> PredictionFolder:
        return PredictionFolder(self.root / "data" / "predictions")

    @property
    def model(self) -> Path:
        """The trained model, without compile state (loads with plain keras.saving.load_model)."""
        return self.root / "models" / "model.keras"

    @property
    def snapshots(self) -> SnapshotFolder:
        return SnapshotFolder(self.root / "models" / "snapshots")

    @property
    def checkpoint(self) -> Path:
        """The last finished epoch of a running training (not a DVC output; removed at the end)."""
        return self.root / "models" / "checkpoint"

    @property
    def mlflow_run(self) -> Path:
        """JSON naming the tracking URI and run id of the training, for the stages after it."""
        return self.root / "models" / "mlflow_run.json"

    @property
    def class_distribution(self) -> Path:
        return self.root / "metrics" / "class_distribution.json"

    @property
    def class_distribution_chart(self) -> Path:
        return self.root / "metrics" / "class_distribution.png"

    @property
    def train_history(self) -> Path:
        return self.root / "metrics" / "train_history.csv"

    @property
    def train_summary(self) -> Path:
        return self.root / "metrics" / "train.json"

    @property
    def evaluation(self) -> Path:
        return self.root / "metrics" / "evaluate.json"

    def confusion_rows(self, mode: str) -> Path:
        return self.root / "metrics" / f"confusion_{mode}.csv"

    @property
    def snapshot_table(self) -> Path:
        return self.root / "metrics" / "snapshots.csv"

    @property
    def snapshot_markdown(self) -> Path:
        return self.root / "metrics" / "snapshots.md"

    @property
    def figures(self) -> Path:
        return self.root / "metrics" / "figures"

    @property
    def report(self) -> Path:
        return self.root / "metrics" / "report.md"
