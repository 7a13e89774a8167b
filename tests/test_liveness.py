"""Which unfinished rounds are dead when a project opens: a team shares one store, so a round
running on another host stays alive while its heartbeat is fresh; a dead round is failed and
its orphan checkpoint removed. The training process beats from its progress callback."""
from __future__ import annotations

import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import update

from mersemi.db.models import Round, utcnow
from mersemi.service.project import HEARTBEAT_LIMIT, Project
from mersemi.service.rounds import PROGRESS_EVERY_S, Heartbeat

HERE = socket.gethostname()


@pytest.fixture
def project(tmp_path, db_url):
    root = tmp_path / "p"
    with Project.init(root, ["neutral", "happy"],
                      db_url=None if db_url.startswith("sqlite") else db_url) as p:
        yield p


def gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def start_round(project: Project, host: str, pid: int, silent_for: timedelta) -> int:
    store = project.store
    rid = store.rounds.create(config={}, config_name="t", thresholds={}, auto_accept=False, pid=pid, host=host)
    with store.db.session() as s, s.begin():
        s.execute(update(Round).where(Round.id == rid).values(heartbeat_at=utcnow() - silent_for))
    for suffix in (".pt", ".tmp"):
        (project.root / "checkpoints" / f"round-{rid}{suffix}").write_bytes(b"weights")
    return rid


CASES = {
    # name: (host, pid, silent for, dead?)
    "other host, fresh heartbeat": ("lab-gpu-2", 4242, timedelta(minutes=2), False),
    "other host, stale heartbeat": ("lab-gpu-2", 4242, HEARTBEAT_LIMIT + timedelta(seconds=30), True),
    "this host, pid gone": (HERE, None, timedelta(0), True),
    "this host, pid alive": (HERE, "self", timedelta(0), False),
    "this host, pid alive, stale heartbeat": (HERE, "self", HEARTBEAT_LIMIT + timedelta(minutes=1), True),
}


@pytest.mark.parametrize("case", CASES)
def test_open_fails_dead_rounds_only_and_removes_their_checkpoints(project, case):
    host, pid, silent, dead = CASES[case]
    import os

    pid = gone_pid() if pid is None else os.getpid() if pid == "self" else pid
    rid = start_round(project, host, pid, silent)
    root = project.root
    project.close()

    with Project.open(root) as reopened:
        r = reopened.store.rounds.get(rid)
        assert r.status == ("failed" if dead else "running")
        leftovers = sorted(p.name for p in (root / "checkpoints").iterdir())
        assert leftovers == ([] if dead else [f"round-{rid}.pt", f"round-{rid}.tmp"])
        if dead:
            assert ("heartbeat" in r.error) == (host != HERE or pid == os.getpid())
            assert r.error.startswith("interrupted")


def test_heartbeat_is_written_at_most_every_interval_and_passes_progress_on(project):
    store = project.store
    rid = start_round(project, "lab-gpu-2", 4242, timedelta(hours=1))
    seen = []
    beat = Heartbeat(store.rounds, rid, lambda msg, f: seen.append((msg, f)))
    old = store.rounds.get(rid).heartbeat_at

    beat("epoch 1", 0.1)               # within the interval of the round's start: no write
    assert store.rounds.get(rid).heartbeat_at == old
    beat.last -= PROGRESS_EVERY_S     # the interval has passed
    beat("epoch 2", 0.2)
    fresh = store.rounds.get(rid).heartbeat_at
    assert fresh > old
    beat("epoch 3", 0.3)               # right after a beat: no write
    assert store.rounds.get(rid).heartbeat_at == fresh
    assert seen == [("epoch 1", 0.1), ("epoch 2", 0.2), ("epoch 3", 0.3)]
    # The round now counts as alive on open, though it runs on another host.
    root = project.root
    project.close()
    with Project.open(root) as reopened:
        assert reopened.store.rounds.get(rid).status == "running"
