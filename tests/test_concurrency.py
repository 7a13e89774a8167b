"""Writes from several processes at once (real processes, each with its own connections) on
one SQLite file and on one PostgreSQL database: a read that decides a write sits in the
write's transaction, so undo never takes back a decision twice, `replaced` is never stale,
two rounds never run, a card is claimed by one reviewer only; a write that waits past the
busy timeout is refused with StoreBusy."""
from __future__ import annotations

import multiprocessing as mp
import sqlite3
import time
import traceback
from collections import Counter, defaultdict

import numpy as np
import pytest

from mersemi.db.errors import RoundBusy, StoreBusy
from mersemi.db.store import Store
from mersemi.db.writes import DecisionIn

PROCS = 4
N_POOL = 60
FORK = mp.get_context("fork")  # workers open their own Store; the parent's is closed first


def make_store(url: str) -> Store:
    s = Store(url, create=True)
    s.classes.create(["neutral", "happy", "sad"], [0.9, 0.8, 0.7])
    s.samples.insert([{"id": i, "name": f"u{i}", "split": "unlabeled", "gold_label": None,
                       "true_label": None, "text": None, "media": None} for i in range(N_POOL)])
    rid = s.rounds.create(config={}, config_name="t", thresholds={}, auto_accept=False, pid=1, host="h")
    probs = np.full((N_POOL, 3), 0.1, np.float32)
    probs[:, 0] = 0.8
    s.rounds.complete(rid, predictions=[("pool", np.arange(N_POOL), probs)], decisions=[],
                      reviewer="auto", composition={}, metrics={}, checkpoint=None)
    return s


def _worker(fn, url, barrier, queue, args):
    try:
        store = Store(url)
        barrier.wait(timeout=60)
        queue.put(("ok", fn(store, *args)))
        store.close()
    except BaseException:
        queue.put(("error", traceback.format_exc()))


def run_processes(fn, url: str, args_per_process: list[tuple]) -> list:
    """Start one process per argument tuple, release them together, return their results."""
    barrier, queue = FORK.Barrier(len(args_per_process)), FORK.Queue()
    procs = [FORK.Process(target=_worker, args=(fn, url, barrier, queue, a)) for a in args_per_process]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    errors = [r for kind, r in results if kind == "error"]
    assert not errors, errors[0]
    return [r for _, r in results]


# ---------------------------------------------------------------------- undo

def _undo_until_empty(store: Store, reviewer: str) -> list[list[int]]:
    out = []
    while ids := store.decisions.undo_last(reviewer):
        out.append(ids)
    return out


def test_concurrent_undo_by_one_reviewer_never_undoes_a_decision_twice(db_url):
    store = make_store(db_url)
    rid = store.rounds.current().id
    for i in range(N_POOL):  # one batch per sample
        store.decisions.record([DecisionIn(i, "accept", 0, rid)], reviewer="ann")
    store.close()

    results = run_processes(_undo_until_empty, db_url, [("ann",)] * PROCS)

    undone = [sid for per_process in results for ids in per_process for sid in ids]
    store = Store(db_url)
    log = store.decisions.log()
    targets = Counter(d.undoes for d in log if d.action == "undo")
    assert max(targets.values()) == 1, "a decision was undone twice"
    assert sorted(undone) == list(range(N_POOL))
    assert len(targets) == N_POOL and store.decisions.in_force() == {}
    store.close()


# ---------------------------------------------------------------------- decide

def _decide_many(store: Store, reviewer: str, rounds: int) -> list[tuple[str, dict[int, int]]]:
    rid = store.rounds.current().id
    out = []
    for i in range(rounds):
        entries = [DecisionIn(s, "relabel", (i + s) % 3, rid, note=f"{reviewer}-{i}") for s in range(5)]
        batch, replaced = store.decisions.record(entries, reviewer)
        out.append((batch, {sid: d.id for sid, d in replaced.items()}))
    return out


def test_replaced_decision_is_the_one_in_force_when_the_write_happens(db_url):
    make_store(db_url).close()
    results = run_processes(_decide_many, db_url, [(f"r{p}", 40) for p in range(PROCS)])

    store = Store(db_url)
    log = store.decisions.log()
    store.close()
    # The log's order is the order the writes took effect: each decision replaced the one
    # before it on the same sample, and the first one replaced nothing.
    previous: dict[int, int | None] = defaultdict(lambda: None)
    expected: dict[tuple[str, int], int | None] = {}
    for d in log:
        expected[(d.batch, d.sample_id)] = previous[d.sample_id]
        previous[d.sample_id] = d.id
    calls = [call for per_process in results for call in per_process]
    assert len(calls) == PROCS * 40
    stale = [(batch, sid) for batch, replaced in calls for sid in range(5)
             if replaced.get(sid) != expected[(batch, sid)]]
    assert stale == [], f"{len(stale)} stale 'replaced' values"


# ---------------------------------------------------------------------- rounds

def _start_rounds(store: Store, trials: int, barrier) -> list[str]:
    outcomes = []
    for _ in range(trials):
        try:
            rid = store.rounds.create(config={}, config_name="t", thresholds={}, auto_accept=False,
                                      pid=1, host="h")
            outcomes.append("started")
            running = [r.id for r in store.rounds.unfinished()]
            assert running == [rid], f"rounds running together: {running}"
        except RoundBusy:
            outcomes.append("busy")
        barrier.wait(timeout=60)    # everyone tried: the winner ends its round
        if outcomes[-1] == "started":
            store.rounds.fail(rid, "test")
        barrier.wait(timeout=60)
    return outcomes


def test_create_round_lets_exactly_one_of_many_processes_start_a_round(db_url):
    make_store(db_url).close()
    trials = 8
    step = FORK.Barrier(PROCS)
    results = run_processes(_start_rounds, db_url, [(trials, step)] * PROCS)
    for t in range(trials):
        assert sorted(r[t] for r in results) == ["busy"] * (PROCS - 1) + ["started"]


# ---------------------------------------------------------------------- claims

def _claim_in_order(store: Store, reviewer: str, seed: int) -> tuple[str, list[int]]:
    # Each reviewer walks the pool in an order of its own, so that they meet on every card.
    # A short pause between claims (a reviewer reads the card) lets the writers interleave:
    # SQLite's busy handler otherwise leaves the lock to whoever holds it in a tight loop.
    order = np.random.default_rng(seed).permutation(N_POOL).tolist()
    mine = []
    for sid in order:
        if store.claims.take(sid, reviewer, seconds=60):
            mine.append(sid)
        time.sleep(0.002)
    return reviewer, mine


def test_concurrent_claims_give_each_card_to_one_reviewer(db_url):
    make_store(db_url).close()
    results = run_processes(_claim_in_order, db_url, [(f"r{p}", p) for p in range(PROCS)])
    claimed = sorted(sid for _, mine in results for sid in mine)
    assert claimed == list(range(N_POOL)), "a card went to two reviewers (or to none)"
    store = Store(db_url)
    for reviewer, mine in results:
        assert store.claims.held_by_others(reviewer) == set(range(N_POOL)) - set(mine)
    store.close()


# ---------------------------------------------------------------------- busy

def test_a_write_blocked_past_the_busy_timeout_raises_store_busy(db_url, tmp_path):
    make_store(db_url).close()
    if db_url.startswith("sqlite"):
        holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")           # another process holding the write lock
    else:
        import psycopg

        holder = psycopg.connect(db_url.replace("postgresql+psycopg", "postgresql"))
        holder.execute("LOCK TABLE decisions IN EXCLUSIVE MODE")   # blocks every insert
    store = Store(db_url, busy_timeout_s=0.3)
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreBusy, match="^database busy, try again$"):
            store.decisions.record([DecisionIn(1, "accept", 0, 0)], reviewer="ann")
        assert 0.25 < time.monotonic() - t0 < 5
    finally:
        holder.rollback()
        holder.close()
    store.decisions.record([DecisionIn(1, "accept", 0, 0)], reviewer="ann")  # and once free, it writes
    assert store.decisions.in_force([1])[1].action == "accept"
    store.close()


def test_the_command_line_turns_a_busy_database_into_one_line(tmp_path, capsys, monkeypatch):
    import mersemi.db.connect
    from mersemi.ui.cli import main
    from mersemi.service.project import Project

    with Project.init(tmp_path / "p", ["neutral", "happy", "sad"]) as project:
        store = project.store
        store.samples.insert([{"id": 0, "name": "u0", "split": "unlabeled", "gold_label": None,
                               "true_label": None, "text": None, "media": None}])
        rid = store.rounds.create(config={}, config_name="t", thresholds={}, auto_accept=False, pid=1, host="h")
        store.rounds.complete(rid, predictions=[("pool", np.array([0]), np.array([[0.8, 0.1, 0.1]], np.float32))],
                              decisions=[], reviewer="auto", composition={}, metrics={}, checkpoint=None)
    (tmp_path / "d.csv").write_text("name,decision,label\nu0,accept,\n")
    monkeypatch.setattr(mersemi.db.connect, "BUSY_TIMEOUT_S", 0.3)
    holder = sqlite3.connect(tmp_path / "p" / "project.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        code = main(["decide", str(tmp_path / "p"), "--file", str(tmp_path / "d.csv"), "--reviewer", "ann"])
    finally:
        holder.rollback()
        holder.close()
    out, err = capsys.readouterr()
    assert (code, out, err) == (1, "", "mersemi: error: database busy, try again\n")
