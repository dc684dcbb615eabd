"""Running a stage: errors a person can read, and no lost outputs when it fails.

DVC deletes a stage's outputs before it runs the stage (all but those marked ``persist``), so a
stage that then fails, on bad input, a full disk or Ctrl-C, would leave the pipeline without the
outputs of its last successful run (gigabytes of data/raw, for real Potsdam). When DVC runs a
stage (it sets ``DVC_STAGE`` and ``DVC_ROOT``), a failure therefore puts those outputs back from
DVC's cache, exactly as dvc.lock records them; the stage's own writes are atomic, so nothing
half-written is left either. A stage run by hand has had nothing deleted, and nothing is restored.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from aerialseg.errors import InputError
from aerialseg.pipeline.atomic import atomic_dir, atomic_file

OUTPUT_KINDS = ("outs", "metrics", "plots")


def run_stage(main: Callable[[], object]) -> None:
    """Run a stage's ``main``; on failure restore its outputs, then report in one line.

    The project's errors (:class:`InputError`) print ``error: <message>`` and exit 1; Ctrl-C
    prints one line and exits 130; any other exception is a bug and keeps its traceback.
    """
    try:
        main()
    except (Exception, KeyboardInterrupt) as error:
        kept = _restore_after_failure()
        if isinstance(error, KeyboardInterrupt):
            _exit(130, f"interrupted: {kept} (a partial download resumes on the next run)")
        if isinstance(error, InputError):
            _exit(1, f"error: {error}", f"note: {kept}")
        print(f"note: {kept}", file=sys.stderr)
        raise


def _exit(code: int, *lines: str) -> None:
    print("\n".join(lines), file=sys.stderr)
    sys.exit(code)


def _restore_after_failure() -> str:
    """Restore the outputs DVC deleted, if DVC runs this stage; say what the user still has."""
    stage, root = os.environ.get("DVC_STAGE"), os.environ.get("DVC_ROOT")
    if not stage or not root:
        return "outputs already written are kept; nothing half-written was left"
    recorded = recorded_outputs(Path(root), stage)
    if not recorded:
        return "this stage had no earlier successful run to restore"
    try:
        restored = restore_outputs(Path(root), stage)
    except OSError as error:
        return f"the outputs of the last successful run could not be restored ({error}); run `dvc checkout {stage}`"
    untouched = [path for path in recorded if path not in restored]  # persistent: DVC never deleted them
    return "the outputs of the last successful run are back in place: " + "; ".join(
        part
        for part in (
            f"restored {', '.join(restored)}" if restored else "",
            f"kept {', '.join(untouched)}" if untouched else "",
        )
        if part
    )


def restore_outputs(root: Path, stage: str) -> list[str]:
    """Put back, from DVC's cache, each output of ``stage`` that DVC deletes before a run, as
    dvc.lock records it after the stage's last successful run; return the paths restored."""
    recorded = recorded_outputs(root, stage)
    if not recorded:
        return []
    persistent = persistent_outputs(root / "dvc.yaml", stage)
    deleted = {path: md5 for path, md5 in recorded.items() if path not in persistent}
    if not deleted:
        return []
    cache = _cache_dir(root)
    for path, md5 in deleted.items():
        _restore(cache, root / path, md5)
    return list(deleted)


def recorded_outputs(root: Path, stage: str) -> dict[str, str]:
    """The outputs dvc.lock records for ``stage`` after its last successful run, with their md5
    (none if it never succeeded)."""
    lock = root / "dvc.lock"
    if not lock.is_file():
        return {}
    recorded = (yaml.safe_load(lock.read_text()).get("stages") or {}).get(stage, {}).get("outs", [])
    return {output["path"]: output["md5"] for output in recorded}


def persistent_outputs(dvc_yaml: Path, stage: str) -> set[str]:
    """Outputs of ``stage`` marked ``persist: true``: DVC leaves them alone, and so does restoring."""
    definition = yaml.safe_load(dvc_yaml.read_text())["stages"][stage]
    entries = [entry for kind in OUTPUT_KINDS for entry in definition.get(kind, [])]
    return {
        path for entry in entries if isinstance(entry, dict) for path, flags in entry.items() if flags.get("persist")
    }


def _cache_dir(root: Path) -> Path:
    """DVC's local cache of the repository (its own setting, or .dvc/cache), files/md5 part."""
    from dvc.repo import Repo  # slow to import; only a failed stage needs it

    with Repo(str(root)) as repo:
        return Path(repo.cache.local.path)


def _cached(cache: Path, md5: str) -> Path:
    path = cache / md5[:2] / md5[2:]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not in the DVC cache")
    return path


def _restore(cache: Path, target: Path, md5: str) -> None:
    """Copy a cached file, or a cached folder (a .dir listing of its files), to ``target``."""
    if not md5.endswith(".dir"):
        with atomic_file(target) as tmp:
            shutil.copyfile(_cached(cache, md5), tmp)
        return
    with atomic_dir(target) as staging:
        for entry in json.loads(_cached(cache, md5).read_text()):
            destination = staging / entry["relpath"]
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_cached(cache, entry["md5"]), destination)
