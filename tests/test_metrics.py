import json

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

from aerialseg.data.palette import IGNORE_INDEX
from aerialseg.evaluate.metrics import confusion_matrix, confusion_rows, scores, training_metrics

NAMES = ["road", "building", "tree", "clutter"]

# (true class, predicted class): pixel count. Scores below are derived from these counts.
PAIR_COUNTS = {(0, 0): 50, (0, 1): 10, (0, 3): 2, (1, 1): 30, (1, 0): 5, (2, 2): 12, (2, 1): 3, (3, 3): 4, (3, 0): 6}


def maps_from_counts(pair_counts: dict) -> tuple[np.ndarray, np.ndarray]:
    pairs = np.repeat(np.array(list(pair_counts)), list(pair_counts.values()), axis=0).astype(np.uint8)
    return pairs[:, 0].reshape(1, -1), pairs[:, 1].reshape(1, -1)


def counted(pair_counts: dict, truth=None, predicted=None) -> int:
    return sum(
        n for (t, p), n in pair_counts.items() if (truth is None or truth(t)) and (predicted is None or predicted(p))
    )


def expected_scores(pair_counts: dict, k: int) -> dict:
    tp = counted(pair_counts, lambda t: t == k, lambda p: p == k)
    fp = counted(pair_counts, lambda t: t != k, lambda p: p == k)
    fn = counted(pair_counts, lambda t: t == k, lambda p: p != k)
    return {
        "iou": tp / (tp + fp + fn),
        "f1": 2 * tp / (2 * tp + fp + fn),
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "support": tp + fn,
    }


def test_confusion_matrix_equals_sklearn_on_random_maps_with_ignored_pixels():
    rng = np.random.default_rng(1)
    label = rng.integers(0, 6, (97, 131), dtype=np.uint8)
    prediction = rng.integers(0, 6, (97, 131), dtype=np.uint8)
    label[rng.random(label.shape) < 0.1] = IGNORE_INDEX
    kept = label != IGNORE_INDEX

    cm = confusion_matrix(label, prediction, 6)

    expected = sklearn_confusion_matrix(label[kept], prediction[kept], labels=range(6))
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype == np.int64 and cm.sum() == kept.sum()


def test_scores_match_counts_derived_by_hand():
    cm = confusion_matrix(*maps_from_counts(PAIR_COUNTS), len(NAMES))
    result = scores(cm, NAMES, exclude=())

    for k, name in enumerate(NAMES):
        assert result["per_class"][name] == pytest.approx(expected_scores(PAIR_COUNTS, k))
    correct = counted(PAIR_COUNTS) - sum(n for (t, p), n in PAIR_COUNTS.items() if t != p)
    assert result["oa"] == pytest.approx(correct / counted(PAIR_COUNTS))
    assert result["miou"] == pytest.approx(np.mean([expected_scores(PAIR_COUNTS, k)["iou"] for k in range(4)]))
    assert result["mf1"] == pytest.approx(np.mean([expected_scores(PAIR_COUNTS, k)["f1"] for k in range(4)]))


def test_clutter_is_left_out_of_the_no_clutter_scores():
    cm = confusion_matrix(*maps_from_counts(PAIR_COUNTS), len(NAMES))
    result = scores(cm, NAMES, exclude=["clutter"])

    kept = [0, 1, 2]  # all but clutter
    assert result["miou_no_clutter"] == pytest.approx(np.mean([expected_scores(PAIR_COUNTS, k)["iou"] for k in kept]))
    assert result["mf1_no_clutter"] == pytest.approx(np.mean([expected_scores(PAIR_COUNTS, k)["f1"] for k in kept]))
    # road pixels predicted as clutter stay errors; clutter pixels are not counted at all
    non_clutter = counted(PAIR_COUNTS, truth=lambda t: t != 3)
    right = sum(n for (t, p), n in PAIR_COUNTS.items() if t == p != 3)
    assert result["oa_no_clutter"] == pytest.approx(right / non_clutter)
    assert result["miou_no_clutter"] != pytest.approx(result["miou"])


def test_a_class_absent_from_label_and_prediction_is_null_and_left_out_of_the_means():
    without_tree = {pair: n for pair, n in PAIR_COUNTS.items() if 2 not in pair}
    cm = confusion_matrix(*maps_from_counts(without_tree), len(NAMES))
    result = scores(cm, NAMES)

    assert result["per_class"]["tree"] == {"iou": None, "f1": None, "precision": None, "recall": None, "support": 0}
    assert result["miou"] == pytest.approx(np.mean([expected_scores(without_tree, k)["iou"] for k in (0, 1, 3)]))
    json.dumps(result, allow_nan=False)  # valid JSON: no NaN anywhere


def test_confusion_matrix_refuses_maps_of_different_shapes_naming_both():
    with pytest.raises(ValueError, match=r"pred\.tif vs label\.tif.*\(4, 5\).*\(4, 6\)"):
        confusion_matrix(np.zeros((4, 5), np.uint8), np.zeros((4, 6), np.uint8), 6, source="pred.tif vs label.tif")


def test_confusion_matrix_refuses_a_class_value_beyond_the_classes():
    prediction = np.zeros((4, 4), np.uint8)
    prediction[1, 1] = 7
    with pytest.raises(ValueError, match=r"a\.tif: prediction holds class value\(s\) \[7\].*6 classes"):
        confusion_matrix(np.zeros((4, 4), np.uint8), prediction, 6, source="a.tif")


def test_confusion_rows_cross_tabulate_to_the_scaled_matrix():
    cm = confusion_matrix(*maps_from_counts(PAIR_COUNTS), len(NAMES))
    rows = confusion_rows(cm, NAMES, max_rows=int(cm.sum()) // 2)

    table = rows.value_counts().to_dict()
    for (t, p), n in PAIR_COUNTS.items():
        assert table.get((NAMES[t], NAMES[p]), 0) == round(n / 2)
    assert list(rows.columns) == ["actual", "predicted"]


def test_training_jaccard_is_the_numpy_mean_iou():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, (3, 16, 16)).astype(np.uint8)
    labels[0, :2] = IGNORE_INDEX
    logits = rng.normal(size=(3, 16, 16, 4)).astype(np.float32)
    logits[..., 2] += 0.5 * (labels == 2)  # some skill, so IoUs differ by class
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)

    accuracy, jaccard = training_metrics(4)
    jaccard.update_state(labels, probabilities)

    expected = scores(confusion_matrix(labels, probabilities.argmax(-1), 4), list("abcd"), exclude=())["miou"]
    assert (accuracy.name, jaccard.name) == ("accuracy", "jaccard")
    assert float(jaccard.result()) == pytest.approx(expected, rel=1e-5)
