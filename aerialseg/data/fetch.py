"""Fetching a file over HTTP: resumed after an interruption, checked against its SHA-256.

The url source's archives (ISPRS Potsdam's is about 50 GB) can take hours to fetch, so an
interrupted transfer is kept and resumed, never restarted, and a complete file is checked against
the SHA-256 the params give, so that a broken transfer is never mistaken for data.
Nothing here knows of tiles or layouts: the layouts (aerialseg.data.potsdam_tiles,
aerialseg.data.vaihingen) call :func:`download` and read what it gives.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests
from tqdm import tqdm

from aerialseg.errors import InputError

TIMEOUT_S = 60  # seconds without a byte before a transfer counts as interrupted


class DownloadError(InputError, RuntimeError):
    """A file could not be fetched completely; a partial file is kept for resuming."""


class ChecksumError(DownloadError):
    """A downloaded file does not have the expected SHA-256. The file is kept: the expected hash in
    the params may be the wrong one, and a Potsdam archive takes hours to fetch again."""


def download(url: str, dest_dir: str | Path, sha256: str, chunk: int = 1 << 20) -> Path:
    """Fetch ``url`` into ``dest_dir`` and return the verified file.

    Bytes go to ``<name>.part`` first; a later call resumes it with an HTTP Range request. Once
    complete it is renamed to ``<name>`` and never fetched again, so only ``.part`` is ever resumed
    or restarted. A complete file with another hash is kept and raises ChecksumError: fixing the
    expected hash then uses it as it is; deleting it fetches it again.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / _file_name(url)
    if not target.is_file():
        part = target.with_name(target.name + ".part")
        _fetch(url, part, chunk)
        os.replace(part, target)
    _verify(target, url, sha256)
    return target


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_name(url: str) -> str:
    name = Path(unquote(urlsplit(url).path)).name
    if not name:
        raise DownloadError(f"{url}: cannot tell a file name from this URL")
    return name


def _fetch(url: str, part: Path, chunk: int) -> None:
    """Append the missing bytes of ``url`` to ``part``, or start over if the server ignores Range."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}  # the hash is of the file, not of a compressed transfer
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        with requests.get(url, headers=headers, stream=True, timeout=TIMEOUT_S) as response:
            if response.status_code == 416:  # nothing left to send: the .part holds every byte
                return
            if response.status_code not in (200, 206):
                raise DownloadError(f"{url}: the server answered {response.status_code} {response.reason}")
            if response.status_code == 200:
                offset = 0
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            _stream_to(part, response, offset, total, chunk)
    except requests.RequestException as error:
        raise _interrupted(url, part, error) from error
    if total is not None and part.stat().st_size < total:
        raise _interrupted(url, part, f"got {part.stat().st_size} of {total} bytes")


def _stream_to(part: Path, response: requests.Response, offset: int, total: int | None, chunk: int) -> None:
    with (
        open(part, "ab" if offset else "wb") as out,
        tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=part.stem) as bar,
    ):
        for block in response.iter_content(chunk):
            out.write(block)
            bar.update(len(block))


def _interrupted(url: str, part: Path, reason) -> DownloadError:
    kept = part.stat().st_size if part.exists() else 0
    return DownloadError(
        f"{url}: download stopped before the end ({reason}); {kept} bytes are kept in {part}, run again to resume"
    )


def _verify(path: Path, url: str, sha256: str) -> None:
    actual = file_sha256(path)
    if actual != sha256.lower():
        raise ChecksumError(
            f"{path} (downloaded from {url}): SHA-256 mismatch, expected {sha256.lower()} but the file has "
            f"{actual}. The file is complete and is kept. If the params are wrong, fix the sha256 of this URL in "
            f"data.url.files and run again: the file is then used as it is, without a new download. If the file "
            f"is wrong, delete {path} and run again."
        )
