"""Files a person names: read only regular files, and only so much; write only a regular file
or a new name, through a temporary file created exclusively beside it.

Run as root on a shared machine, a naive `open(path, "w")` replaces /dev/null for every
process, and a predictable `<out>.tmp` lets another user plant a link that redirects the
write (into project.db, say). A naive read of /dev/zero or a FIFO never ends.
"""
from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .errors import UsageError

# Kernel and device trees: never a place for an export, even where a file there is writable.
SPECIAL_TREES = ("/proc", "/sys", "/dev")
MiB = 1 << 20


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_bytes(path: str | Path, what: str, limit: int = 4 * MiB) -> bytes:
    """The contents of the regular file at `path` (links followed), at most `limit` bytes;
    anything else (a folder, a device, a FIFO, a file too big) is a one-line UsageError."""
    where = f"{what} {path}" if what else str(path)
    # O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{where}: is a folder, not a file") from None
    except OSError as e:
        raise UsageError(f"{where}: cannot open ({e.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{where}: is a folder, not a file")
        raise UsageError(f"{where}: {_kind(st.st_mode)}, not a regular file")
    with os.fdopen(fd, "rb") as f:
        if st.st_size > limit:
            raise UsageError(f"{where}: {st.st_size:,} bytes, more than the {limit:,} allowed")
        data = f.read(limit + 1)  # /proc-like files report size 0: bound the read itself
    if len(data) > limit:
        raise UsageError(f"{where}: more than the {limit:,} bytes allowed")
    return data


def read_text(path: str | Path, what: str, limit: int = 4 * MiB) -> str:
    """read_bytes decoded as UTF-8 (one line naming the file when it is not)."""
    data = read_bytes(path, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        where = f"{what} {path}" if what else str(path)
        raise UsageError(f"{where}: not UTF-8 text (byte {e.start})") from None


def check_writable_target(path: str | Path, what: str) -> Path:
    """The absolute path a write to `path` may replace: a regular file (not a link to one: the
    link itself would be replaced) or a new name, in an existing folder outside /proc, /sys
    and /dev. Returns it with the folder resolved and the final name kept."""
    given = Path(path)
    if not given.name or given.name in (".", ".."):
        raise UsageError(f"{what} {given}: give the name of a file to write")
    folder = given.parent.resolve()
    if not folder.is_dir():
        raise UsageError(f"{what} {given}: no such folder {given.parent}")
    target = folder / given.name
    if any(target.is_relative_to(t) for t in SPECIAL_TREES):
        raise UsageError(f"{what} {given}: under {target.parts[0]}{target.parts[1]}, a system tree; "
                         "write to a regular folder")
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return target
    if stat.S_ISLNK(st.st_mode):
        raise UsageError(f"{what} {given}: is a symbolic link; give the file itself or a new name")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{what} {given}: is {_kind(st.st_mode)}; give the name of a regular file to write")
    return target


def write_atomically(path: str | Path, what: str, write: Callable[[IO[bytes]], None]) -> Path:
    """Write through `write(file)` into a temporary file created exclusively (unpredictable
    name, O_EXCL) in the target's folder, then rename it over the target, which
    check_writable_target allows. A failure leaves the target as it was and no temporary file."""
    target = check_writable_target(path, what)
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o644  # mkstemp's is 0600
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        check_writable_target(target, what)  # a link or FIFO planted meanwhile is not replaced
        os.replace(tmp, target)  # replaces a name, never follows a link at it
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def check_folder_target(path: str | Path, what: str) -> Path:
    """A folder the tool may create or write into: an existing folder or a new name under
    folders (not under a file), outside /proc, /sys and /dev. Returns it resolved."""
    given = Path(path)
    target = given.resolve()
    if any(target.is_relative_to(t) for t in SPECIAL_TREES):
        raise UsageError(f"{what} {given}: under {target.parts[0]}{target.parts[1]}, a system tree; "
                         "give a regular folder")
    existing = next(p for p in (target, *target.parents) if p.exists())  # "/" always exists
    if not existing.is_dir():
        where = "" if existing == target else f" ({existing})"
        raise UsageError(f"{what} {given}{where}: is {_kind(existing.stat().st_mode)}, not a folder")
    return target
