"""Shared fixtures: the repository's params, a real HTTP file server on 127.0.0.1 and small
Potsdam-layout data sets."""

from __future__ import annotations

import re
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml
from pipeline_helpers import REPO, deep_update, make_project, run

from aerialseg.data.palette import Palette
from aerialseg.data.potsdam import label_name, photo_name
from aerialseg.pipeline.params import Params, parse_params
from aerialseg.raster.pictures import write_image
from aerialseg.testing.potsdam_zip import write_potsdam_zip


def repo_params(changes: dict | None = None) -> Params:
    """The repository's params.yaml, validated, with ``changes`` merged in."""
    return parse_params(deep_update(yaml.safe_load((REPO / "params.yaml").read_text()), changes or {}))


POTSDAM_PALETTE = repo_params().palette  # the classes of params.yaml, never a copy of them


class FileServer:
    """Serves in-memory files over HTTP with Range support; can cut responses off halfway.

    ``requests`` records (path, Range header) of every GET, so tests see whether a resume happened.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cut_next = 0  # how many coming responses send only half their body, then close
        self.honour_range = True
        self.bytes_per_second = 0  # > 0: send slowly, like a real download of a large archive
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def add(self, name: str, data: bytes) -> str:
        self.files[f"/{name}"] = data
        return f"http://127.0.0.1:{self._httpd.server_port}/{name}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler_for(server: FileServer):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            wanted = self.headers.get("Range")
            server.requests.append((self.path, wanted))
            data = server.files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            start = int(re.fullmatch(r"bytes=(\d+)-", wanted)[1]) if wanted and server.honour_range else 0
            if start >= len(data) > 0:
                self.send_error(416)
                return
            body = data[start:]
            self.send_response(206 if wanted and server.honour_range else 200)
            if wanted and server.honour_range:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if server.cut_next:
                server.cut_next -= 1
                body = body[: len(body) // 2]
                self.close_connection = True
            if server.bytes_per_second:
                _send_slowly(self.wfile, body, server.bytes_per_second)
            else:
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


def _send_slowly(stream, body: bytes, bytes_per_second: int, chunk: int = 1024) -> None:
    for start in range(0, len(body), chunk):
        try:
            stream.write(body[start : start + chunk])
            stream.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client was killed: what the test wants
            return
        time.sleep(chunk / bytes_per_second)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first. pytest-xdist hands out the xdist groups first, largest first, then the
    other tests in this order: the long end-to-end runs start early and the many short tests fill
    the workers' gaps at the end, instead of one pipeline starting last while the other idles."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def reproduced_project(tmp_path_factory) -> Path:
    """The tiny project after `dvc repro`, committed as a user commits a run (dvc.lock and the
    small metric files DVC leaves to git): a git + DVC repository with its MLflow store. Built once
    (about 2 minutes on 2 cores); a module that changes it works on its own copy
    (pipeline_helpers.copy_repository), never on this one."""
    folder = make_project(tmp_path_factory.mktemp("reproduced") / "project")
    run(["dvc", "repro"], folder)
    run(["git", "add", "-A"], folder)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "reproduced"], folder)
    return folder


@pytest.fixture
def file_server():
    with FileServer() as server:
        yield server


def write_potsdam_tiles(root: Path, tiles: list[str], size: int = 64, seed: int = 0) -> dict[str, tuple[Path, Path]]:
    """Write tiles the way Potsdam ships them: 2_Ortho_RGB/<photo> and 5_Labels_all/<label>.

    Photos are random RGB; labels are random palette colours. Returns tile -> (photo, label).
    """
    rng = np.random.default_rng(seed)
    colours = np.asarray(POTSDAM_PALETTE.colours, dtype=np.uint8)
    written = {}
    for tile in tiles:
        photo = root / "2_Ortho_RGB" / photo_name(tile)
        label = root / "5_Labels_all" / label_name(tile)
        write_image(photo, rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        write_image(label, colours[rng.integers(0, len(colours), (size, size))])
        written[tile] = (photo, label)
    return written


def zip_folder(folder: Path, archive: Path) -> Path:
    """Zip ``folder`` with its own name as the top folder inside, as 2_Ortho_RGB.zip does."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(folder.rglob("*")):
            zipped.write(path, path.relative_to(folder.parent))
    return archive


@pytest.fixture
def palette() -> Palette:
    return POTSDAM_PALETTE


@pytest.fixture
def make_potsdam_tiles():
    return write_potsdam_tiles


@pytest.fixture
def make_zip():
    return zip_folder


@pytest.fixture
def potsdam_archives(tmp_path):
    """2_Ortho_RGB.zip and 5_Labels_all.zip holding tiles 2_10 and 2_11; returns (archives, tiles)."""
    tiles = write_potsdam_tiles(tmp_path / "source", ["2_10", "2_11"])
    archives = [
        zip_folder(tmp_path / "source" / name, tmp_path / f"{name}.zip") for name in ("2_Ortho_RGB", "5_Labels_all")
    ]
    return archives, tiles


ARCHIVE_TILES = ["2_10", "2_11", "4_12"]  # 4_12's labels in 5_Labels_all are defective, as in the download


@pytest.fixture(scope="session")
def potsdam_zip(tmp_path_factory) -> Path:
    """Potsdam.zip as ISPRS ships it, small: every band set with world files, both label variants,
    the participants' labels of 4_12 (right, where 5_Labels_all's are the label over the photo), DSM
    and reference-code decoys. Read only; copy it to change it."""
    return write_potsdam_zip(
        tmp_path_factory.mktemp("download") / "Potsdam.zip",
        ARCHIVE_TILES,
        64,
        POTSDAM_PALETTE,
        filler=1 << 20,
        defective=["4_12"],
        participants=["4_12"],
    )


def without_members(archive: Path, target: Path, *dropped: str) -> Path:
    """A copy of ``archive`` without the members named ``dropped``, as a user's partial download."""
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(target, "w") as copy:
        for info in source.infolist():
            if info.filename not in dropped:
                copy.writestr(info, source.read(info))
    return target
