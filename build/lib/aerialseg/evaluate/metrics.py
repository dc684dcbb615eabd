"""Segmentation scores: confusion matrices, IoU / F1 per class, Keras metrics.

Evaluation sums one confusion matrix per test tile, so a whole 6000 x 6000 Potsdam tile must be
counted in well under a second: the matrix comes from ``np.bincount`` over packed (label,
prediction) byte pairs, a million pixels at a time. Every score is derived from the summed
matrix, which is how the ISPRS benchmark reports them (pixels of all tiles pooled, not an average
of per-tile scores).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from aerialseg.data.palette import IGNORE_INDEX
from aerialseg.errors import InputError

if TYPE_CHECKING:
    import keras

_BYTE_VALUES = 256
_BLOCK = 1 << 20  # pixels counted at once: bincount's int64 copy of a block stays in cache


class MapError(InputError, ValueError):
    """A label or predicted map that cannot be scored against its partner (size or class values)."""


def confusion_matrix(
    label: np.ndarray,
    prediction: np.ndarray,
    num_classes: int,
    ignore_index: int = IGNORE_INDEX,
    source: str = "prediction",
) -> np.ndarray:
    """Count pixels per (true class, predicted class): a K x K int64 matrix, rows = truth.

    Pixels labelled ``ignore_index`` are not counted. Both maps hold byte values, so each pixel
    pair packs into one 16-bit code and bincount over 65536 bins counts them, block by block so
    that the int64 copy bincount makes never holds a whole tile. A label or prediction value
    outside 0..K-1 then shows up as counts outside the K x K corner and is reported. ``source``
    (e.g. the two file names) is put in every error message.
    """
    label, prediction = np.asarray(label), np.asarray(prediction)
    if label.shape != prediction.shape:
        raise MapError(f"{source}: label shape {label.shape} and prediction shape {prediction.shape} differ")
    label = _as_bytes(label, "label", source).ravel()
    prediction = _as_bytes(prediction, "prediction", source).ravel()
    pairs = np.zeros(_BYTE_VALUES**2, np.int64)
    for start in range(0, label.size, _BLOCK):
        codes = (label[start : start + _BLOCK].astype(np.uint16) << 8) | prediction[start : start + _BLOCK]
        pairs += np.bincount(codes, minlength=_BYTE_VALUES**2)
    pairs = pairs.reshape(_BYTE_VALUES, _BYTE_VALUES)
    pairs[ignore_index] = 0
    _refuse_out_of_range(pairs, num_classes, source)
    return pairs[:num_classes, :num_classes].copy()


def _as_bytes(values: np.ndarray, what: str, source: str) -> np.ndarray:
    if values.dtype == np.uint8:
        return values
    if not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"{source}: {what} must hold integer class indices, got {values.dtype}")
    if values.size and (values.min() < 0 or values.max() >= _BYTE_VALUES):
        raise MapError(f"{source}: {what} values must lie in 0..255, got {values.min()}..{values.max()}")
    return values.astype(np.uint8)


def _refuse_out_of_range(pairs: np.ndarray, num_classes: int, source: str) -> None:
    bad_labels = np.flatnonzero(pairs[num_classes:].sum(axis=1)) + num_classes
    if bad_labels.size:
        raise MapError(
            f"{source}: label holds class value(s) {bad_labels.tolist()}, "
            f"but there are only {num_classes} classes (0..{num_classes - 1})"
        )
    bad_predictions = np.flatnonzero(pairs[:, num_classes:].sum(axis=0)) + num_classes
    if bad_predictions.size:
        raise MapError(
            f"{source}: prediction holds class value(s) {bad_predictions.tolist()}, "
            f"but there are only {num_classes} classes (0..{num_classes - 1})"
        )


def scores(cm: np.ndarray, class_names: Sequence[str], exclude: Sequence[str] = ()) -> dict:
    """IoU, F1, precision and recall per class, and their means, from a confusion matrix.

    Keys: ``oa``, ``miou``, ``mf1`` over all classes, and, when ``exclude`` names classes (say
    ``["clutter"]``), ``oa_no_clutter``, ``miou_no_clutter``, ``mf1_no_clutter`` without them (the
    ISPRS convention: clutter is rare and ill-defined; its pixels are left out of the overall
    accuracy, while predicting clutter for another class still counts as an error). ``per_class``
    maps each class name to its scores and ``support`` (true pixels). A score whose denominator is
    zero (a class absent from both label and prediction) is None and left out of the means, so the
    result can go straight into JSON.
    """
    cm = np.asarray(cm, dtype=np.float64)
    if cm.shape != (len(class_names), len(class_names)):
        raise ValueError(f"confusion matrix of shape {cm.shape} does not match {len(class_names)} class names")
    true_positive = np.diag(cm)
    truth, predicted = cm.sum(axis=1), cm.sum(axis=0)
    per_class = {
        "iou": _ratio(true_positive, truth + predicted - true_positive),
        "f1": _ratio(2 * true_positive, truth + predicted),
        "precision": _ratio(true_positive, predicted),
        "recall": _ratio(true_positive, truth),
    }
    summary = _means(true_positive, truth, per_class, np.ones(len(class_names), bool), "")
    if exclude:
        kept = np.array([name not in exclude for name in class_names])
        summary.update(_means(true_positive, truth, per_class, kept, without_suffix(exclude)))
    result = {key: _json_number(value) for key, value in summary.items()}
    result["per_class"] = {
        name: {**{key: _json_number(values[i]) for key, values in per_class.items()}, "support": int(truth[i])}
        for i, name in enumerate(class_names)
    }
    return result


def without_suffix(exclude: Sequence[str]) -> str:
    """How :func:`scores` names the means without ``exclude``: ``_no_clutter``."""
    return "_no_" + "_".join(exclude)


def _means(true_positive, truth, per_class: dict, kept: np.ndarray, suffix: str) -> dict:
    """OA, mean IoU and mean F1 over the ``kept`` classes, under keys ending in ``suffix``."""
    return {
        f"oa{suffix}": _ratio(true_positive[kept].sum(), truth[kept].sum()),
        f"miou{suffix}": _nanmean(per_class["iou"][kept]),
        f"mf1{suffix}": _nanmean(per_class["f1"][kept]),
    }


def _ratio(numerator, denominator):
    """numerator / denominator, NaN where the denominator is zero (no warning)."""
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    return np.divide(numerator, denominator, out=np.full_like(numerator, np.nan), where=denominator > 0)


def _nanmean(values: np.ndarray) -> float:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


def _json_number(value) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


def confusion_rows(cm: np.ndarray, class_names: Sequence[str], max_rows: int = 20000) -> pd.DataFrame:
    """A table of (actual, predicted) class-name rows whose cross-tabulation is ``cm`` scaled down.

    DVC's ``confusion`` plot template counts rows, one per sample; one row per pixel would be
    hundreds of millions of rows. Each cell's count is scaled so the table holds about
    ``max_rows`` rows and rounded, which keeps the proportions of the full matrix exactly up to
    rounding (cells below half a row vanish) and is deterministic, unlike a random sample.
    """
    cm = np.asarray(cm, dtype=np.float64)
    scale = min(1.0, max_rows / cm.sum()) if cm.sum() else 0.0
    repeats = np.rint(cm * scale).astype(np.int64).ravel()
    names = np.asarray(class_names, dtype=object)
    actual, predicted = np.divmod(np.arange(cm.size), cm.shape[1])
    return pd.DataFrame(
        {"actual": np.repeat(names[actual], repeats), "predicted": np.repeat(names[predicted], repeats)}
    )


def training_metrics(num_classes: int) -> list[keras.metrics.Metric]:
    """The metrics watched during training: pixel accuracy and ``jaccard``, the mean IoU.

    ``jaccard`` accumulates a confusion matrix over the epoch and averages the per-class IoU
    (classes never seen are left out), the same definition as ``scores(...)["miou"]``; a
    micro-averaged Jaccard would be dominated by the large classes. Pixels labelled
    IGNORE_INDEX are skipped by ``jaccard`` (``accuracy`` counts them as wrong).

    Keras is imported here, not with this module: the report stage reads scores from this module
    and never trains, and Keras takes seconds to load.
    """
    import keras

    return [
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        keras.metrics.MeanIoU(
            num_classes=num_classes, sparse_y_true=True, sparse_y_pred=False, ignore_class=IGNORE_INDEX, name="jaccard"
        ),
    ]
