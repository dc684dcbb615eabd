"""metrics/train_history.csv: one row per finished epoch, written by training, read by evaluation
(the snapshot table) and the report (training curves)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from aerialseg.pipeline.atomic import atomic_file

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "jaccard", "val_loss", "val_accuracy", "val_jaccard"]


def write_history(path: Path, rows: list[dict]) -> pd.DataFrame:
    history = pd.DataFrame(rows)
    with atomic_file(path) as tmp:
        history.to_csv(tmp, index=False)
    return history


def read_history(path: Path) -> pd.DataFrame:
    """The history the train stage wrote (empty, with its columns, if there is none)."""
    if not path.is_file():
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    return pd.read_csv(path)
