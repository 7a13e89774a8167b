"""Which processes are alive: what a killed import, round or server left behind is recognised
by the pid it recorded on this host."""
from __future__ import annotations

import os
import socket


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (another user's counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    except (OverflowError, ValueError):  # not a pid at all
        return False
    return True


def this_process() -> str:
    """"host:pid", how a server names itself in the store."""
    return f"{socket.gethostname()}:{os.getpid()}"


def dead_on_this_host(owner: str | None) -> bool:
    """Whether a "host:pid" names a process of this host that is gone (False for another host's
    or an unknown owner: only this machine can tell)."""
    host, _, pid = (owner or "").rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))
