"""dvc.yaml tracks the code each stage runs: its script and every aerialseg module it imports.

A stage's dependencies are the import closure of ``stages/<name>.py`` inside the project, read
from the source with ``ast`` (no import runs). Imports made only while params are validated
(aerialseg.pipeline.params checks names against the modules that implement them) are not part of it: they
decide whether params are accepted, not what a stage writes. An edit of any module a stage
imports must make `dvc status` report that stage; an omission here would let `dvc repro` call
stale outputs up to date.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import yaml
from pipeline_helpers import REPO

from aerialseg.pipeline.paths import Layout

PACKAGES = ("aerialseg", "stages")


def module_file(name: str) -> Path | None:
    """The project file of a dotted module name, or None for anything outside the project."""
    if name.split(".")[0] not in PACKAGES:
        return None
    path = REPO.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Dotted names ``path`` imports, with each parent package (importing a.b runs a/__init__.py)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # from pkg import module
    return {".".join(name.split(".")[:depth]) for name in names for depth in range(1, name.count(".") + 2)}


def import_closure(*paths: Path) -> set[Path]:
    """Every project file that running ``paths`` imports, ``paths`` included."""
    seen, todo = set(), list(paths)
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(file for name in imported_modules(current) if (file := module_file(name)))
    return seen


def stage_code(name: str) -> set[str]:
    """The files `python -m stages.<name>` runs: the stages package, the script and their imports."""
    closure = import_closure(REPO / "stages" / "__init__.py", REPO / "stages" / f"{name}.py")
    return {path.relative_to(REPO).as_posix() for path in closure}


def code_dependency_problems(pipeline: dict) -> list[str]:
    """What each stage's code deps lack or list in vain, compared with its import closure."""
    problems = []
    for name, stage in pipeline["stages"].items():
        needed = stage_code(name)
        listed = {dep for dep in stage.get("deps", []) if dep.endswith(".py")}
        problems += [f"stage {name}: imports {path} but dvc.yaml does not list it" for path in sorted(needed - listed)]
        problems += [f"stage {name}: lists {path} but does not import it" for path in sorted(listed - needed)]
    return problems


def read_pipeline() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())


def test_every_stage_lists_exactly_the_code_it_imports():
    assert code_dependency_problems(read_pipeline()) == []


def test_an_omitted_module_is_caught():
    pipeline = read_pipeline()
    pipeline["stages"]["patches"]["deps"].remove("aerialseg/raster/pictures.py")
    assert code_dependency_problems(pipeline) == [
        "stage patches: imports aerialseg/raster/pictures.py but dvc.yaml does not list it"
    ]


def test_closure_follows_from_imports_and_package_inits():
    closure = stage_code("resize")
    assert {
        "stages/__init__.py",
        "aerialseg/__init__.py",
        "aerialseg/data/resize.py",
        "aerialseg/pipeline/atomic.py",
        "aerialseg/data/palette.py",
    } <= closure
    assert "aerialseg/train/model.py" not in closure  # resize never imports Keras code


def test_every_output_in_dvc_yaml_is_a_layout_path():
    """dvc.yaml and aerialseg.pipeline.paths name the same files (the layout is where code finds them)."""
    layout = Layout()
    named = {
        str(value.path if hasattr(value, "path") else value)
        for value in (
            getattr(layout, attribute) for attribute in dir(Layout) if isinstance(getattr(Layout, attribute), property)
        )
    }
    named |= {str(layout.confusion_rows(mode)) for mode in ("plain", "smooth")}
    outputs = set()
    for stage in read_pipeline()["stages"].values():
        for kind in ("outs", "metrics", "plots"):
            outputs |= {next(iter(entry)) if isinstance(entry, dict) else entry for entry in stage.get(kind, [])}
    assert outputs - named == set()


def test_a_fresh_clone_shows_the_committed_scores(tmp_path):
    """The small metric files are in git (``cache: false``): `dvc metrics show` in a clone of
    HEAD prints the committed evaluate.json before anything is pulled or rebuilt."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    committed = json.loads((clone / "metrics/evaluate.json").read_text())
    shown = subprocess.run(
        [sys.executable, "-m", "dvc", "metrics", "show", "--json"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    )
    scores = json.loads(shown.stdout)[""]["data"]["metrics/evaluate.json"]["data"]
    assert scores["smooth"]["miou"] == committed["smooth"]["miou"] > 0
    assert set(json.loads(shown.stdout)[""]["data"]) >= {"metrics/train.json", "metrics/class_distribution.json"}
