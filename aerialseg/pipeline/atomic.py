"""Atomic outputs: every file and folder a stage writes appears whole or not at all.

Each write goes to a temporary name beside the target, ``.<name>.partial-<owner>-XXXX``, and is
renamed into place only when it is complete, so a failed or killed stage never leaves half a file
or half a folder where the next stage (or DVC) would read it. A folder replaces an older one by
renames only (old aside, new in, old removed), so a failure at any step keeps the old folder, and
an old folder left aside by a kill between the two renames is put back by the next write there.

Several processes may write into one folder at once (two aerialseg-predict runs into one --out),
and a killed process leaves its temporaries behind. So each temporary names its owner,
``<host>-<pid>-<start>``: a hash of the host name and process-id namespace, the process id, and
the process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat). :func:`remove_stale`
deletes only those whose owner is gone: no process has that id, or the one that has it started
at another time (the id was reused); a process that exists but cannot be read (another user's,
under hidepid) is alive. Temporaries named by another host (another machine on a shared disk, or
a container, which has its own process ids) are kept: their owners cannot be seen from here.
Every write sweeps its folder, so a kill's leftovers of any name go at the next write there.

Why the owner is in the name rather than an flock held on the temporary: GDAL and Keras open the
temporary themselves, and GDAL makes further files named after it (the COG's staging GeoTIFF, its
overview temporaries), which the name covers and a lock on one file would not; a writer that
replaces the file (unlink, create) would silently leave the lock on the old inode; fcntl locks end
when any descriptor of the file is closed; and over NFS flock is emulated by fcntl locks.

A write that fails because the disk is full (ENOSPC, EDQUOT) becomes a :class:`DiskFullError`
naming the output and the space left once the temporary is gone, not a traceback from deep in
whichever library wrote.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import socket
import tempfile
import zlib
from pathlib import Path

from aerialseg.errors import DiskFullError, MissingFileError

PARTIAL = ".partial-"  # in the names of files and folders being written


def _host() -> str:
    """The host as temporaries name it: its name and its process-id namespace (/proc/self/ns/pid),
    so that a container sharing the host's name but not its process ids counts as another host,
    whose temporaries are never judged from here."""
    with contextlib.suppress(OSError):
        return f"{socket.gethostname()}:{os.stat('/proc/self/ns/pid').st_ino}"
    return socket.gethostname()


HOST = f"{zlib.crc32(_host().encode()):08x}"
ASIDE = "aside-"  # begins the random part of an old folder's name while its replacement is renamed in
OWNED = re.compile(rf"^\..*{re.escape(PARTIAL)}(?P<host>[0-9a-f]{{8}})-(?P<pid>\d+)-(?P<start>\d+)-")
FULL = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def atomic_file(path: str | Path):
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    path = Path(path)
    with _full_disk_named(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=_prefix(path.stem), suffix="".join(path.suffixes), dir=path.parent)
        os.close(fd)
        try:
            yield Path(tmp)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs should be readable like any file
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | Path):
    """Yield a fresh temporary folder beside ``path``; it replaces ``path`` only if the block succeeds.

    Stage outputs are whole folders; building them aside means a failure keeps the old output.
    """
    path = Path(path)
    with _full_disk_named(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(path.parent)
        tmp = Path(tempfile.mkdtemp(prefix=_prefix(path.name), dir=path.parent))
        try:
            yield tmp
            os.chmod(tmp, 0o777 & ~_umask())
            _swap_in(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(new: Path, path: Path) -> None:
    """Put folder ``new`` at ``path``. The old folder is renamed aside, not deleted, until the new one
    is in place, and renamed back if that fails: deleting it first would leave neither on a failure,
    and half of it on a kill."""
    if not path.exists():
        os.replace(new, path)
        return
    aside = Path(tempfile.mkdtemp(prefix=_prefix(path.name) + ASIDE, dir=path.parent))
    os.replace(path, aside)  # replaces the empty folder mkdtemp made, which reserved a unique name
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(aside, path)
        raise
    shutil.rmtree(aside, ignore_errors=True)  # a kill here leaves a temporary the next write removes


def _restore_aside(path: Path) -> bool:
    """Put back an old folder left aside by a writer killed between its two renames (so that
    nothing is at its place): a complete output, which deleting would lose."""
    target = path.with_name(path.name[1 : path.name.index(PARTIAL)])
    if not path.is_dir() or ASIDE not in path.name or target.exists():
        return False
    os.replace(path, target)
    return True


def _prefix(name: str) -> str:
    """The start of a temporary's name for output ``name``, naming this process as its owner."""
    return f".{name}{PARTIAL}{owner()}-"


def owner() -> str:
    """This process as temporaries name their owner (asked each time: a forked child is another)."""
    pid = os.getpid()
    return f"{HOST}-{pid}-{_start_time(pid)}"


def _start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or None if there is no such process.

    Without /proc (macOS) only whether the id exists can be told, and every start time is 0.
    """
    if not os.path.isdir("/proc/self"):
        return 0 if _exists(pid) else None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat.rpartition(")")[2].split()[19])  # after "pid (name)", whose name may hold spaces


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(folder: str | Path) -> None:
    """Delete the temporaries in ``folder`` whose owner is gone (killed, so no cleanup ran); those of
    running processes, of other hosts and of unknown owners are kept."""
    for path in sorted(Path(folder).glob(f".*{PARTIAL}*")):
        if owner_is_gone(path.name) and not _restore_aside(path):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def owner_is_gone(name: str) -> bool:
    """Whether the temporary called ``name`` was left by a process of this host that has ended."""
    owned = OWNED.match(name)
    if not owned or owned["host"] != HOST:
        return False
    pid = int(owned["pid"])
    started = _start_time(pid)
    if started is None and _exists(pid):  # a process this user may not see (/proc mounted hidepid)
        return False
    return started != int(owned["start"])


@contextlib.contextmanager
def _full_disk_named(path: Path):
    """A write of ``path`` that failed for want of space as one line: the output, the OS's words and
    the space left (measured after the temporary is removed: what the next try would have)."""
    try:
        yield
    except Exception as error:
        reason = full_disk_reason(error)
        if reason is None:
            raise
        free = shutil.disk_usage(path.parent).free
        raise DiskFullError(
            f"{path}: cannot write it: {reason}; {_size(free)} free in {path.parent} (free some space there, "
            "or write to another disk)"
        ) from error


def full_disk_reason(error: BaseException) -> str | None:
    """The OS's words for a full disk or quota if ``error`` or one of its causes says so, else None.

    Python's own writes raise OSError with the errno; TensorFlow's file system and GDAL keep only
    the OS's words (strerror) in their messages, so those are looked for too.
    """
    words = [os.strerror(code) for code in FULL]
    while error is not None:
        if isinstance(error, OSError) and error.errno in FULL:
            return error.strerror
        found = [said for said in words if said in str(error)]
        if found:
            return found[0]
        error = error.__cause__ or error.__context__
    return None


def _size(count: int) -> str:
    """A number of bytes as people read it: 512 bytes, 3.4 MiB."""
    exponent = min(int(math.log(count, 1024)), 4) if count else 0
    return f"{count} bytes" if exponent == 0 else f"{count / 1024**exponent:.1f} {'KMGT'[exponent - 1]}iB"


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_text(path: str | Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data) -> None:
    """Write ``data`` as indented JSON, atomically (metrics files are read by DVC at any time)."""
    write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path: str | Path, written_by: str):
    """Read a JSON output of an earlier stage; a missing file names the stage that writes it."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file (run the {written_by} stage first)")
    return json.loads(path.read_text())
