"""Resumable training: the last finished epoch, saved so a killed run continues where it stopped.

After every epoch the full model (weights and optimizer state) is written under a new name, then
a small state file that points at it is swapped in atomically. A kill at any moment therefore
leaves either the previous or the new epoch intact, never a mix, and the history never holds a
duplicated or a missing epoch. The state carries a fingerprint of everything that shapes the
training (params, data size, the training code); a checkpoint from anything else is ignored, not
resumed. A training that finishes removes its checkpoint: there is nothing left to resume.

Keras' own ``BackupAndRestore`` (read in Keras 3.15) is not used: it overwrites one weights file
in place (a kill while it writes leaves a truncated file, and the next start fails to load it,
or with ``double_checkpoint`` falls back a step), resumes any backup it finds whatever params or
code made it, and only restores weights and the epoch number, not the MLflow run to continue.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import keras

from aerialseg.pipeline.atomic import atomic_file

STATE = "state.json"


def fingerprint(*parts) -> str:
    """A stable hash of JSON-serialisable settings."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def code_digest(*paths: str | Path) -> str:
    """A hash of the source files under ``paths``: changed code must not resume an old checkpoint."""
    files = sorted(file for path in map(Path, paths) for file in ([path] if path.is_file() else path.rglob("*.py")))
    return fingerprint([hashlib.sha256(file.read_bytes()).hexdigest() for file in files])


@dataclass
class TrainingState:
    epoch: int = 0  # finished epochs
    history: list[dict] = field(default_factory=list)  # one row per finished epoch
    run_id: str | None = None


class Checkpoint:
    def __init__(self, folder: str | Path, fingerprint: str):
        self.folder, self.fingerprint = Path(folder), fingerprint

    def load(self) -> tuple[keras.Model, TrainingState] | None:
        """The saved model and state, or None if there is none for these settings."""
        state_path = self.folder / STATE
        if not state_path.is_file():
            return None
        saved = json.loads(state_path.read_text())
        if saved.get("fingerprint") != self.fingerprint:
            print(f"{self.folder}: checkpoint from other settings, starting afresh")
            return None
        model = keras.saving.load_model(self.folder / saved["model"])
        return model, TrainingState(saved["epoch"], saved["history"], saved["run_id"])

    def save(self, model: keras.Model, state: TrainingState) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        model_name = f"epoch_{state.epoch:03d}.keras"
        with atomic_file(self.folder / model_name) as tmp:
            model.save(tmp)
        with atomic_file(self.folder / STATE) as tmp:
            tmp.write_text(
                json.dumps(
                    {
                        "fingerprint": self.fingerprint,
                        "model": model_name,
                        "epoch": state.epoch,
                        "history": state.history,
                        "run_id": state.run_id,
                    },
                    indent=1,
                )
            )
        for old in self.folder.glob("epoch_*.keras"):
            if old.name != model_name:
                old.unlink()

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
