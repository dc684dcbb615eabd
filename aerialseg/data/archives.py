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
  the rest of the archive is read once and nothing of it is written (:func:`_read_stream`).

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

from tqdm import tqdm

from aerialseg.errors import InputError

Test = Callable[[PurePosixPath], bool]  # a member's mirrored path (relative to the folder) -> take it?

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # signature, version, flags, method, time, date, crc, sizes, name, extra
_LOCAL_SIGNATURE, _DIRECTORY_SIGNATURES = b"PK\x03\x04", (b"PK\x01\x02", b"PK\x05\x06")
_DESCRIPTOR_SIGNATURE = b"PK\x07\x08"
_ENCRYPTED, _DESCRIPTOR, _UTF8 = 0x1, 0x8, 0x800
_ZIP64_EXTRA, _ZIP64_MARK = 0x0001, 0xFFFFFFFF
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
    with _bar(size, name) as bar:
        source = _Pushback(stream, bar)
        while (signature := source.read(4)) == _LOCAL_SIGNATURE:
            member, method, flags, crc, compressed, _, zip64 = _local_header(source, name)
            shown, path = f"{name}!{member}", at / _safe(member)
            stored_unsized = flags & _DESCRIPTOR and method == zipfile.ZIP_STORED  # where it ends is unknown
            if flags & _ENCRYPTED or method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or stored_unsized:
                raise ArchiveError(_unstreamable(shown, flags, method))
            keep = not member.endswith("/") and not _is_zip(member) and want(path)
            with _writer(folder / path if keep else None) as out:
                checksum = _inflate(source, method, None if flags & _DESCRIPTOR else compressed, out, shown)
            if flags & _DESCRIPTOR:
                crc = _descriptor_crc(source, zip64)
            if checksum != crc:
                raise ArchiveError(f"{shown}: corrupt archive (CRC-32 mismatch: the member's bytes are damaged)")
            if keep:
                done.written[folder / path] = shown
            elif _is_zip(member):
                done.unopened.append(shown)
            elif not member.endswith("/"):
                done.passed.append(shown)
    if signature not in _DIRECTORY_SIGNATURES:
        raise ArchiveError(f"{name}: corrupt or truncated zip archive (it ends, or breaks off, before its directory)")


def _local_header(source, name: str):
    """(member name, method, flags, crc, compressed size, size, zip64?) of the local header after its signature."""
    fixed = source.read(_LOCAL_HEADER.size - 4)
    if len(fixed) < _LOCAL_HEADER.size - 4:
        raise ArchiveError(f"{name}: truncated zip archive (it breaks off inside a member's header)")
    _, _, flags, method, _, _, crc, compressed, size, name_length, extra_length = _LOCAL_HEADER.unpack(
        _LOCAL_SIGNATURE + fixed
    )
    member = source.read(name_length).decode("utf-8" if flags & _UTF8 else "cp437")
    extra = source.read(extra_length)
    zip64 = _zip64_sizes(extra)
    if zip64 and _ZIP64_MARK in (compressed, size):
        size, compressed = zip64
    return member, method, flags, crc, compressed, size, bool(zip64)


def _zip64_sizes(extra: bytes) -> tuple[int, int] | None:
    """(size, compressed size) from a local header's Zip64 extra field, if it has one."""
    while len(extra) >= 4:
        kind, length = struct.unpack("<2H", extra[:4])
        if kind == _ZIP64_EXTRA and length >= 16:
            return struct.unpack("<2Q", extra[4:20])
        extra = extra[4 + length :]
    return None


def _inflate(source: _Pushback, method: int, compressed: int | None, out, shown: str) -> int:
    """Copy one member's data to ``out`` (inflated if deflated); return its CRC-32. ``compressed``
    None: the size is not in the header, so a deflated member is read until its stream ends.
    Inflated a chunk at a time, so a label picture that packs 100 to 1 never sits whole in memory."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS) if method == zipfile.ZIP_DEFLATED else None
    checksum, left = 0, compressed
    while (left is None or left > 0) and not (inflater and inflater.eof):
        chunk = source.read(_CHUNK if left is None else min(_CHUNK, left))
        if not chunk:
            raise ArchiveError(f"{shown}: truncated archive (the member breaks off)")
        left = None if left is None else left - len(chunk)
        while chunk:
            data = inflater.decompress(chunk, _CHUNK) if inflater else chunk
            chunk = inflater.unconsumed_tail if inflater and not inflater.eof else b""  # after the end: unused_data
            checksum = zlib.crc32(data, checksum)
            out.write(data)
    if inflater:
        if not inflater.eof:
            raise ArchiveError(f"{shown}: corrupt archive (its compressed data ends too early)")
        source.unread(inflater.unused_data)
    return checksum


def _descriptor_crc(source, zip64: bool) -> int:
    """The CRC-32 in the data descriptor after a member (its signature is optional)."""
    first = source.read(4)
    crc = struct.unpack("<L", source.read(4) if first == _DESCRIPTOR_SIGNATURE else first)[0]
    source.read(16 if zip64 else 8)  # the sizes, already known from the data
    return crc


def _unstreamable(shown: str, flags: int, method: int) -> str:
    why = "is encrypted" if flags & _ENCRYPTED else f"is compressed with method {method}, not deflate"
    if not flags & _ENCRYPTED and method == zipfile.ZIP_STORED:
        why = "has no size in its header"
    return (
        f"{shown}: cannot be read from inside the outer archive: it {why}. Unpack the outer archive once "
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


class _Pushback:
    """A read-only stream that can take bytes back (what zlib read past the end of a member), and
    shows on ``bar`` how far it has got."""

    def __init__(self, stream, bar: tqdm):
        self.stream, self.bar, self.pending = stream, bar, b""

    def read(self, count: int) -> bytes:
        data, self.pending = self.pending[:count], self.pending[count:]
        while len(data) < count:
            more = self.stream.read(count - len(data))
            if not more:
                break
            data += more
        self.bar.update(len(data))
        return data

    def unread(self, data: bytes) -> None:
        self.pending = data + self.pending
        self.bar.update(-len(data))


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
