"""The download stage as a process: killed or interrupted mid-transfer, it resumes; errors are one line."""

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from pipeline_helpers import environment, make_project, run_stage

ARCHIVE = "2_Ortho_RGB.zip"


@pytest.fixture
def slow_download(tmp_path, file_server, make_potsdam_tiles, make_zip):
    """A project whose params download two archives of 2 MB from a server sending 256 KB/s (the
    downloader writes 1 MB blocks, so a kill after the first keeps a part to resume, with seconds
    to spare even on a loaded machine before the download could end by itself)."""
    make_potsdam_tiles(tmp_path / "source", ["2_10", "2_11"], size=600)
    archives = [
        make_zip(tmp_path / "source" / name, tmp_path / f"{name}.zip") for name in ("2_Ortho_RGB", "5_Labels_all")
    ]
    files = [
        {"url": file_server.add(a.name, a.read_bytes()), "sha256": hashlib.sha256(a.read_bytes()).hexdigest()}
        for a in archives
    ]
    changes = {"data": {"source": "url", "url": {"files": files}}, "evaluate": {"labels": "full"}}  # no noBoundary
    project = make_project(tmp_path / "project", changes, git=False)
    file_server.bytes_per_second = 1 << 18
    return project, file_server


def start_stage(project: Path) -> subprocess.Popen:
    """The download stage as a terminal starts it: with Ctrl-C's signal at its default, also when
    the tests themselves run in a background job, whose children inherit SIGINT ignored."""
    return subprocess.Popen(
        [sys.executable, "-m", "stages.download"],
        cwd=project,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_bytes(part: Path, process: subprocess.Popen, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if part.is_file() and part.stat().st_size > 0:
            return part.stat().st_size
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise TimeoutError(f"{part} never grew")


def test_a_killed_download_resumes_with_a_range_request(slow_download):
    project, server = slow_download
    part = project / "data/downloads" / f"{ARCHIVE}.part"
    process = start_stage(project)
    wait_for_bytes(part, process)
    process.kill()
    process.wait()
    kept = part.stat().st_size
    assert kept > 0

    server.bytes_per_second = 0
    run_stage("download", project)

    resumed = [wanted for path, wanted in server.requests if path == f"/{ARCHIVE}"]
    assert resumed[0] is None and resumed[1] == f"bytes={kept}-"  # only the missing bytes were asked for
    manifest = (project / "data/raw/manifest.csv").read_text()
    assert "2_10" in manifest and "2_11" in manifest


def test_ctrl_c_prints_one_line_and_keeps_the_partial_download(slow_download):
    project, _ = slow_download
    part = project / "data/downloads" / f"{ARCHIVE}.part"
    process = start_stage(project)
    wait_for_bytes(part, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert [line for line in stderr.splitlines() if line.startswith("interrupted:")], stderr[-2000:]
    assert part.stat().st_size > 0


def test_bad_input_is_one_line_without_traceback(tmp_path):
    project = make_project(
        tmp_path / "project", {"data": {"source": "local", "local": {"paths": [str(tmp_path)]}}}, git=False
    )
    result = run_stage("download", project, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "no Potsdam tiles" in errors[0] and str(tmp_path) in errors[0]


def test_params_written_by_a_person_are_checked_with_the_key_named(tmp_path):
    project = make_project(tmp_path / "project", git=False)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["synthetic"]["tiels"] = 4
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_stage("download", project, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: params.yaml: data.synthetic.tiels: unknown key (valid keys here: tiles, size, seed)" in result.stderr
    assert not (project / "data/raw").exists()
