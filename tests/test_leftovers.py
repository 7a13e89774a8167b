"""What a killed process leaves is repaired by the next one (issue 21, point 6): the cards a
killed server held are free when the next server starts, and a round whose process was killed
stops showing "running" on a page that is open, at its next poll. (The round's thresholds
are written in the transaction that completes it, so no kill leaves them behind.)"""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app_fixtures import make_review_project
from mersemi.engine.processes import this_process
from mersemi.service.actions import AppActions
from mersemi.service.project import Project


def dead_pid() -> int:
    """The pid of a process that has exited (this test's child)."""
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)


@pytest.fixture
def review(tmp_path, db_url) -> Path:
    make_review_project(tmp_path / "p", db_url=db_url).close()
    return tmp_path / "p"


def test_the_next_server_frees_the_cards_a_killed_server_held(review):
    host = socket.gethostname()
    with Project.open(review) as p:
        ids = p.store.samples.split_arrays("unlabeled")[0][:3].tolist()
        assert p.store.claims.take_first([ids[0]], "ann", 300, server=f"{host}:{dead_pid()}") == ids[0]
        assert p.store.claims.take_first([ids[1]], "bob", 300, server=this_process()) == ids[1]  # alive: kept
        assert p.store.claims.take_first([ids[2]], "cat", 300, server=f"elsewhere.invalid:{dead_pid()}") == ids[2]
        assert p.store.claims.held_by_others("dan") == set(ids)
    actions = AppActions(Project.open(review))
    try:
        assert actions.project.store.claims.held_by_others("dan") == {ids[1], ids[2]}  # another host: only it can tell
    finally:
        actions.shutdown()


def test_a_killed_rounds_running_state_ends_at_the_next_poll(review):
    actions = AppActions(Project.open(review))
    try:
        store = actions.project.store
        rid = store.rounds.create(config={}, config_name="fast", thresholds={}, auto_accept=False,
                                  pid=dead_pid(), host=socket.gethostname())
        assert [r.id for r in store.rounds.unfinished()] == [rid]
        actions.changes()
        assert store.rounds.unfinished() == [] and store.rounds.get(rid).status == "failed"
        assert "is gone" in store.rounds.get(rid).error
    finally:
        actions.shutdown()


def test_a_round_silent_past_the_heartbeat_limit_is_failed_by_the_stores_clock(review, clock):
    from mersemi.service.project import HEARTBEAT_LIMIT

    with Project.open(review) as p:
        p.store.db.clock = clock   # another host's round: only its silence can tell it is dead
        rid = p.store.rounds.create(config={}, config_name="fast", thresholds={}, auto_accept=False,
                                    pid=1, host="elsewhere.invalid")
        clock.advance(HEARTBEAT_LIMIT.total_seconds() - 60)
        assert p.mark_dead_rounds_failed() == [] and p.store.rounds.get(rid).status == "running"
        clock.advance(120)
        assert p.mark_dead_rounds_failed() == [rid]
        assert "no heartbeat" in p.store.rounds.get(rid).error
