"""Atomic outputs: every file and folder a stage writes appears whole or not at all.

Each write goes to a temporary name beside the target (``.<name>.partial-XXXX``) and is renamed
into place only when it is complete, so a failed or killed stage never leaves half a file or
half a folder where the next stage (or DVC) would read it. Temporaries left by a killed writer
are removed the next time the same output is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from aerialseg.errors import MissingFileError

PARTIAL = ".partial-"  # in the names of files and folders being written


@contextlib.contextmanager
def atomic_file(path: str | Path):
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = f".{path.stem}{PARTIAL}", "".join(path.suffixes)
    _remove_stale(path.parent, f"{prefix}*{suffix}")
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs should be readable like any file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | Path):
    """Yield a fresh temporary folder beside ``path``; it replaces ``path`` only if the block succeeds.

    Stage outputs are whole folders; building them aside means a failure keeps the old output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}{PARTIAL}"
    _remove_stale(path.parent, f"{prefix}*")
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale(parent: Path, pattern: str) -> None:
    """Delete temporaries of the same output that a killed process left behind (no cleanup ran)."""
    for stale in parent.glob(pattern):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_text(path: str | Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data) -> None:
    """Write ``data`` as indented JSON, atomically (metrics files are read by DVC at any time)."""
    write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path: str | Path, written_by: str):
    """Read a JSON output of an earlier stage; a missing file names the stage that writes it."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file (run the {written_by} stage first)")
    return json.loads(path.read_text())
