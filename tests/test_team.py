"""A team on one project (issue 9, points 14-16), through the app's API on live servers:

- cards are handed out under claims that expire, so reviewers working at once see different
  samples, and a card on another reviewer's screen is not theirs to decide;
- with logins (`--auth` repeated, `--users FILE`) the recorded reviewer is the login: a
  logged-in user cannot decide as `auto`, undo someone else's decision or write thresholds
  under another name;
- two undos by one reviewer on two servers at once never undo one decision twice; a write
  that waits past the busy timeout is refused in words; one request reads the current round
  and the thresholds once.
"""
from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client

from app_fixtures import (
    N_LABELED, N_POOL, call, db_rows, free_port, make_review_project, pool_probs, serve_in_process,
    stop_in_process, wait_until,
)

pytestmark = pytest.mark.slow
MERSEMI = str(Path(sys.executable).parent / "mersemi")




def snapshot(root: Path) -> tuple:
    return (db_rows(root, "SELECT * FROM decisions"), db_rows(root, "SELECT * FROM current_decisions"),
            db_rows(root, "SELECT class_id, value, updated_by FROM thresholds"))


def decisions(root: Path) -> list[tuple]:
    return db_rows(root, "SELECT s.name, d.action, d.reviewer FROM decisions d JOIN samples s "
                         "ON s.id = d.sample_id ORDER BY d.id")


def launch_with_logins(root: Path, logins):
    from mersemi.ui.app import build_app, launch

    demo = build_app(root)
    port = free_port()
    launch(demo, port=port, auth=logins, block=False)
    return demo, f"http://127.0.0.1:{port}/"


# ---------------------------------------------------------------------- 14: claims

@pytest.fixture
def served(tmp_path):
    root = tmp_path / "proj"
    make_review_project(root).close()
    demo, url = serve_in_process(root)
    yield root, demo, Client(url, verbose=False)
    stop_in_process(demo)


def test_two_reviewers_get_different_cards_and_a_held_card_is_not_decided_by_another(served):
    root, demo, client = served
    ann = call(client, "next_candidate", "all", 0.0, 0, "ann")
    bob = call(client, "next_candidate", "all", 0.0, 0, "bob")
    assert ann["ok"] and bob["ok"]
    a, b = ann["candidate"]["name"], bob["candidate"]["name"]
    assert a != b, "two reviewers got the same first card"
    assert bob["total"] == ann["total"] - 1           # ann's card is not in bob's queue
    # Bob cannot decide the card on ann's screen: refused in words, nothing written.
    before = snapshot(root)
    out = call(client, "decide", a, "reject", "", "bob")
    assert out["ok"] is False and "another reviewer's screen" in out["error"]
    assert snapshot(root) == before
    # Each decides their own card: neither replaces the other.
    assert call(client, "decide", a, "accept", "", "ann")["replaced"] == []
    assert call(client, "decide", b, "accept", "", "bob")["replaced"] == []
    assert sorted(decisions(root)) == sorted([(a, "accept", "ann"), (b, "accept", "bob")])
    # A decided card is no longer held: bob may now review ann's decision on purpose.
    out = call(client, "decide", a, "reject", "", "bob")
    assert out["ok"] and [r["reviewer"] for r in out["replaced"]] == ["ann"]
    # The next card of each is again a different one; without a name nothing is claimed.
    ann2 = call(client, "next_candidate", "all", 0.0, 0, "ann")["candidate"]["name"]
    bob2 = call(client, "next_candidate", "all", 0.0, 0, "bob")["candidate"]["name"]
    assert ann2 != bob2 and {ann2, bob2}.isdisjoint({a, b})
    held = dict(db_rows(root, "SELECT reviewer, s.name FROM claims c JOIN samples s ON s.id = c.sample_id"))
    assert held == {"ann": ann2, "bob": bob2}         # one card each: the one on screen
    anonymous = call(client, "next_candidate", "all", 0.0, 0)
    assert anonymous["ok"] and len(db_rows(root, "SELECT * FROM claims")) == 2


def test_a_claim_expires(served, clock):
    root, demo, client = served
    demo.actions.project.store.db.clock = clock           # the server's store: its now moves when told
    claim_s = demo.actions.claim_s
    a = call(client, "next_candidate", "all", 0.0, 0, "ann")["candidate"]["name"]
    b = call(client, "next_candidate", "all", 0.0, 0, "bob")["candidate"]["name"]
    assert b != a
    clock.advance(claim_s - 1)                         # ann looks away, not for long
    assert call(client, "next_candidate", "all", 0.0, 0, "carl")["candidate"]["name"] not in (a, b)
    clock.advance(2)                                   # ann walked away
    assert call(client, "next_candidate", "all", 0.0, 0, "carl")["candidate"]["name"] == a


def test_reviewers_asking_at_once_on_two_servers_get_different_cards(tmp_path):
    root = tmp_path / "proj"
    make_review_project(root).close()
    servers = [serve_in_process(root) for _ in range(2)]
    try:
        clients = [Client(url, verbose=False) for _, url in servers]
        reviewers = [f"r{i}" for i in range(6)]
        barrier = threading.Barrier(len(reviewers))

        def ask(i: int) -> str:
            barrier.wait(timeout=60)
            out = call(clients[i % 2], "next_candidate", "all", 0.0, 0, reviewers[i])
            assert out["ok"], out
            return out["candidate"]["name"]

        with ThreadPoolExecutor(len(reviewers)) as pool:
            cards = list(pool.map(ask, range(len(reviewers))))
        assert len(set(cards)) == len(reviewers), f"a card went to two reviewers: {cards}"
    finally:
        for demo, _ in servers:
            stop_in_process(demo)


# ---------------------------------------------------------------------- 15: logins

@pytest.fixture(scope="module")
def team(tmp_path_factory):
    root = tmp_path_factory.mktemp("team") / "proj"
    make_review_project(root).close()
    demo, url = launch_with_logins(root, [("ann", "ann-pw"), ("bob", "bob-pw")])
    yield root, Client(url, auth=("ann", "ann-pw"), verbose=False), Client(url, auth=("bob", "bob-pw"),
                                                                           verbose=False)
    stop_in_process(demo)


@pytest.mark.parametrize("endpoint, args", [
    ("decide", ("u30", "accept", "", "auto")),
    ("decide", ("u30", "accept", "", "bob")),
    ("undo", ("bob",)),
    ("undo", ("auto",)),
    ("set_thresholds", ({"joy": 0.9}, "bob")),
    ("set_thresholds", ({"joy": 0.9}, "auto")),
    ("accept_all", ("calm", 0.9, "bob", -1)),
    ("next_candidate", ("all", 0.0, 0, "bob")),
])
def test_a_logged_in_user_cannot_act_under_another_name(team, endpoint, args):
    root, ann, bob = team
    assert call(bob, "decide", "u31", "accept", "", "")["ok"]      # something of bob's to undo
    before = snapshot(root)
    claims = db_rows(root, "SELECT * FROM claims")
    out = call(ann, endpoint, *args)
    assert out["ok"] is False and "logged in as 'ann'" in out["error"], out
    assert snapshot(root) == before and db_rows(root, "SELECT * FROM claims") == claims


def test_with_logins_the_login_is_the_reviewer(team):
    root, ann, bob = team
    out = call(ann, "decide", "u40", "accept", "", "")             # no name: the login
    assert out["ok"] and out["reviewer"] == "ann"
    assert call(ann, "decide", "u41", "reject", "", "ann")["ok"]   # one's own name: fine
    assert call(bob, "decide", "u42", "reject", "", "")["ok"]      # bob decided last
    undone = call(ann, "undo", "")                                 # takes back ann's, not bob's
    assert undone["ok"] and undone["undone"] == ["u41"]
    rows = [r for r in decisions(root) if r[0] in ("u40", "u41", "u42")]
    assert rows == [("u40", "accept", "ann"), ("u41", "reject", "ann"), ("u42", "reject", "bob"),
                    ("u41", "undo", "ann")]
    assert call(bob, "set_thresholds", {"joy": 0.6}, "")["ok"]
    assert db_rows(root, "SELECT value, updated_by FROM thresholds WHERE class_id = 1") == [(0.6, "bob")]
    asked = call(ann, "accept_all", "anger", 0.95, "", -1)
    done = call(ann, "accept_all", "anger", 0.95, "", asked["count"])
    assert done["ok"] and done["count"] == asked["count"] > 0
    last_batch = ("SELECT DISTINCT reviewer FROM decisions WHERE note IS NULL "
                  "AND batch = (SELECT batch FROM decisions ORDER BY id DESC LIMIT 1)")
    assert {r for (r,) in db_rows(root, last_batch)} == {"ann"}
    card = call(bob, "next_candidate", "all", 0.0, 0, "")
    assert card["ok"] and db_rows(root, "SELECT reviewer FROM claims WHERE reviewer = 'bob'") == [("bob",)]
    before = db_rows(root, "SELECT class_id, value FROM thresholds ORDER BY class_id")
    assert call(ann, "paper_preset")["ok"]                          # the tool's thresholds, asked by ann
    assert {b for (b,) in db_rows(root, "SELECT updated_by FROM thresholds")} == {"paper preset (ann)"}
    assert call(bob, "set_thresholds", {c: v for c, (_, v) in zip(("calm", "joy", "anger"), before)}, "")["ok"]


def test_without_logins_a_client_cannot_call_itself_auto(served):
    root, demo, client = served
    before = snapshot(root)
    for endpoint, args in (("decide", ("u30", "accept", "", "auto")), ("undo", ("auto",)),
                           ("set_thresholds", ({"joy": 0.9}, "suggest"))):
        out = call(client, endpoint, *args)
        assert out["ok"] is False and "reserved" in out["error"], out
    assert snapshot(root) == before


def test_serve_takes_several_logins_and_a_users_file(tmp_path):
    root = tmp_path / "proj"
    make_review_project(root).close()
    users = tmp_path / "users.txt"
    users.write_text("# the team\ncarl:carl-pw\n\ndora:dora-pw\n")
    port = free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    server = subprocess.Popen([MERSEMI, "serve", str(root), "--port", str(port), "--auth", "ann:ann-pw",
                               "--auth", "bob:bob-pw", "--users", str(users)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until(lambda: _listening(port), 120, what="the server")
        for user in ("ann", "bob", "carl", "dora"):
            client = Client(url, auth=(user, f"{user}-pw"), verbose=False)
            assert call(client, "decide", f"u0{'abcd'.index(user[0]) + 2}", "accept", "", "")["reviewer"] == user
        with pytest.raises(ValueError, match="Could not login"):   # gradio_client's word for a wrong password
            Client(url, auth=("carl", "wrong"), verbose=False)
    finally:
        server.terminate()
        server.wait(30)
    assert sorted(r for _, _, r in decisions(root)) == ["ann", "bob", "carl", "dora"]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("argv, message", [
    (["--auth", "ann:pw", "--auth", "nopassword"], "--auth 2: expected USER:PASSWORD"),
    (["--auth", "ann:pw", "--auth", "ann:other"], "--auth 2: user 'ann' given twice"),
    (["--auth", "auto:pw"], "--auth 1: user name 'auto' is reserved"),
    (["--users", "USERS"], "--users line 2: expected USER:PASSWORD; --users line 4: user name 'auto' "
                           "is reserved (the tool records it itself); --users line 5: user 'carl' given twice"),
    (["--users", "MISSING"], "missing: no such file"),
    (["--users", "EMPTY"], "--users: no USER:PASSWORD line"),
])
def test_serve_refuses_bad_logins_in_one_message(tmp_path, capsys, argv, message):
    from mersemi.ui.cli import main

    root = tmp_path / "proj"
    make_review_project(root).close()
    (tmp_path / "users").write_text("carl:pw\nsecret-without-colon\n# comment\nauto:x\ncarl:again\n")
    (tmp_path / "empty").write_text("# nobody yet\n\n")
    files = {"USERS": tmp_path / "users", "MISSING": tmp_path / "missing", "EMPTY": tmp_path / "empty"}
    argv = [str(files.get(a, a)) for a in argv]
    code = main(["serve", str(root), "--port", str(free_port()), *argv])
    out, err = capsys.readouterr()
    assert code == 1 and out == "" and err.count("\n") == 1 and message in err, err
    assert "secret-without-colon" not in err                      # a bad line may hold a password


# ---------------------------------------------------------------------- 16: writes at once

def test_two_undos_on_two_servers_at_once_never_undo_a_decision_twice(tmp_path):
    """Two `mersemi serve` processes on one project; in each trial ann has two decisions and
    asks both servers to undo at the same moment: each undo takes back a different one."""
    root = tmp_path / "proj"
    make_review_project(root).close()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    ports = [free_port(), free_port()]
    servers = [subprocess.Popen([MERSEMI, "serve", str(root), "--port", str(p)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ports]
    trials, doubles = 30, 0
    try:
        for p in ports:
            wait_until(lambda p=p: _listening(p), 120, what="the servers")
        clients = [Client(f"http://127.0.0.1:{p}/", verbose=False) for p in ports]
        with ThreadPoolExecutor(2) as pool:
            for t in range(trials):
                names = [f"u{(2 * t) % N_POOL:02d}", f"u{(2 * t + 1) % N_POOL:02d}"]
                for i, name in enumerate(names):
                    assert call(clients[i], "decide", name, "accept", "", "ann")["ok"]
                barrier = threading.Barrier(2)

                def undo(client, barrier=barrier):
                    barrier.wait(timeout=30)
                    return call(client, "undo", "ann")

                outs = list(pool.map(undo, clients))
                assert all(o["ok"] for o in outs), outs
                undone = [n for o in outs for n in o["undone"]]
                doubles += len(undone) - len(set(undone))
                assert sorted(undone) == sorted(names), f"trial {t}: {outs}"
    finally:
        for s in servers:
            s.terminate()
        for s in servers:
            s.wait(30)
    targets = Counter(u for (u,) in db_rows(root, "SELECT undoes FROM decisions WHERE action = 'undo'"))
    assert doubles == 0 and len(targets) == 2 * trials and max(targets.values()) == 1
    assert db_rows(root, "SELECT count(*) FROM current_decisions") == [(0,)]


def test_replaced_is_never_stale_with_two_servers_deciding_at_once(tmp_path):
    """Four clients on two servers decide the same three samples over and over; every reply's
    `replaced` names the decision the log has just before it on that sample."""
    root = tmp_path / "proj"
    make_review_project(root).close()
    servers = [serve_in_process(root) for _ in range(2)]
    samples, per_client = ["u03", "u06", "u09"], 30
    try:
        clients = [Client(url, verbose=False) for _, url in servers for _ in range(2)]
        barrier = threading.Barrier(len(clients))

        def decide_many(k: int) -> list[tuple[str, str, str | None]]:
            barrier.wait(timeout=60)
            out = []
            for i in range(per_client):
                name, reviewer = samples[(i + k) % 3], f"c{k}-{i}"   # one decision per reviewer name
                r = call(clients[k], "decide", name, "reject" if i % 2 else "accept", "", reviewer)
                assert r["ok"], r
                out.append((name, reviewer, r["replaced"][0]["reviewer"] if r["replaced"] else None))
            return out

        with ThreadPoolExecutor(len(clients)) as pool:
            replies = [x for per in pool.map(decide_many, range(len(clients))) for x in per]
    finally:
        for demo, _ in servers:
            stop_in_process(demo)
    before: dict[str, str | None] = {}
    expected = {}
    for name, _, reviewer in decisions(root):        # in the order the writes took effect
        expected[(name, reviewer)] = before.get(name)
        before[name] = reviewer
    stale = [(n, r, got) for n, r, got in replies if expected[(n, r)] != got]
    assert len(replies) == 4 * per_client and stale == [], f"{len(stale)} stale 'replaced' of {len(replies)}"


@pytest.fixture
def busy_served(tmp_path, monkeypatch):
    import mersemi.db.connect

    monkeypatch.setattr(mersemi.db.connect, "BUSY_TIMEOUT_S", 0.3)
    root = tmp_path / "proj"
    make_review_project(root).close()
    demo, url = serve_in_process(root)
    yield root, Client(url, verbose=False)
    stop_in_process(demo)


@pytest.mark.parametrize("endpoint, args", [
    ("decide", ("u05", "accept", "", "ann")),
    ("undo", ("ann",)),
    ("set_thresholds", ({"joy": 0.9}, "ann")),
    ("accept_all", ("calm", 0.9, "ann")),
    ("next_candidate", ("all", 0.0, 0, "ann")),
])
def test_a_write_waiting_past_the_busy_timeout_is_refused_in_words(busy_served, endpoint, args):
    root, client = busy_served
    assert call(client, "decide", "u09", "accept", "", "ann")["ok"]   # something to undo
    if endpoint == "accept_all":                      # confirmed with the right count
        args = (*args, call(client, endpoint, *args, -1)["count"])
    before = snapshot(root)
    holder = sqlite3.connect(root / "project.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")                 # another process holds the write lock
    try:
        t0 = time.monotonic()
        out = call(client, endpoint, *args)
        waited = time.monotonic() - t0
    finally:
        holder.rollback()
        holder.close()
    assert out == {"ok": False, "error": "database busy, try again", "code": "busy"}, out
    assert 0.25 < waited < 10
    assert snapshot(root) == before
    assert call(client, endpoint, *args)["ok"]        # the lock released: it is written


# ---------------------------------------------------------------------- 16: one read per request

@pytest.fixture
def two_rounds(tmp_path):
    """The review project plus a finished round 1 whose pool confidences run the other way."""
    from mersemi.service.actions import AppActions

    project = make_review_project(tmp_path / "proj")
    store = project.store
    rid = store.rounds.create(config={}, config_name="fixture", thresholds={}, auto_accept=False,
                              pid=os.getpid(), host=socket.gethostname())
    store.rounds.complete(rid, predictions=[("pool", np.arange(N_LABELED, N_LABELED + N_POOL),
                                            pool_probs()[::-1].copy())],
                          decisions=[], reviewer="auto", composition={}, metrics={}, checkpoint=None)
    yield AppActions(project)
    project.close()


def _finishing_mid_request(store, monkeypatch) -> Counter:
    """store.rounds.current gives round 0 on its first call and round 1 afterwards (round 1
    finished while the request ran); counts the reads of the round and the thresholds."""
    rounds = [store.rounds.get(0), store.rounds.get(1)]
    calls: Counter = Counter()
    thresholds = store.thresholds.values

    def current_round():
        calls["round"] += 1
        return rounds[min(calls["round"] - 1, 1)]

    def read_thresholds():
        calls["thresholds"] += 1
        return thresholds()

    monkeypatch.setattr(store.rounds, "current", current_round)
    monkeypatch.setattr(store.thresholds, "values", read_thresholds)
    return calls


def test_a_request_reads_the_round_and_thresholds_once(two_rounds, monkeypatch):
    app = two_rounds
    conf0 = {f"u{i:02d}": float(p.max()) for i, p in enumerate(pool_probs())}
    for writes, call_action in ((False, lambda: app.next_candidate("all", 0.0, 3, "ann")),
                                (False, lambda: app.candidate_counts()),
                                (False, lambda: app.accept_all("calm", 0.9, "ann", -1)),
                                (True, lambda: app.set_thresholds({"joy": 0.55}, "ann"))):
        calls = _finishing_mid_request(app.project.store, monkeypatch)
        out = call_action()
        assert out.get("ok") is not False or "count" in out, out
        assert calls["round"] == 1, dict(calls)
        assert calls["thresholds"] == 1 or writes, dict(calls)   # a write reads back what it wrote
        monkeypatch.undo()
    # The card answers the round the response names: round 0's confidence, not round 1's.
    _finishing_mid_request(app.project.store, monkeypatch)
    out = app.next_candidate("all", 0.0, 0, "")
    card = out["candidate"]
    assert out["round"] == 0 and card["confidence"] == pytest.approx(conf0[card["name"]], abs=1e-6)


def test_accept_all_decides_in_the_round_it_counted_in(two_rounds, monkeypatch):
    app = two_rounds
    _finishing_mid_request(app.project.store, monkeypatch)
    asked = app.accept_all("calm", 0.9, "ann", -1)
    monkeypatch.undo()
    _finishing_mid_request(app.project.store, monkeypatch)
    done = app.accept_all("calm", 0.9, "ann", asked["count"])
    assert done["ok"] and done["count"] == asked["count"] and done["round"] == 0
    log = app.project.store.decisions.log()
    assert {d.round_id for d in log} == {0} and len(log) == asked["count"]


def test_a_read_that_meets_a_lock_is_refused_as_busy(two_rounds, monkeypatch):
    """SQLite can refuse even a read with SQLITE_BUSY (WAL recovery): the same words as a
    write that waited too long, not an internal error."""
    from sqlalchemy.exc import OperationalError

    app = two_rounds
    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = 5   # SQLITE_BUSY

    def current_round():
        raise OperationalError("SELECT ...", {}, locked)

    monkeypatch.setattr(app.project.store.rounds, "current", current_round)
    for out in (app.next_candidate("all", 0.0, 0, "ann"), app.candidate_counts(),
                app.decide("u05", "accept", "", "ann")):
        assert out == {"ok": False, "error": "database busy, try again", "code": "busy"}


# ---------------------------------------------------------------------- 14: claims in the store

def _take_and_decide(store, reviewer: str) -> list[int]:
    """A reviewer's loop: the first card not decided and not held by another, claimed; then
    decided. Returns the samples this reviewer decided."""
    from mersemi.db.writes import DecisionIn

    rid, mine = store.rounds.current().id, []
    while True:
        closed = set(store.decisions.decided_ids().tolist()) | store.claims.held_by_others(reviewer)
        free = [i for i in range(N_CLAIM_POOL) if i not in closed]
        if not free:
            return mine
        held = store.claims.take_first(free[:20], reviewer, 60)
        if held is None:
            continue
        _, replaced = store.decisions.record([DecisionIn(held, "accept", 0, rid)], reviewer, respect_claims=True)
        assert replaced == {}, f"{reviewer} replaced a decision on {held}"
        mine.append(held)


N_CLAIM_POOL = 60


def test_reviewers_claiming_at_once_decide_every_card_once(db_url):
    from test_concurrency import PROCS, make_store, run_processes

    make_store(db_url).close()
    results = run_processes(_take_and_decide, db_url, [(f"r{p}",) for p in range(PROCS)])
    decided = sorted(sid for mine in results for sid in mine)
    assert decided == list(range(N_CLAIM_POOL)), "a card was decided twice (or never)"
    from mersemi.db.store import Store

    store = Store(db_url)
    assert Counter(d.sample_id for d in store.decisions.log()) == Counter(range(N_CLAIM_POOL))
    store.close()


def test_a_decision_on_a_card_another_reviewer_holds_is_refused(db_url):
    from test_concurrency import make_store

    from mersemi.db.errors import CardClaimed
    from mersemi.db.writes import DecisionIn

    store = make_store(db_url)
    rid = store.rounds.current().id
    assert store.claims.take_first([3, 4], "ann", 60) == 3
    assert store.claims.take_first([3, 4], "bob", 60) == 4
    with pytest.raises(CardClaimed):
        store.decisions.record([DecisionIn(3, "accept", 0, rid)], "bob", respect_claims=True)
    assert store.decisions.in_force() == {}
    store.decisions.record([DecisionIn(3, "accept", 0, rid)], "ann", respect_claims=True)
    assert store.claims.held_by_others("bob") == set()               # ann's decided card is free
    assert store.claims.take_first([4, 5], "ann", 60) == 5             # and she holds one card
    assert store.claims.held_by_others("bob") == {5} and store.claims.held_by_others("ann") == {4}
    store.close()
