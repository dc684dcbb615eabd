"""Real processes and a real full disk for the tests of atomic outputs and of the commands."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_helpers import REPO, environment

from aerialseg.pipeline.atomic import PARTIAL

WRITER = """
import sys
from aerialseg.pipeline.atomic import atomic_file
with atomic_file(sys.argv[1]) as tmp:
    tmp.write_text("half")
    print(tmp.name, flush=True)
    sys.stdin.readline()  # the test says when to finish
    tmp.write_text(sys.argv[2])
"""


class Writer:
    """A real process writing ``target`` through atomic_file, paused halfway until finish()."""

    def __init__(self, target, content="whole"):
        command = [sys.executable, "-c", WRITER, str(target), content]
        env = environment() | {"PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.temporary = self.process.stdout.readline().strip()  # written, half, when this returns
        assert PARTIAL in self.temporary, self.process.communicate()

    def finish(self) -> int:
        self.process.communicate("go\n", timeout=60)
        return self.process.returncode

    def kill(self) -> None:
        kill(self.process)


def kill(process: subprocess.Popen) -> None:
    """SIGKILL (no cleanup runs), then reap it: a zombie's process id would still count as running."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture
def tiny_disk(tmp_path) -> Path:
    """A folder on a tmpfs of its own, 64 KiB in size: a write past that fails in the kernel with
    ENOSPC, as on a real full disk. Mounting needs root (the tests run as root here); where it is
    refused the test is skipped."""
    folder = tmp_path / "tiny-disk"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)
