"""The store on SQLite and on PostgreSQL: connection set-up, rounds, predictions, candidates,
the decision log."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from sqlalchemy.exc import IntegrityError

from mersemi.db.connect import SchemaError, sqlite_url
from mersemi.db.errors import RoundBusy
from mersemi.db.models import as_utc
from mersemi.db.store import Store
from mersemi.db.writes import DecisionIn, PolicyChange

CLASSES = ["neutral", "happy", "sad"]


def make_store(url: str, **kwargs) -> Store:
    s = Store(url, create=True, **kwargs)
    s.classes.create(CLASSES, [0.9, 0.8, 0.7])
    s.samples.insert(
        [{"id": i, "name": f"l{i}", "split": "labeled", "gold_label": i % 3, "true_label": None,
          "text": None, "media": None} for i in range(6)]
        + [{"id": 6 + i, "name": f"u{i}", "split": "unlabeled", "gold_label": None, "true_label": i % 3,
            "text": f"text {i}", "media": None} for i in range(10)])
    return s


@pytest.fixture
def store(db_url, clock):
    """The store on each backend, on a clock that moves only when a test moves it."""
    s = make_store(db_url, clock=clock)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path):
    s = make_store(sqlite_url(tmp_path / "project.db"))
    yield s
    s.close()


def done_round(store: Store, probs: np.ndarray, decisions=()) -> int:
    rid = store.rounds.create(config={}, config_name="t", thresholds={}, auto_accept=False, pid=1, host="h")
    store.rounds.complete(rid, predictions=[("pool", np.arange(6, 6 + len(probs)), probs)],
                          decisions=list(decisions), reviewer="auto", composition={}, metrics={},
                          checkpoint=None)
    return rid


def pool_probs() -> np.ndarray:
    # predicted classes 0,1,2,0,1,2,... with confidences rising from 0.5 to 0.95
    conf = np.linspace(0.5, 0.95, 10)
    probs = np.zeros((10, 3), np.float32)
    for i, c in enumerate(conf):
        probs[i] = (1 - c) / 2
        probs[i, i % 3] = c
    return probs


def test_connection_uses_wal_foreign_keys_and_busy_timeout(sqlite_store):
    store = sqlite_store
    with store.db.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    with pytest.raises(IntegrityError):  # a label that names no class
        store.samples.insert([{"id": 99, "name": "x", "split": "labeled", "gold_label": 7,
                               "true_label": None, "text": None, "media": None}])


def test_schema_version_is_checked(tmp_path, sqlite_store):
    raw = sqlite3.connect(tmp_path / "project.db")
    raw.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    raw.commit()
    raw.close()
    with pytest.raises(SchemaError, match="version 999"):
        Store(sqlite_url(tmp_path / "project.db"))


def test_only_one_round_runs_at_a_time(store):
    rid = store.rounds.create(config={}, config_name="t", thresholds={}, auto_accept=False, pid=1, host="h")
    with pytest.raises(RoundBusy):
        store.rounds.create(config={}, config_name="t", thresholds={}, auto_accept=False, pid=1, host="h")
    store.rounds.fail(rid, "boom")
    assert store.rounds.get(rid).status == "failed"
    assert store.rounds.current() is None


def test_decided_ids_follow_decisions_of_every_action_and_undo(store):
    rid = done_round(store, pool_probs())
    assert store.decisions.decided_ids().tolist() == []
    store.decisions.record([DecisionIn(6 + 9, "accept", 0, rid)], reviewer="ann")
    store.decisions.record([DecisionIn(6 + 1, "label", 2, rid)], reviewer="bob")
    assert sorted(store.decisions.decided_ids().tolist()) == [7, 15]
    ids, labels, sources = store.decisions.training_labels()
    assert ids.tolist() == [7, 15] and labels.tolist() == [2, 0] and sources == ["labeled", "verified"]
    store.decisions.undo_last("bob")
    assert store.decisions.decided_ids().tolist() == [15]


def test_samples_by_id_returns_the_rows_that_exist(store):
    got = store.samples.by_id([6, 15, 99999])
    assert sorted(got) == [6, 15]
    assert got[15].name == "u9" and got[6].name == "u0"


def test_latest_decision_counts_and_undo_restores_the_previous_one(store):
    rid = done_round(store, pool_probs())
    store.decisions.record([DecisionIn(6, "accept", 0, rid)], reviewer="ann")
    store.decisions.record([DecisionIn(6, "relabel", 2, rid)], reviewer="ann")
    cur = store.decisions.in_force([6])[6]
    assert (cur.action, cur.label) == ("relabel", 2)
    assert store.decisions.undo_last("ann") == [6]
    cur = store.decisions.in_force([6])[6]
    assert (cur.action, cur.label) == ("accept", 0)
    assert store.decisions.undo_last("ann") == [6]
    assert store.decisions.in_force([6]) == {}
    assert store.decisions.undo_last("ann") == []
    # The log keeps everything: 2 decisions + 2 undos.
    assert [d.action for d in store.decisions.log()] == ["accept", "relabel", "undo", "undo"]


def test_undo_takes_back_a_whole_batch_and_only_the_reviewers_own(store):
    rid = done_round(store, pool_probs())
    store.decisions.record([DecisionIn(7, "reject", 1, rid)], reviewer="bob")
    store.decisions.record([DecisionIn(i, "accept", (i - 6) % 3, rid) for i in (8, 9, 10)], reviewer="ann")
    assert store.decisions.undo_last("ann") == [8, 9, 10]
    assert set(store.decisions.in_force()) == {7}


def test_two_reviewers_on_one_sample_both_logged_latest_counts(store):
    rid = done_round(store, pool_probs())
    store.decisions.record([DecisionIn(6, "accept", 0, rid)], reviewer="ann")
    _, replaced = store.decisions.record([DecisionIn(6, "reject", 0, rid)], reviewer="bob")
    assert replaced[6].action == "accept"
    assert store.decisions.in_force([6])[6].action == "reject"
    assert [(d.reviewer, d.action) for d in store.decisions.log()] == [("ann", "accept"), ("bob", "reject")]
    # Ann undoing her own (overridden) decision leaves Bob's in force.
    store.decisions.undo_last("ann")
    assert store.decisions.in_force([6])[6].action == "reject"


def test_training_labels_and_decision_counts(store):
    rid = done_round(store, pool_probs())
    store.decisions.record([DecisionIn(6, "accept", 0, rid), DecisionIn(7, "relabel", 2, rid),
                            DecisionIn(8, "reject", 2, rid)], reviewer="ann")
    store.decisions.record([DecisionIn(9, "accept", 0, rid), DecisionIn(10, "label", 1, rid)], reviewer="auto")
    ids, labels, sources = store.decisions.training_labels()
    assert ids.tolist() == [6, 7, 9, 10] and labels.tolist() == [0, 2, 0, 1]
    # A person's accept verified the prediction; the tool's (reviewer auto) is a pseudo-label.
    assert sources == ["verified", "relabeled", "pseudo", "labeled"]
    assert store.decisions.counts() == {"accept": {0: 2}, "reject": {2: 1}, "relabel": {2: 1}, "label": {1: 1}}
    assert store.decisions.source_counts() == {"verified": {0: 1}, "relabeled": {2: 1}, "labeled": {1: 1},
                                               "consensus": {}, "adjudicated": {}, "pseudo": {0: 1}}
    store.decisions.undo_last("auto")
    assert store.decisions.source_counts() == {"verified": {0: 1}, "relabeled": {2: 1}, "labeled": {},
                                               "consensus": {}, "adjudicated": {}, "pseudo": {}}


def test_decision_counts_by_predicted_class_follow_relabels_and_undo(store):
    # One meaning for the review page: the class the model predicted, whatever was answered.
    rid = done_round(store, pool_probs())
    store.decisions.record([DecisionIn(6, "accept", 0, rid), DecisionIn(7, "relabel", 2, rid, predicted=1),
                            DecisionIn(8, "reject", 2, rid), DecisionIn(9, "label", 0, rid, predicted=1)],
                           reviewer="ann")
    assert store.decisions.counts("predicted") == {"accept": {0: 1}, "reject": {2: 1}, "relabel": {1: 1},
                                                   "label": {1: 1}}
    store.decisions.record([DecisionIn(7, "accept", 1, rid)], reviewer="bob")   # bob accepts what ann relabeled
    assert store.decisions.counts("predicted") == {"accept": {0: 1, 1: 1}, "reject": {2: 1}, "relabel": {},
                                                   "label": {1: 1}}
    store.decisions.undo_last("bob")   # ann's relabel is in force again, still under the predicted class
    assert store.decisions.counts("predicted")["relabel"] == {1: 1}


def test_decided_ids_kept_between_calls_see_another_servers_decisions_and_undos(db_url):
    # Two stores on one database, as two app servers: the ids one keeps between calls never
    # hide what the other one wrote.
    one, two = make_store(db_url), Store(db_url)
    try:
        rid = done_round(one, pool_probs())
        assert one.decisions.decided_ids().tolist() == []
        two.decisions.record([DecisionIn(7, "accept", 1, rid)], reviewer="bob")
        assert one.decisions.decided_ids().tolist() == [7]
        two.decisions.record([DecisionIn(7, "reject", 1, rid)], reviewer="bob")   # same count of ids in force
        two.decisions.undo_last("bob")
        two.decisions.undo_last("bob")
        assert one.decisions.decided_ids().tolist() == []
        with pytest.raises(ValueError):   # what is kept cannot be changed by a caller
            one.decisions.decided_ids()[:] = 0
    finally:
        one.close()
        two.close()


def test_decided_ids_see_a_decision_committed_late_with_a_smaller_id(store):
    # On PostgreSQL a transaction can commit after a later one, its log id below the largest
    # one seen: the row count tells, and the ids are read again.
    from sqlalchemy import text
    rid = done_round(store, pool_probs())

    def log(did: int, sid: int) -> None:
        with store.db.engine.begin() as c:
            c.execute(text("INSERT INTO decisions (id, sample_id, round_id, action, label, batch, reviewer, "
                           "created_at) VALUES (:d, :s, :r, 'accept', 0, :b, 'ann', CURRENT_TIMESTAMP)"),
                      {"d": did, "s": sid, "r": rid, "b": f"b{did}"})
            c.execute(text("INSERT INTO current_decisions (sample_id, decision_id, action, label) "
                           "VALUES (:s, :d, 'accept', 0)"), {"d": did, "s": sid})

    log(101, 6)   # ids of their own, clear of PostgreSQL's sequence
    log(103, 8)
    assert store.decisions.decided_ids().tolist() == [6, 8]
    log(102, 7)   # committed last, id below the largest
    assert store.decisions.decided_ids().tolist() == [6, 7, 8]
    store.decisions.record([DecisionIn(9, "reject", 0, rid)], reviewer="bob")   # and read on from there
    assert store.decisions.decided_ids().tolist() == [6, 7, 8, 9]


def test_complete_round_is_atomic(store):
    rid = store.rounds.create(config={}, config_name="t", thresholds={}, auto_accept=False, pid=1, host="h")
    bad = np.full((10, 3), 1 / 3, np.float32)
    with pytest.raises(IntegrityError):  # sample 999 does not exist: the whole write rolls back
        store.rounds.complete(rid, predictions=[("pool", np.arange(6, 16), bad),
                                                ("test", np.array([999]), bad[:1])],
                              decisions=[DecisionIn(6, "accept", 0, rid)], reviewer="auto",
                              composition={}, metrics={}, checkpoint=None)
    assert store.rounds.get(rid).status == "running"
    assert len(store.rounds.predictions(rid, "pool")[0]) == 0
    assert store.decisions.log() == []


def test_predictions_round_trip_probabilities(store):
    probs = pool_probs()
    rid = done_round(store, probs)
    ids, got = store.rounds.predictions(rid, "pool")
    assert ids.tolist() == list(range(6, 16))
    np.testing.assert_array_equal(got, probs)
    ids, pred, conf = store.rounds.pool_confidences(rid)
    order = np.argsort(ids)
    assert ids[order].tolist() == list(range(6, 16))
    assert pred[order].tolist() == [i % 3 for i in range(10)]          # argmax of each row
    np.testing.assert_allclose(conf[order], probs.max(1), rtol=1e-6)  # its probability
    assert conf.dtype == np.float64 and pred.dtype == np.int64


def test_claims_hold_a_card_for_one_reviewer_until_they_expire(store, clock):
    assert store.claims.take(6, "ann", seconds=60)
    assert not store.claims.take(6, "bob", seconds=60)        # held by Ann
    assert store.claims.held_by_others("bob") == {6} and store.claims.held_by_others("ann") == set()
    assert store.claims.take(6, "ann", seconds=120)           # Ann again: extends her hold
    assert store.claims.take(7, "ann", seconds=10) and store.claims.take(8, "bob", seconds=60)
    assert store.claims.held_by_others("carl") == {6, 7, 8}
    clock.advance(9)                                    # 1 s before Ann's claim on 7 expires
    assert store.claims.held_by_others("carl") == {6, 7, 8}
    assert not store.claims.take(7, "bob", seconds=60)
    assert store.claims.take_first([7, 9], "bob", seconds=60) == 9   # 7 still Ann's; Bob lets go of 8
    clock.advance(2)                                    # 1 s after: expired
    assert store.claims.held_by_others("carl") == {6, 9}
    assert store.claims.take_first([7, 10], "carl", seconds=60) == 7   # an expired claim is taken over
    assert not store.claims.take(7, "bob", seconds=60)        # ... and held by Carl now
    clock.advance(59)                                   # 70 s: Bob's hold on 9 (from 9 s) is over,
    assert store.claims.held_by_others("dan") == {6, 7}     # Ann's on 6 (120 s) and Carl's (from 11 s) hold
    assert store.claims.take(9, "dan", seconds=60) and not store.claims.take(6, "dan", seconds=60)


def test_claims_read_by_others_is_an_index_range_scan(sqlite_store):
    from sqlalchemy import select

    from mersemi.db.models import Claim, utcnow

    q = select(Claim.sample_id).where(Claim.expires_at > utcnow(), Claim.reviewer != "ann")
    with sqlite_store.db.engine.connect() as c:
        sql = str(q.compile(c, compile_kwargs={"literal_binds": True}))
        plan = " ".join(str(r[-1]) for r in c.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    assert "USING COVERING INDEX ix_claims_expires (expires_at>?)" in plan, plan


# ---------------------------------------------------------------------- reads and round states

def test_meta_counts_and_the_arrays_of_each_split(store):
    store.meta.set(a="1", b="two")
    store.meta.set(a="3")
    assert (store.meta.get("a"), store.meta.get("b"), store.meta.get("nothing")) == ("3", "two", None)
    assert store.classes.names() == CLASSES and store.samples.count() == 16
    assert store.samples.split_counts() == {"labeled": 6, "unlabeled": 10}
    assert store.samples.gold_counts() == {0: 2, 1: 2, 2: 2}
    ids, gold, true = store.samples.split_arrays("labeled")
    assert (ids.tolist(), gold.tolist(), true.tolist()) == (list(range(6)), [0, 1, 2, 0, 1, 2], [-1] * 6)
    ids, gold, true = store.samples.split_arrays("unlabeled")
    assert (ids.tolist(), gold.tolist(), true.tolist()) == (list(range(6, 16)), [-1] * 10, [i % 3 for i in range(10)])
    ids, gold, true = store.samples.split_arrays("test")
    assert len(ids) == len(gold) == len(true) == 0 and ids.dtype == gold.dtype == true.dtype == np.int64


def test_lookups_by_name_and_id(store):
    assert store.samples.by_name(["u0", "l1", "u0", "nobody"]) == {"u0": (6, "unlabeled"), "l1": (1, "labeled")}
    assert store.samples.names([6, 7, 999]) == {6: "u0", 7: "u1"}


def test_thresholds_are_set_per_class_with_who_set_them(store):
    from sqlalchemy import select

    from mersemi.db.models import Threshold

    assert store.thresholds.values() == pytest.approx([0.9, 0.8, 0.7])
    store.thresholds.set({1: 0.5, 2: 1}, by="ann")
    assert store.thresholds.values() == pytest.approx([0.9, 0.5, 1.0])
    with store.db.session() as s:
        assert dict(s.execute(select(Threshold.class_id, Threshold.updated_by)).all()) == \
            {0: "init", 1: "ann", 2: "ann"}


def test_round_states_failures_and_the_round_in_force(store):
    r0 = done_round(store, pool_probs())
    store.rounds.fail(r0, "too late")                       # a finished round stays done
    assert store.rounds.get(r0).status == "done" and store.rounds.get(r0).error is None
    r1 = store.rounds.create(config={"a": 1}, config_name="t", thresholds={"neutral": 0.9},
                             auto_accept=True, pid=4, host="h")
    assert r1 == r0 + 1 and [r.id for r in store.rounds.unfinished()] == [r1]
    got = store.rounds.get(r1)
    assert (got.status, got.config, got.thresholds, got.auto_accept, got.pid, got.host) == \
        ("running", {"a": 1}, {"neutral": 0.9}, True, 4, "h")
    store.rounds.fail(r1, "x" * 3000)
    assert store.rounds.get(r1).status == "failed" and store.rounds.get(r1).error == "x" * 2000
    assert store.rounds.get(r1).finished_at is not None and store.rounds.unfinished() == []
    with pytest.raises(RuntimeError, match=f"^round {r1} is failed, not running$"):
        store.rounds.complete(r1, predictions=[], decisions=[], reviewer="auto", composition={},
                              metrics={}, checkpoint=None)
    r2 = done_round(store, pool_probs())
    store.rounds.create(config={}, config_name="t", thresholds={}, auto_accept=False, pid=1, host="h")
    assert [r.id for r in store.rounds.all()] == [r0, r1, r2, r2 + 1]
    assert store.rounds.current().id == r2                    # the latest done, not the running one
    assert store.rounds.get(12345) is None


def test_heartbeats_touch_running_rounds_and_dead_ones_are_failed(store, clock):
    r0 = done_round(store, pool_probs())
    before = store.rounds.get(r0).heartbeat_at
    clock.advance(1)
    store.rounds.heartbeat(r0)                                      # done: untouched
    assert store.rounds.get(r0).heartbeat_at == before
    r1 = store.rounds.create(config={}, config_name="t", thresholds={}, auto_accept=False, pid=1, host="h")
    assert as_utc(store.rounds.get(r1).heartbeat_at) == clock()
    clock.advance(1)
    store.rounds.heartbeat(r1)
    assert as_utc(store.rounds.get(r1).heartbeat_at) == clock()   # the store's now, a second later
    assert store.rounds.fail_dead(lambda r: False, lambda r: "never") == []
    assert store.rounds.get(r1).status == "running"
    dead = store.rounds.fail_dead(lambda r: r.pid == 1, lambda r: f"gone: {r.host} " + "y" * 3000)
    assert [r.id for r in dead] == [r1]
    got = store.rounds.get(r1)
    assert got.status == "failed" and got.error.startswith("gone: h y") and len(got.error) == 2000
    assert store.rounds.get(r0).status == "done"


def test_prediction_of_names_the_kind_class_and_confidence(store):
    rid = store.rounds.create(config={}, config_name="t", thresholds={}, auto_accept=False, pid=1, host="h")
    probs = pool_probs()
    store.rounds.complete(rid, predictions=[("pool", np.arange(6, 16), probs),
                                            ("oof", np.arange(0, 3), probs[:3])],
                          decisions=[], reviewer="auto", composition={"gold": 6}, metrics={"m": 1},
                          checkpoint="c.pt")
    got = store.rounds.prediction_of(rid, [7, 1, 999])
    assert set(got) == {7, 1}
    assert got[7][:2] == ("pool", 1) and got[7][2] == pytest.approx(probs[1].max())
    assert got[1][:2] == ("oof", 1)
    done = store.rounds.get(rid)
    assert (done.status, done.composition, done.metrics, done.threshold_changes, done.checkpoint) == (
        "done", {"gold": 6}, {"m": 1}, [], "c.pt")   # the metrics as the service gave them
    assert store.rounds.predictions(rid, "test")[0].tolist() == []
    assert store.rounds.pool_confidences(rid + 1)[0].tolist() == []


def test_a_finished_round_sets_only_the_thresholds_no_person_owns(store):
    # classes 0-2 start as init's; ann sets class 1 while the round trains: it stays hers
    rid = store.rounds.create(config={}, config_name="t", thresholds={}, auto_accept=False, pid=1, host="h")
    store.thresholds.set({1: 0.42}, by="ann")
    changes = store.rounds.complete(rid, predictions=[], decisions=[], reviewer="auto", composition={}, metrics={},
                                    checkpoint=None, thresholds={0: 0.95, 1: 0.95, 2: 0.7})
    assert [(c.class_id, c.old, c.new, c.by, c.changed, c.kept_for_owner) for c in changes] == [
        (0, 0.9, 0.95, "policy", True, False), (1, 0.42, 0.42, "ann", False, True),
        (2, 0.7, 0.7, "init", False, False)]
    assert store.thresholds.values() == [0.95, 0.42, 0.7]
    assert [PolicyChange.from_json(c) for c in store.rounds.get(rid).threshold_changes] == changes
    history = store.thresholds.history()
    assert [(h.class_id, h.value, h.set_by, h.round_id, h.policy_may_set) for h in history[:2]] == [
        (0, 0.95, "policy", rid, True), (1, 0.42, "ann", None, False)]
    # released, the class is the policy's again; with `everyone` the policy sets every class
    store.thresholds.release([1], by="ann")
    assert [t.policy_may_set for t in store.thresholds.rows()] == [True, True, True]
    store.thresholds.set({2: 0.1}, by="bob")
    rid = store.rounds.create(config={}, config_name="t", thresholds={}, auto_accept=False, pid=1, host="h")
    store.rounds.complete(rid, predictions=[], decisions=[], reviewer="auto", composition={}, metrics={},
                          checkpoint=None, thresholds={0: 0.8, 1: 0.8, 2: 0.8}, everyone=True)
    assert store.thresholds.values() == [0.8, 0.8, 0.8]
    assert [t.updated_by for t in store.thresholds.rows()] == ["policy"] * 3


def test_one_batch_naming_a_sample_twice_keeps_the_later_entry(store):
    rid = done_round(store, pool_probs())
    store.decisions.record([DecisionIn(6, "accept", 0, rid), DecisionIn(6, "reject", 0, rid)], reviewer="ann")
    assert store.decisions.in_force([6])[6].action == "reject"      # the later entry wins


def test_utc_helpers():
    from datetime import UTC, datetime, timedelta, timezone

    from mersemi.db.models import as_utc

    naive = datetime(2026, 1, 2, 3, 4, 5)
    assert as_utc(naive) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    plus2 = datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert as_utc(plus2).hour == 3 and as_utc(plus2).tzinfo == UTC


def test_a_transaction_a_concurrent_one_aborted_runs_again_until_the_busy_timeout(sqlite_store, monkeypatch):
    from types import SimpleNamespace

    from sqlalchemy.exc import OperationalError

    import mersemi.db.database as store_module
    from mersemi.db.connect import _PG_RETRY
    from mersemi.db.errors import StoreBusy

    class Aborted(Exception):
        sqlstate = sorted(_PG_RETRY)[0]          # e.g. a serialization failure

    class Locked(Exception):
        sqlite_errorcode = 5                     # SQLITE_BUSY

    clock, sleeps, spreads = [0.0], [], []

    def sleep(seconds):
        sleeps.append(round(seconds, 6))
        clock[0] += seconds

    monkeypatch.setattr(store_module, "time", SimpleNamespace(monotonic=lambda: clock[0], sleep=sleep))
    monkeypatch.setattr(store_module, "random", SimpleNamespace(uniform=lambda a, b: spreads.append((a, b)) or 1.0))
    sqlite_store.db.busy_timeout_s = 1.0
    failures = iter([Aborted(), Aborted()])

    def flaky(s):
        e = next(failures, None)
        if e is not None:
            raise OperationalError("UPDATE rounds ...", {}, e)
        return 42

    assert sqlite_store.db.write(flaky) == 42
    assert sleeps == [0.005, 0.01] and spreads == [(0.5, 1.5)] * 2

    sleeps.clear()

    def always(s):
        raise OperationalError("UPDATE rounds ...", {}, Aborted())

    with pytest.raises(StoreBusy):
        sqlite_store.db.write(always)
    # doubling pauses up to 0.2 s, until a second has passed
    assert sleeps == [0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.2, 0.2, 0.2, 0.2]

    sleeps.clear()
    for orig, raised in ((Locked(), StoreBusy), (ValueError("syntax"), OperationalError)):
        def once(s, orig=orig):
            raise OperationalError("SELECT", {}, orig)
        with pytest.raises(raised):
            sqlite_store.db.write(once)
    assert sleeps == []                          # neither a lock wait nor another error is retried


def test_a_batch_shares_one_id_and_one_time(store):
    rid = done_round(store, pool_probs())
    batch, _ = store.decisions.record([DecisionIn(i, "accept", (i - 6) % 3, rid) for i in (6, 7, 8)], reviewer="ann")
    log = store.decisions.log()
    assert {d.batch for d in log} == {batch} and len({d.created_at for d in log}) == 1
    assert log[0].created_at is not None
