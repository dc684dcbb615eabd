"""The suite's own scheduling: tests marked with one ``xdist_group`` share a worker, so a built
project (reproduced_project, a module's trained fixture) is built once, not once per worker. pytest
9.2 broke this silently (pytest-xdist#1386): the suite ran, only twice as long. This test runs a
real two-worker session of the installed pytest and pytest-xdist to catch such a release."""

import re
import subprocess
import sys
import textwrap

GROUPED = textwrap.dedent("""
    import time
    import pytest

    pytestmark = pytest.mark.xdist_group("built_once")

    @pytest.mark.parametrize("index", range(3))
    def test_grouped(index):
        time.sleep(0.2)
""")
ALONE = textwrap.dedent("""
    import time
    import pytest

    @pytest.mark.parametrize("index", range(4))
    def test_alone(index):
        time.sleep(0.2)
""")


def test_tests_of_one_xdist_group_run_on_one_worker(tmp_path):
    for name, text in {"test_first.py": GROUPED, "test_second.py": GROUPED, "test_alone.py": ALONE}.items():
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    workers = {test: worker for worker, test in re.findall(r"\[(gw\d)\] \[\s*\d+%\] PASSED (\S+)", done.stdout)}
    grouped = {test: worker for test, worker in workers.items() if "test_grouped" in test}
    assert len(grouped) == 6 and len(workers) == 10, done.stdout[-3000:]
    assert set(workers.values()) == {"gw0", "gw1"}  # both worked, so one group on one is no accident
    assert len(set(grouped.values())) == 1, f"the group ran on several workers: {grouped}"
