"""Getting the raw data set: download, unpack and check Potsdam tiles before any stage uses them.

ISPRS Potsdam comes as large zip archives (``2_Ortho_RGB.zip`` with ``top_potsdam_2_10_RGB.tif``,
``5_Labels_all.zip`` with ``top_potsdam_2_10_label.tif``, sometimes zipped once more). Downloads
resume after an interruption and are checked against their SHA-256, so a broken transfer is never
mistaken for data. Every tile is read once here: a corrupt file, a photo without its label or a
label with a colour outside the palette stops the pipeline at its first stage, naming the file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd
import requests
from tqdm import tqdm

from aerialseg.atomic import atomic_dir
from aerialseg.config import DataParams
from aerialseg.errors import InputError, MissingFileError
from aerialseg.layout import Layout, TileFolder
from aerialseg.manifest import write_manifest
from aerialseg.palette import Palette
from aerialseg.potsdam import parse_tile_name, tile_order
from aerialseg.synthetic import write_dataset
from aerialseg.tiles import TIFF_SUFFIXES, read_geotags, read_image, write_image

TIMEOUT_S = 60  # seconds without a byte before a transfer counts as interrupted


class DownloadError(InputError, RuntimeError):
    """A file could not be fetched completely; a partial file is kept for resuming."""


class ChecksumError(DownloadError):
    """A downloaded file does not have the expected SHA-256. The file is kept: the expected hash in
    the params may be the wrong one, and a Potsdam archive takes hours to fetch again."""


class ArchiveError(InputError, ValueError):
    """A file is not a readable zip archive."""


class DatasetError(InputError, ValueError):
    """The tiles found do not form a usable data set (missing partners, sizes that differ...)."""


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


def extract_archives(paths: Iterable[str | Path], dest_dir: str | Path) -> list[Path]:
    """Unzip each archive into its own folder under ``dest_dir``; zips inside are unzipped too.

    Returns the folders, one per archive, in the order given.
    """
    folders = []
    for number, archive in enumerate(map(Path, paths)):
        folder = Path(dest_dir) / f"{number:02d}_{archive.stem}"
        _extract_nested(archive, folder, str(archive))
        folders.append(folder)
    return folders


def _extract_nested(archive: Path, folder: Path, name: str) -> None:
    """Unzip ``archive`` and the zips in it. ``name`` is what errors call it: for a zip inside a zip,
    ``<outer archive>!<member>``, as its unpacked copy in the work folder is deleted afterwards."""
    _extract(archive, folder, name)
    for inner in sorted(folder.rglob("*.zip")):
        _extract_nested(inner, inner.with_suffix(""), f"{name}!{inner.relative_to(folder).as_posix()}")
        inner.unlink()  # our own copy inside the work folder; its content is now beside it


def _extract(archive: Path, folder: Path, name: str) -> None:
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = zipped.infolist()
            with tqdm(
                total=sum(m.file_size for m in members),
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"unzip {archive.name}",
            ) as bar:
                for member in members:
                    zipped.extract(member, folder)
                    bar.update(member.file_size)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise ArchiveError(f"{name}: not a zip archive, or a corrupt or truncated one ({error})") from error


def find_tile_pairs(folders: Iterable[str | Path]) -> dict[str, tuple[Path, Path]]:
    """Find ``top_potsdam_<tile>_RGB`` photos and ``top_potsdam_<tile>_label`` pictures anywhere below
    ``folders`` and pair them by tile id, in tile order.

    Other Potsdam products (IRRG, RGBIR, DSM, labels without boundaries) are left out. Symlinked
    folders and files are followed, as a data set is often assembled from links.
    """
    folders = [Path(folder) for folder in folders]
    found = {"rgb": defaultdict(list), "label": defaultdict(list)}
    for folder in folders:
        for path in _files_below(folder):
            parsed = parse_tile_name(path)
            if parsed and parsed[1].lower() in found and path.is_file():
                found[parsed[1].lower()][parsed[0]].append(path)
    photos, labels = found["rgb"], found["label"]
    _check_pairs(photos, labels, folders)
    return {tile: (photos[tile][0], labels[tile][0]) for tile in sorted(photos, key=tile_order)}


def _files_below(folder: Path) -> list[Path]:
    """Every file below ``folder``, through symlinked folders too (Path.rglob does not enter them).

    A folder reached again through a link is not read again, so a link back up the tree ends there.
    """
    seen, files = set(), []
    for top, subfolders, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            subfolders.clear()
            continue
        seen.add(real)
        subfolders.sort()  # of two ways to one folder, the first by name is the one read, on every run
        files += [Path(top, name) for name in names]
    return sorted(files)


def _check_pairs(photos: dict[str, list[Path]], labels: dict[str, list[Path]], folders: list[Path]) -> None:
    if not photos and not labels:
        raise DatasetError(
            f"no Potsdam tiles (top_potsdam_<tile>_RGB.tif with top_potsdam_<tile>_label.tif) found under "
            f"{', '.join(map(str, folders)) or 'no folder'}; zip archives must be listed themselves"
        )
    problems = (
        [f"photo without a label: tile {tile} ({photos[tile][0]})" for tile in sorted(photos.keys() - labels.keys())]
        + [f"label without a photo: tile {tile} ({labels[tile][0]})" for tile in sorted(labels.keys() - photos.keys())]
        + [
            f"tile {tile} found more than once: {', '.join(map(str, paths))}"
            for found in (photos, labels)
            for tile, paths in sorted(found.items())
            if len(paths) > 1
        ]
    )
    if problems:
        raise DatasetError("the tiles do not pair up:\n  " + "\n  ".join(problems))


def collect_local(paths: Iterable[str | Path], work_dir: str | Path) -> dict[str, tuple[Path, Path]]:
    """Pair the tiles in zip archives (unpacked into ``work_dir``) and already-unpacked folders.

    A line per path says how many photos and labels it gave, so that a path giving fewer than
    expected is seen before any training on them.
    """
    paths = [Path(path) for path in paths]
    if not paths:
        raise DatasetError("no local paths given (data.local.paths is empty)")
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise MissingFileError(f"no such file or folder: {', '.join(missing)}")
    unpacked = iter(extract_archives([path for path in paths if not path.is_dir()], work_dir))
    folders = [path if path.is_dir() else next(unpacked) for path in paths]
    pairs = find_tile_pairs(folders)
    for path, folder in zip(paths, folders):
        print(_found_in(path, folder, pairs))
    return pairs


def _found_in(path: Path, folder: Path, pairs: dict[str, tuple[Path, Path]]) -> str:
    photos = sum(photo.is_relative_to(folder) for photo, _ in pairs.values())
    labels = sum(label.is_relative_to(folder) for _, label in pairs.values())
    return f"{photos} photo(s) and {labels} label(s) of Potsdam tiles in {path}"


def collect_url(
    files: Iterable[tuple[str, str]], cache_dir: str | Path, work_dir: str | Path
) -> dict[str, tuple[Path, Path]]:
    """Download each ``(url, sha256)`` archive into ``cache_dir`` (kept, so a rerun resumes) and pair its tiles."""
    files = list(files)
    if not files:
        raise DatasetError("no files to download (data.url.files is empty)")
    return collect_local([download(url, cache_dir, sha256) for url, sha256 in files], work_dir)


def download_raw(layout: Layout, data: DataParams, palette: Palette) -> pd.DataFrame:
    """The download stage: the tiles of ``data.source``, checked, into data/raw with its manifest.

    Archives are unpacked into a temporary folder beside data/raw; data/raw is built aside and
    swapped in only when every tile has passed its checks, so a failure leaves the previous one.
    """
    raw = layout.raw.path
    raw.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=raw.parent) as work, atomic_dir(raw) as staging:
        pairs = collect_pairs(data, palette, layout.downloads, Path(work))
        return prepare_raw(pairs, TileFolder(staging), palette, data.ignore_unknown_colours, data.source)


def collect_pairs(data: DataParams, palette: Palette, downloads: Path, work: Path) -> dict[str, tuple[Path, Path]]:
    """Photo and label file of every tile of the chosen source, unpacked or generated into ``work``."""
    if data.source == "url":
        return collect_url([(file.url, file.sha256) for file in data.url.files], downloads, work)
    if data.source == "local":
        return collect_local(data.local.paths, work)
    synthetic = data.synthetic
    write_dataset(work / "images", work / "labels", synthetic.tiles, synthetic.size, synthetic.seed, palette)
    return find_tile_pairs([work])


def prepare_raw(
    pairs: dict[str, tuple[Path, Path]],
    out: TileFolder,
    palette: Palette,
    ignore_unknown: bool = False,
    source: str = "",
) -> pd.DataFrame:
    """Check every pair and store it as ``images/top_potsdam_<tile>_RGB.tif`` and
    ``labels/top_potsdam_<tile>_label.tif`` under ``out``, with ``manifest.csv``.

    Each photo and label is decoded in full (so truncated files are caught here), their sizes must
    agree and the label may hold palette colours only (unless ``ignore_unknown``).
    """
    rows = []
    for tile, (photo, label) in tqdm(pairs.items(), desc="check tiles", unit="tile"):
        height, width = _store_pair(tile, Path(photo), Path(label), out, palette, ignore_unknown)
        rows.append({"tile": tile, "height": height, "width": width, "source": source})
    return write_manifest(out.manifest, rows)


def _store_pair(
    tile: str, photo: Path, label: Path, out: TileFolder, palette: Palette, ignore_unknown: bool
) -> tuple[int, int]:
    pixels = read_image(photo)
    colours = read_image(label)
    if pixels.shape[2] < 3:
        raise DatasetError(f"{photo}: expected an RGB photo, got {pixels.shape[2]} channel(s)")
    if pixels.shape[:2] != colours.shape[:2]:
        raise DatasetError(
            f"tile {tile}: photo {photo} is {pixels.shape[1]}x{pixels.shape[0]} px but label {label} is "
            f"{colours.shape[1]}x{colours.shape[0]} px"
        )
    palette.rgb_to_index(colours, source=str(label), ignore_unknown=ignore_unknown)
    _store(photo, pixels, out.photo(tile))
    _store(label, colours, out.label(tile))
    return pixels.shape[:2]


def _store(source: Path, pixels: np.ndarray, target: Path) -> None:
    """Copy an RGB TIFF as it is; convert anything else (PNG, RGBA) to an RGB TIFF, keeping geotags."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.suffix.lower() in TIFF_SUFFIXES and pixels.shape[2] == 3:
        shutil.copyfile(source, target)
    else:
        write_image(target, pixels[..., :3], read_geotags(source))
