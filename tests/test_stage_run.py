"""aerialseg.pipeline.stage on a real DVC repository: outputs restored from the cache as dvc.lock says."""

import json
import subprocess
import sys

import pytest
import yaml
from pipeline_helpers import environment

from aerialseg.pipeline.stage import persistent_outputs, restore_outputs

WRITER = """
import pathlib, sys
out = pathlib.Path("out"); out.mkdir(exist_ok=True)
(out / "a.txt").write_text("first"); (out / "deep").mkdir(exist_ok=True); (out / "deep" / "b.txt").write_text("second")
pathlib.Path("score.json").write_text('{"score": 1}'); pathlib.Path("kept.txt").write_text("persistent")
"""


def git_dvc(repo, *command):
    subprocess.run(command, cwd=repo, env=environment(), check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "write.py").write_text(WRITER)
    stage = {
        "cmd": f"{sys.executable} write.py",
        "deps": ["write.py"],
        "outs": ["out", {"kept.txt": {"persist": True}}],
        "metrics": ["score.json"],
    }
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"write": stage}}))
    git_dvc(tmp_path, "git", "init", "-q")
    git_dvc(tmp_path, "dvc", "init", "-q")
    git_dvc(tmp_path, "dvc", "repro")
    return tmp_path


def test_outputs_dvc_deleted_come_back_byte_identical(repo):
    (repo / "out" / "deep" / "b.txt").unlink()
    (repo / "out" / "a.txt").write_text("half written by a failed run")
    (repo / "score.json").unlink()
    (repo / "kept.txt").write_text("newer, and DVC never deletes it")

    assert sorted(restore_outputs(repo, "write")) == ["out", "score.json"]

    assert (repo / "out" / "a.txt").read_text() == "first"
    assert (repo / "out" / "deep" / "b.txt").read_text() == "second"
    assert (repo / "score.json").read_text() == '{"score": 1}'
    assert (repo / "kept.txt").read_text() == "newer, and DVC never deletes it"
    status = subprocess.run(["dvc", "status", "--json"], cwd=repo, env=environment(), capture_output=True, text=True)
    assert json.loads(status.stdout) == {"write": [{"changed outs": {"kept.txt": "modified"}}]}  # only the newer one


def test_persistent_outputs_are_read_from_dvc_yaml(repo):
    assert persistent_outputs(repo / "dvc.yaml", "write") == {"kept.txt"}


def test_a_stage_that_never_succeeded_has_nothing_to_restore(repo):
    assert restore_outputs(repo, "another") == []
