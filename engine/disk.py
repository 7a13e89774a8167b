"""Free space: what a command checks before it writes much (an import's matrices, a round's
checkpoint and predictions, an export, migrate's backup), and the one-line error for a disk
that is full. A leaf module (the standard library only)."""
from __future__ import annotations

import errno
import shutil
from pathlib import Path

from .errors import MersemiError

MiB = 1 << 20
# Room left beside what a command writes: SQLite's journal, a manifest, the file system's blocks.
MARGIN = 2 * MiB
FILE_MARGIN = 64 * 1024   # beside one file written whole (an export): its blocks' rounding
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(MersemiError):
    """Not enough free space where a command writes: nothing was written."""


def free_bytes(folder: str | Path) -> int:
    """Free space for an unprivileged writer in the file system holding `folder` (or its
    nearest existing parent)."""
    here = Path(folder).absolute()
    while not here.exists():
        here = here.parent
    return shutil.disk_usage(here).free


def require_space(folder: str | Path, need: int, what: str, margin: int = MARGIN) -> None:
    """DiskFull unless `folder`'s file system has `need` bytes and `margin` free."""
    free = free_bytes(folder)
    if free < need + margin:
        raise DiskFull(f"{folder}: not enough free space for {what}: needs about {_mb(need + margin)}, "
                       f"{_mb(free)} free; nothing was written")


def is_full(e: BaseException | None) -> bool:
    """An OSError saying the disk (or the user's quota) is full, or an error raised while
    handling one (torch.save reports a failed write as a RuntimeError)."""
    for _ in range(5):
        if e is None:
            return False
        if isinstance(e, OSError) and e.errno in FULL_ERRNOS:
            return True
        e = e.__cause__ or e.__context__
    return False


def full_message(e: OSError) -> str:
    where = e.filename or "the disk"
    return (f"{where}: no space left on the disk; what the command was writing was not kept "
            f"(free some space there and try again)")


def _mb(n: int) -> str:
    return f"{n / MiB:,.1f} MB"
