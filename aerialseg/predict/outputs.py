"""The output folder of aerialseg-predict and aerialseg-export, checked before a model is loaded.

Loading Keras and a model takes seconds and mapping takes hours: an --out that is a file, cannot
be created or is read-only should be one line at once, not a traceback at the first write.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from aerialseg.errors import InputError
from aerialseg.pipeline.atomic import remove_stale


def writable_folder(folder: Path, what: str) -> None:
    """Create ``folder`` if needed and try creating a file in it (the only sure test of being able to
    write there: permissions, read-only mounts and ACLs all answer it); then remove the temporaries
    that killed runs left there, which nothing else would remove until their names are written again.
    """
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: is a file, not a folder (choose a folder with --out)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise InputError(
            f"{folder}: cannot write {what} into this folder ({error.strerror or error}) (choose a folder you can "
            "write to with --out)"
        ) from error
    remove_stale(folder)
