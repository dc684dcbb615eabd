"""Benchmark: confusion matrix of a full-size Potsdam tile pair, ours vs scikit-learn.

The evaluate stage counts one 6000 x 6000 label / prediction pair per test tile and mode, so
counting must stay well under the time it takes to read the files. Target: under 2 s per pair
and at least 30x faster than sklearn.metrics.confusion_matrix on the same pixels, same result.

    python -m benchmarks.confusion
"""

import time

import numpy as np
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

from aerialseg.data.palette import IGNORE_INDEX
from aerialseg.evaluate.metrics import confusion_matrix, scores

SIDE, CLASSES, IGNORED_SHARE = 6000, 6, 0.05
TARGET_SECONDS, TARGET_SPEED_UP = 2.0, 30


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def evaluate_pair(label: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """What the evaluate stage does per tile pair: count, then score (scores are tiny next to it)."""
    cm = confusion_matrix(label, prediction, CLASSES)
    scores(cm, [f"class {k}" for k in range(CLASSES)])
    return cm


def main() -> None:
    rng = np.random.default_rng(0)
    label = rng.integers(0, CLASSES, (SIDE, SIDE), dtype=np.uint8)
    prediction = rng.integers(0, CLASSES, (SIDE, SIDE), dtype=np.uint8)
    label[rng.random(label.shape) < IGNORED_SHARE] = IGNORE_INDEX

    ours, our_seconds = timed(evaluate_pair, label, prediction)
    kept = label != IGNORE_INDEX  # sklearn has no ignore index: it gets the labelled pixels only
    theirs, their_seconds = timed(sklearn_confusion_matrix, label[kept], prediction[kept], labels=range(CLASSES))

    assert np.array_equal(ours, theirs), "confusion matrices differ"
    speed_up = their_seconds / our_seconds
    print(f"{SIDE} x {SIDE} px, {CLASSES} classes, {IGNORED_SHARE:.0%} ignored")
    print(f"aerialseg.evaluate.metrics (matrix + scores): {our_seconds:.3f} s")
    print(f"sklearn.metrics.confusion_matrix:    {their_seconds:.3f} s (labelled pixels pre-selected, not timed)")
    print(f"speed-up: {speed_up:.0f}x (target >= {TARGET_SPEED_UP}x, ours < {TARGET_SECONDS} s)")
    assert our_seconds < TARGET_SECONDS, f"ours took {our_seconds:.2f} s, target {TARGET_SECONDS} s"
    assert speed_up >= TARGET_SPEED_UP, f"only {speed_up:.1f}x faster, target {TARGET_SPEED_UP}x"


if __name__ == "__main__":
    main()
