"""Shared set-up for tests that run real stages in a throw-away copy of the repository."""

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).parents[1]
PROJECT_FILES = ("aerialseg", "stages", "dvc.yaml", "params.yaml", ".gitignore")

TINY = {
    "data": {"synthetic": {"tiles": 4, "size": 256, "seed": 0}},
    "resize": {"scale": 0.5},
    "patches": {"patch_size": 32, "step": 32, "split": {"train": ["2_10", "2_11"], "val": ["2_12"], "test": ["2_13"]}},
    "train": {"epochs": 2, "snapshot_every": 1, "base_filters": 4, "batch_size": 8, "dropout": 0.0},
    "predict": {"tta": "flips", "batch_size": 32},
}


def environment() -> dict:
    """The current environment with this interpreter's bin folder first (DVC runs `python -m ...`)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def jax_environment(devices: int = 1) -> dict:
    """environment() with Keras on JAX on ``devices`` virtual CPU devices. LLVM left unoptimised:
    the tests' tiny trainings spend most of their time compiling (a quarter less time a training
    on JAX), and the runs a test compares are compiled alike."""
    flags = f"--xla_force_host_platform_device_count={devices} --xla_backend_optimization_level=0"
    return dict(environment(), KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", XLA_FLAGS=flags)


def deep_update(target: dict, changes: dict) -> dict:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_update(target[key], value)
        else:
            target[key] = value
    return target


def make_project(folder: Path, changes: dict = TINY, git: bool = True) -> Path:
    """Copy the project into ``folder`` with tiny params; optionally as a committed git + DVC repo."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, folder / name)
    params = deep_update(yaml.safe_load((REPO / "params.yaml").read_text()), changes)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if git:
        for command in (
            ["git", "init", "-q"],
            ["dvc", "init", "-q"],
            ["git", "add", "-A"],
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"],
        ):
            run(command, folder)
    return folder


def copy_repository(project: Path, folder: Path) -> Path:
    """A copy of ``project`` with its git history, DVC cache and MLflow store, file times kept, so
    DVC finds it up to date. The store names its artifact folder by absolute path: runs logged in
    the copy keep their artifacts beside the original's store."""
    return Path(shutil.copytree(project, folder, symlinks=True))


def run(command: list[str], cwd: Path, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=environment(), capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def run_stage(name: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", f"stages.{name}"], cwd, check)


# The stages' own main functions, in order: what `python -m stages.<name>` runs, less its error
# wrapper (a failure here is a traceback, which a test wants to see anyway). A word holding a
# path separator is a project folder: the stages named after it run there. Between stages the
# environment is put back (MLflow exports the tracking URI it is given) and Keras' state cleared,
# as the next stage's own process would start.
STAGES_IN_ONE_PROCESS = """
import importlib, os, sys
for word in sys.argv[1:]:
    if os.sep in word:
        os.chdir(word)
        continue
    environment = dict(os.environ)
    importlib.import_module(f"stages.{word}").main()
    os.environ.clear()
    os.environ.update(environment)
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()
        sys.modules["keras"].config.set_dtype_policy("float32")
"""


def run_stages(names: list[str] | tuple[str, ...], cwd: Path) -> subprocess.CompletedProcess:
    """Run the stages ``names`` in order in one fresh Python process in ``cwd``: TensorFlow is
    imported once instead of once per stage, which halves the time of a tiny pipeline. For tests
    of what flows from stage to stage; each stage as its own process under DVC is test_pipeline's."""
    return run_projects({cwd: names})


def run_projects(stages: dict[Path, list[str] | tuple[str, ...]]) -> subprocess.CompletedProcess:
    """Run each project's stages, project after project, in one fresh Python process (see
    run_stages): the projects are copies of the same code, so the first one's is imported."""
    words = [word for folder, names in stages.items() for word in (str(folder.absolute()), *names)]
    return run([sys.executable, "-c", STAGES_IN_ONE_PROCESS, *words], next(iter(stages)))


@contextlib.contextmanager
def altered(path: Path, content: bytes):
    """``path`` holds ``content`` inside the block, and its own bytes again after it."""
    original = path.read_bytes()
    path.write_bytes(content)
    try:
        yield
    finally:
        path.write_bytes(original)
