"""Reading chosen files out of zip archives nested in zip archives, without unpacking the rest.

The ISPRS download is one ``Potsdam.zip`` holding a zip per product (photos of each band set,
labels, surface models): tens of GB, of which a run needs one band set and the labels, maybe of a
few tiles. :func:`extract` walks an archive and writes only the files a ``want`` test accepts, and
opens only the nested zips an ``enter`` test accepts. A nested zip is read where it lies:

* stored in the outer zip (not compressed again, as zip tools keep zips): its bytes are a slice of
  the outer file, which :mod:`zipfile` reads like any file, so only its directory and the members
  asked for are read (a slice: :class:`_Slice`);
* compressed in the outer zip: its bytes can only be inflated front to back, so its members are
  taken in that order, from their local headers, each written out or passed over, in one pass:
  the rest of the archive is read once and nothing of it is written (:func:`_read_stream`, by
  stream-unzip, which also handles data descriptors, Zip64, Deflate64 and bzip2).

Files are written to a mirror of the archive under ``folder``: member ``a/b.tif`` to
``folder/a/b.tif``, the members of nested ``a/c.zip`` under ``folder/a/c/``. Errors name a file as
``outer.zip!inner.zip!member``, never by its copy in the work folder.
"""

from __future__ import annotations

import contextlib
import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from stream_unzip import (
    CRC32IntegrityError,
    MissingPasswordError,
    NotStreamUnzippable,
    PasswordError,
    TruncatedDataError,
    UnsupportedCompressionTypeError,
    UnsupportedFeatureError,
    UnzipError,
    stream_unzip,
)
from tqdm import tqdm

from aerialseg.errors import InputError

Test = Callable[[PurePosixPath], bool]  # a member's mirrored path (relative to the folder) -> take it?

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # signature, version, flags, method, time, date, crc, sizes, name, extra
_LOCAL_SIGNATURE = b"PK\x03\x04"
_ENCRYPTED = 0x1
_CHUNK = 1 << 20


class ArchiveError(InputError, ValueError):
    """A file is not a readable zip archive, or a member of one cannot be read."""


@dataclass
class Extraction:
    """What :func:`extract` did: files written (their path -> ``archive!member`` name), every other
    member it saw (by name), and the nested zips it left unopened (by name)."""

    written: dict[Path, str] = field(default_factory=dict)
    passed: list[str] = field(default_factory=list)
    unopened: list[str] = field(default_factory=list)


def extract(archive: str | Path, folder: str | Path, want: Test, enter: Test) -> Extraction:
    """Write the members of ``archive`` (and of the zips in it) that ``want`` accepts under ``folder``.

    ``enter`` decides which nested zips are opened at all (it sees ``a/c.zip``); ``want`` sees a
    member's mirrored path relative to ``folder`` (nested ``a/c.zip``'s member ``d.tif``: ``a/c/d.tif``).
    """
    archive, done = Path(archive), Extraction()
    with open(archive, "rb") as raw:
        _read_zip(raw, str(archive), Path(folder), PurePosixPath(), want, enter, done)
    return done


def _read_zip(file, name: str, folder: Path, at: PurePosixPath, want: Test, enter: Test, done: Extraction) -> None:
    """Read the zip in ``file`` (seekable) called ``name``, mirrored at ``folder / at``."""
    try:
        zipped = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ArchiveError(f"{name}: not a zip archive, or a corrupt or truncated one ({error})") from error
    with zipped:
        members = [info for info in zipped.infolist() if not info.is_dir()]
        wanted = {info for info in members if not _is_zip(info.filename) and want(at / _safe(info.filename))}
        with _bar(sum(info.file_size for info in wanted), name) as bar:
            for info in members:
                path, shown = at / _safe(info.filename), f"{name}!{info.filename}"
                if _is_zip(info.filename):
                    _nested(file, zipped, info, shown, folder, path, want, enter, done)
                elif info in wanted:
                    with _member_errors(shown), zipped.open(info) as source:
                        _copy(source, folder / path, bar)
                    done.written[folder / path] = shown
                else:
                    done.passed.append(shown)


def _nested(file, zipped, info, shown: str, folder, path, want: Test, enter: Test, done: Extraction) -> None:
    """Open the zip ``info`` inside ``zipped`` in place: a slice of ``file`` if stored, else a stream."""
    inner = path.with_suffix("")
    if not enter(path):
        done.unopened.append(shown)
    elif info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & _ENCRYPTED:
        _read_zip(_Slice(file, _data_start(file, info, shown), info.file_size), shown, folder, inner, want, enter, done)
    else:
        with _member_errors(shown), zipped.open(info) as stream:
            _read_stream(stream, info.file_size, shown, folder, inner, want, done)


def _data_start(file, info: zipfile.ZipInfo, shown: str) -> int:
    """Where the bytes of a stored member begin in ``file``: after its local header."""
    file.seek(info.header_offset)
    header = file.read(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
        raise ArchiveError(f"{shown}: corrupt archive (no local header where its directory points)")
    *_, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    return info.header_offset + _LOCAL_HEADER.size + name_length + extra_length


def _read_stream(stream, size: int, name: str, folder: Path, at: PurePosixPath, want: Test, done: Extraction) -> None:
    """Read a zip front to back from its local headers: write what ``want`` accepts, pass the rest.

    Zips inside it are passed over: a compressed zip in a zip in a zip is not among Potsdam's layouts.
    """
    member = previous = None  # the member being read (None between members) and the one before, for errors
    with _bar(size, name) as bar:
        try:
            for raw_name, _, chunks in stream_unzip(_chunks(stream, bar), chunk_size=_CHUNK):
                member = _decode(raw_name)
                shown, path = f"{name}!{member}", at / _safe(member)
                keep = not member.endswith("/") and not _is_zip(member) and want(path)
                with _writer(folder / path if keep else None) as out:
                    for chunk in chunks:
                        out.write(chunk)
                if keep:
                    done.written[folder / path] = shown
                elif _is_zip(member):
                    done.unopened.append(shown)
                elif not member.endswith("/"):
                    done.passed.append(shown)
                member, previous = None, member
        except UnzipError as error:
            raise ArchiveError(_stream_error(error, name, member, previous)) from error


def _chunks(stream, bar: tqdm):
    """The bytes of ``stream`` a chunk at a time, shown on ``bar``."""
    while chunk := stream.read(_CHUNK):
        bar.update(len(chunk))
        yield chunk


def _decode(raw_name: bytes) -> str:
    """A member name: UTF-8, else (the zip default, flagged in a header stream-unzip does not
    return) code page 437."""
    try:
        return raw_name.decode("utf-8")
    except UnicodeDecodeError:
        return raw_name.decode("cp437")


def _stream_error(error: UnzipError, name: str, member: str | None, previous: str | None) -> str:
    """One line for stream-unzip's ``error`` while reading ``member`` of the zip ``name``. None:
    between members, in a local header, whose name stream-unzip does not return, so the member is
    named by the one before it (``previous``)."""
    if isinstance(error, NotStreamUnzippable):
        member = _decode(error.args[0])
    if member is None:
        after = f"the member after {previous}" if previous else "its first member"
        if isinstance(error, (UnsupportedFeatureError, MissingPasswordError, PasswordError)):
            return f"{name}: {after} {_unstreamable(error)}"
        if isinstance(error, TruncatedDataError):
            return f"{name}: corrupt or truncated zip archive (it ends, or breaks off, before its directory)"
        return f"{name}: corrupt zip archive ({type(error).__name__} in the header of {after})"
    shown = f"{name}!{member}"
    if isinstance(error, (UnsupportedFeatureError, MissingPasswordError, PasswordError)):
        return f"{shown}: {_unstreamable(error)}"
    if isinstance(error, CRC32IntegrityError):
        return f"{shown}: corrupt archive (CRC-32 mismatch: the member's bytes are damaged)"
    if isinstance(error, TruncatedDataError):
        return f"{shown}: truncated archive (the member breaks off)"
    return f"{shown}: corrupt archive ({type(error).__name__}: its compressed data or sizes are damaged)"


def _unstreamable(error: UnzipError) -> str:
    if isinstance(error, (MissingPasswordError, PasswordError)):
        why = "is encrypted"
    elif isinstance(error, UnsupportedCompressionTypeError):
        why = f"is compressed with method {error.args[0]}, not deflate, Deflate64 or bzip2"
    elif isinstance(error, NotStreamUnzippable):
        why = "has no size in its header"
    else:
        why = f"uses a feature stream-unzip cannot read ({type(error).__name__})"
    return (
        f"cannot be read from inside the outer archive: it {why}. Unpack the outer archive once "
        "(e.g. `unzip Potsdam.zip`) and list the folder, or its inner archives, in data.local.paths instead."
    )


class _Slice(io.RawIOBase):
    """A seekable read-only view of ``size`` bytes of ``file`` from ``start``: a stored nested zip."""

    def __init__(self, file, start: int, size: int):
        super().__init__()
        self.file, self.start, self.size, self.position = file, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = min(max(base + offset, 0), self.size)
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer) -> int:
        wanted = min(len(buffer), self.size - self.position)
        if wanted <= 0:
            return 0
        self.file.seek(self.start + self.position)
        count = self.file.readinto(memoryview(buffer)[:wanted])
        self.position += count
        return count


class _Discard(io.RawIOBase):
    """Where passed-over members go."""

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        return len(data)


def _copy(source, target: Path, bar: tqdm) -> None:
    with _writer(target) as out:
        while chunk := source.read(_CHUNK):
            out.write(chunk)
            bar.update(len(chunk))


def _writer(target: Path | None):
    """A new file at ``target`` (its folders made), or, for None, a sink for members passed over."""
    if target is None:
        return _Discard()
    target.parent.mkdir(parents=True, exist_ok=True)
    return open(target, "wb")


@contextlib.contextmanager
def _member_errors(shown: str):
    """Turn zipfile's and zlib's errors while reading a member into an ArchiveError naming it."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise ArchiveError(f"{shown}: corrupt or truncated archive member ({error})") from error
    except NotImplementedError as error:  # e.g. Deflate64, which Windows uses for members over 2 GB
        raise ArchiveError(
            f"{shown}: {error}; unpack the archive with another tool (7-Zip, unzip) and list the folder "
            "in data.local.paths instead"
        ) from error


def _bar(total: int, name: str) -> tqdm:
    """Progress through the bytes of one archive; none for an archive nothing is read from."""
    return tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=f"read {Path(name.split('!')[-1]).name}",
        disable=not total,
    )


def _is_zip(name: str) -> bool:
    return name.lower().endswith(".zip")


def _safe(name: str) -> PurePosixPath:
    """A member name as a relative path that stays inside the folder (no root, no ``..``)."""
    parts = [part for part in name.replace("\\", "/").split("/") if part not in ("", ".", "..")]
    return PurePosixPath(*parts) if parts else PurePosixPath("_")
