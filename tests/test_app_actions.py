"""The app's actions (service/actions.py) and queue helpers (service/review.py) on a real SQLite project,
without a server: what each endpoint returns and what it writes."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app_fixtures import CLASSES, N_POOL, expected_count, make_review_project, pool_confidences
from mersemi.service.actions import AppActions
from mersemi.service.runner import TrainingRunner, train_command
from mersemi.ui.cli import main
from mersemi.service.review import media_file, queue_position, queue_size


@pytest.fixture
def app(tmp_path):
    project = make_review_project(tmp_path / "proj")
    yield AppActions(project)
    project.close()


def log(app):
    return app.project.store.decisions.log()


def test_thresholds_change_counts_and_persist(app):
    before = app.candidate_counts()["classes"]
    assert [r["candidates"] for r in before] == [expected_count(c, 0.5) for c in range(3)]
    out = app.set_thresholds({"joy": 0.8, "anger": 0.9}, reviewer="ann")
    assert out["ok"] and out["thresholds"] == {"calm": 0.5, "joy": 0.8, "anger": 0.9}
    rows = {r["class"]: r for r in out["classes"]}
    assert rows["joy"]["candidates"] == expected_count(1, 0.8)
    assert rows["anger"]["candidates"] == expected_count(2, 0.9)
    assert app.project.store.thresholds.values() == [0.5, 0.8, 0.9]


@pytest.mark.parametrize("bad", [{"calm": 0.7, "joy": 1.5}, {"calm": 0.7, "joy": -0.1},
                                 {"calm": 0.7, "joy": "high"}, {"calm": 0.7, "joy": None},
                                 {"calm": 0.7, "joy": float("nan")}, {"calm": 0.7, "fear": 0.5},
                                 {}, "joy=0.5", None])
def test_bad_thresholds_are_refused_and_change_nothing(app, bad):
    app.set_thresholds({"calm": 0.6}, reviewer="ann")
    out = app.set_thresholds(bad, reviewer="ann")
    assert out["ok"] is False and out["error"]
    assert app.project.store.thresholds.values() == [0.6, 0.5, 0.5]


def test_a_threshold_records_its_owner_and_needs_a_name(app):
    out = app.set_thresholds({"joy": 0.7})
    assert out["ok"] is False and "reviewer name" in out["error"]
    assert app.set_thresholds({"joy": 0.7}, reviewer="ann")["ok"]
    owners = app.threshold_history()["owners"]
    assert owners["joy"]["set_by"] == "ann" and owners["joy"]["policy_may_set"] is False
    assert app.release_thresholds(["joy"], "ann")["released"] == ["joy"]
    history = app.threshold_history()
    assert history["owners"]["joy"]["policy_may_set"] is True
    assert [(c["class"], c["set_by"], c["note"]) for c in history["changes"][:2]] == [
        ("joy", "ann", "let the policy set it"), ("joy", "ann", None)]
    for bad in ([], "joy", ["fear"], None):
        assert app.release_thresholds(bad, "ann")["ok"] is False
    assert app.suggest(0.9, "bob")["ok"] and app.threshold_history()["changes"][0]["set_by"] == "suggest (bob)"


def verify_order(thresholds=(0.5, 0.5, 0.5), decided=(), cls=None, min_conf=0.0):
    """The verify queue worked out from the fixture: undecided u<i> (class i % 3, confidence
    pool_confidences()[i]) at or above its class threshold, least confident first."""
    conf = pool_confidences()
    keep = [i for i in range(N_POOL) if conf[i] >= max(thresholds[i % 3], min_conf)
            and f"u{i:02d}" not in decided and (cls is None or i % 3 == cls)]
    return [f"u{i:02d}" for i in sorted(keep, key=lambda i: conf[i])]


def test_expected_precision_is_the_candidates_mean_confidence_and_oof_is_shown_beside_it(app):
    rows = {r["class"]: r for r in app.candidate_counts()["classes"]}
    conf = pool_confidences()
    calm = [conf[i] for i in range(0, N_POOL, 3) if conf[i] >= 0.5]
    assert rows["calm"]["candidates"] == rows["calm"]["support"] == len(calm)
    assert rows["calm"]["expected_precision"] == pytest.approx(np.mean(calm))
    # calm is predicted for gold 0,3,...,27 (right unless i % 5 == 0) and for the wrong
    # predictions of anger samples i % 5 == 0 (i = 5, 20); oof confidences are 0.9 - 0.01 i.
    calm_pred = [i for i in range(30) if (i % 3 == 0 and i % 5) or (i % 5 == 0 and (i + 1) % 3 == 0)]
    right = [i for i in calm_pred if i % 3 == 0]
    assert rows["calm"]["oof_support"] == len(calm_pred)
    assert rows["calm"]["oof_precision"] == pytest.approx(len(right) / len(calm_pred))


def test_suggest_sets_reachable_classes_and_names_the_rest(app):
    conf = pool_confidences()

    def lowest(cls, target):   # the lowest confidence whose top-k mean reaches the target
        c = np.sort([conf[i] for i in range(cls, N_POOL, 3)])[::-1]
        ok = np.flatnonzero(np.cumsum(c) / np.arange(1, len(c) + 1) >= target)
        return math.ceil(c[ok[-1]] * 1000 - 1e-6) / 1000 if len(ok) else None

    out = app.suggest(0.975)
    assert out["ok"]
    expect = {name: lowest(c, 0.975) for c, name in enumerate(CLASSES)}
    assert [c for c, t in expect.items() if t is None] == out["unreachable"] == ["anger"]
    assert out["thresholds"]["calm"] == pytest.approx(expect["calm"])
    assert out["thresholds"]["joy"] == pytest.approx(expect["joy"])
    assert out["thresholds"]["anger"] == 0.5                        # left as it was
    assert "cannot reach it (left as is): anger" in out["message"]
    lower = app.suggest(0.8)["thresholds"]
    assert lower == pytest.approx({name: lowest(c, 0.8) for c, name in enumerate(CLASSES)})
    # the suggestion keeps the target: the candidates' mean confidence reaches it
    rows = {r["class"]: r for r in app.candidate_counts()["classes"]}
    assert all(r["expected_precision"] >= 0.8 for r in rows.values())
    assert app.suggest(1.5)["ok"] is False and app.suggest("x")["ok"] is False


def test_paper_preset_uses_defaults_for_classes_the_paper_does_not_name(app):
    out = app.paper_preset()
    assert out["thresholds"] == {"calm": 0.95, "joy": 0.95, "anger": 0.95}


def test_the_default_queue_is_what_mersemi_queue_prints(app):
    from mersemi.service.review import queue_page

    cards, total = queue_page(app.project, limit=5)
    got = [app.next_candidate(offset=k) for k in range(5)]
    assert [g["candidate"]["name"] for g in got] == [c.name for c in cards] and got[0]["total"] == total
    assert [g["candidate"]["kind"] for g in got] == [c.kind for c in cards]
    assert app.next_candidate(kind="nope")["ok"] is False


def test_next_candidate_walks_the_verify_queue_least_confident_first(app):
    order = verify_order()
    first = app.next_candidate(kind="verify")
    assert first["total"] == len(order) == sum(expected_count(c, 0.5) for c in range(3))
    assert first["candidate"]["name"] == order[0]
    assert set(first["candidate"]["probs"]) == set(CLASSES)
    assert app.next_candidate(kind="verify", offset=1)["candidate"]["name"] == order[1]
    last = app.next_candidate(kind="verify", offset=10_000)
    assert last["offset"] == first["total"] - 1
    assert last["candidate"]["name"] == "u00" and last["candidate"]["media_kind"] == "audio"
    before_last = app.next_candidate(kind="verify", offset=first["total"] - 2)
    assert before_last["candidate"]["name"] == "u01"
    assert before_last["candidate"]["media"] is None       # its media path leaves the media folder
    joy = app.next_candidate(kind="verify", cls="joy", min_confidence=0.9)
    assert joy["candidate"]["name"] == verify_order(cls=1, min_conf=0.9)[0]
    assert joy["total"] == expected_count(1, 0.9)
    assert app.next_candidate(kind="verify", cls="fear")["ok"] is False
    assert app.next_candidate(kind="verify", min_confidence=2)["ok"] is False
    empty = app.next_candidate(kind="verify", min_confidence=1.0)
    assert empty["ok"] and empty["candidate"] is None and empty["message"]


def test_all_class_queue_follows_the_one_candidate_definition(app):
    from mersemi.service.review import next_candidates

    project = app.project
    app.set_thresholds({"calm": 0.6, "joy": 0.45, "anger": 0.8}, reviewer="ann")
    app.decide("u03", "accept", "", "ann")
    app.decide("u07", "reject", "", "ann")
    for min_conf in (0.0, 0.7):
        expected = verify_order((0.6, 0.45, 0.8), decided={"u03", "u07"}, min_conf=min_conf)
        assert len(expected) == queue_size(project, "all", min_conf) > 5
        got = [next_candidates(project, "all", min_conf, limit=1, offset=k)[0].name for k in range(len(expected))]
        assert got == expected
        assert [c.name for c in next_candidates(project, "all", min_conf, limit=4, offset=2)] == expected[2:6]


def test_decide_writes_the_log_and_drops_the_candidate(app):
    total = app.next_candidate()["total"]
    assert app.decide("u00", "accept", "", "ann")["ok"]
    assert app.decide("u01", "reject", "", "ann")["ok"]
    out = app.decide("u02", "relabel", "calm", "ann")
    assert out["ok"] and out["label"] == "calm" and out["replaced"] == []
    entries = [(d.sample_id, d.action, d.label, d.reviewer) for d in log(app)]
    assert entries == [(30, "accept", 0, "ann"), (31, "reject", 1, "ann"), (32, "relabel", 0, "ann")]
    assert app.next_candidate()["total"] == total - 3
    rows = {r["class"]: r for r in app.candidate_counts()["classes"]}
    # per class of the label in force: ann's accept verified a calm prediction, her relabel made a calm
    assert (rows["calm"]["verified"], rows["joy"]["rejected"], rows["calm"]["relabeled"]) == (1, 1, 1)
    assert [(d.source, d.card) for d in log(app)] == [("verified", "verify"), (None, "verify"), ("relabeled", "verify")]


@pytest.mark.parametrize("args, message", [
    (("u00", "accept", "", ""), "reviewer name"),
    (("u00", "accept", "", "   "), "reviewer name"),
    (("u00", "relabel", "fear", "ann"), "unknown label"),
    (("u00", "relabel", "", "ann"), "needs a label"),
    (("u00", "maybe", "", "ann"), "accept, reject, relabel or label"),
    (("l01", "accept", "", "ann"), "not in the pool"),
    (("nobody", "accept", "", "ann"), "unknown sample"),
    (("u00", "accept", "joy", "ann"), "use relabel"),
])
def test_bad_decisions_are_refused_and_write_nothing(app, args, message):
    out = app.decide(*args)
    assert out["ok"] is False and message in out["error"]
    assert log(app) == []


def test_a_second_reviewer_replaces_the_first(app):
    app.decide("u03", "accept", "", "ann")
    out = app.decide("u03", "reject", "", "bob")
    assert out["ok"] and out["replaced"][0]["reviewer"] == "ann" and out["replaced"][0]["action"] == "accept"
    assert "replaces ann's accept" in out["message"]
    assert [(d.action, d.reviewer) for d in log(app)] == [("accept", "ann"), ("reject", "bob")]
    rows = {r["class"]: r for r in app.candidate_counts()["classes"]}
    assert rows["calm"]["verified"] == 0 and rows["calm"]["rejected"] == 1


def test_undo_takes_back_the_reviewers_latest_decision_only(app):
    app.decide("u00", "accept", "", "ann")
    app.decide("u01", "accept", "", "bob")
    app.decide("u02", "reject", "", "ann")
    out = app.undo("ann")
    assert out["ok"] and out["undone"] == ["u02"]
    assert set(app.project.store.decisions.in_force()) == {30, 31}
    assert app.undo("carl")["undone"] == [] and "nothing to undo" in app.undo("carl")["message"]
    assert app.undo("")["ok"] is False


def test_queue_position_finds_an_undone_candidate(app):
    project = app.project
    assert queue_position(project, 33) == verify_order().index("u03")
    assert queue_position(project, 33, cls="calm") == verify_order(cls=0).index("u03")
    assert queue_position(project, 33, cls="joy") is None
    app.decide("u06", "accept", "", "ann")
    assert queue_position(project, 36) is None                    # decided: not in the queue
    assert queue_position(project, 33) == verify_order(decided={"u06"}).index("u03")
    assert queue_size(project, "calm", 0.9) == expected_count(0, 0.9) - 1


def test_accept_all_needs_the_confirmed_count(app):
    n = expected_count(2, 0.8)
    first = app.accept_all("anger", 0.8, "ann")
    assert first["ok"] is False and first["count"] == n and log(app) == []
    assert app.accept_all("anger", 0.8, "ann", expected=n + 1)["ok"] is False and log(app) == []
    done = app.accept_all("anger", 0.8, "ann", expected=n)
    assert done["ok"] and done["count"] == n
    assert {d.label for d in log(app)} == {2} and len(log(app)) == n
    assert len(app.undo("ann")["undone"]) == n                    # one batch, one undo
    assert app.accept_all("anger", 0.8, "", expected=n)["ok"] is False


def test_no_round_yet_gives_a_message(tmp_path):
    from mersemi.service.project import Project

    app = AppActions(Project.init(tmp_path / "empty", CLASSES))
    for out in (app.candidate_counts(), app.next_candidate(), app.decide("x", "accept", "", "ann"),
                app.accept_all(reviewer="ann"), app.suggest(0.9), app.export("predictions")):
        assert out["ok"] is False and "no finished round" in out["error"] and out["code"] == "no_round"
    assert app.set_thresholds({"joy": 0.7}, reviewer="ann")["ok"]               # thresholds work before round 0
    assert app.training.round_history()["rounds"] == []


def test_unknown_preset_is_refused(app):
    out = app.training.train_round(config="../../etc/passwd")
    assert out["ok"] is False and "unknown preset" in out["error"]
    assert app.project.store.rounds.all()[-1].id == 0


def test_training_refused_while_a_round_runs(app):
    import threading

    release = threading.Event()
    assert app.training.runner.start(lambda progress: release.wait(5) and {}, "blocking job")
    try:
        out = app.training.train_round(config="default")
        assert out["ok"] is False and "already training" in out["error"]
    finally:
        release.set()
        app.training.runner.wait(5)
    assert len(app.project.store.rounds.all()) == 1


def test_export_writes_under_exports(app):
    app.decide("u00", "accept", "", "ann")
    out = app.export("labels")
    assert out["ok"] and out["file"].startswith(str(app.project.root.resolve() / "exports"))
    df = pd.read_csv(out["file"])
    assert len(df) == 31 and set(df["source"]) == {"gold", "verified"}
    assert app.export("decisions")["rows"] == 1
    assert app.export("predictions")["rows"] == N_POOL + 6
    assert app.export("labels_mertools")["file"].endswith(".npz")
    assert app.export("everything")["ok"] is False
    assert app.export("labels")["file"] != out["file"]             # never overwrites


def test_media_outside_the_media_folder_is_never_returned(app, tmp_path):
    project = app.project
    assert media_file(project, "u00.wav")[1] == "audio"
    assert media_file(project, "../secret.wav") == (None, None)
    assert media_file(project, str(tmp_path / "proj" / "secret.wav")) == (None, None)
    assert media_file(project, "missing.mp4") == (None, None)
    (project.media_root / "clip.MP4").write_bytes(b"not really a video")
    assert media_file(project, "clip.MP4")[1] == "video"
    (project.media_root / "notes.txt").write_text("not a clip")
    assert media_file(project, "notes.txt") == (None, None)
    assert media_file(project, None) == (None, None)


def test_the_app_trains_with_mersemi_train_and_its_nproc(app, tmp_path, capsys):
    """One way to train: the app's round is `mersemi train` in a child process, with the
    server's --nproc."""
    cmd = train_command(Path("proj"), Path("fast.yaml"), True, 3)
    assert cmd == [sys.executable, "-m", "mersemi.ui.cli", "train", "proj", "--config", "fast.yaml", "--json",
                   "--auto-accept", "--nproc", "3"]
    assert train_command(Path("proj"), Path("fast.yaml"), False, 1)[3:] == ["train", "proj", "--config",
                                                                              "fast.yaml", "--json"]
    assert AppActions(app.project, nproc=3).training.nproc == 3 and app.training.nproc == 1
    assert main(["serve", str(app.project.root), "--nproc", "0"]) == 1
    assert capsys.readouterr().err.strip() == "mersemi: error: --nproc: must be >= 1, got '0'"


def test_runner_reports_progress_and_failure():
    runner = TrainingRunner()

    def job(progress):
        progress("stage one", 0.25)
        progress("stage one", 0.5)
        progress("stage two", 0.75)
        raise RuntimeError("boom")

    assert runner.start(job, "test job")
    assert runner.wait(5)
    snap = runner.snapshot()
    assert snap["running"] is False and snap["error"] == "boom" and snap["message"] == "failed"
    assert [line.split("  ", 1)[1] for line in snap["log"]] == ["test job", "stage one", "stage two",
                                                                "failed: boom"]


def test_split_histogram_cuts_the_pool_at_the_threshold(app):
    from mersemi.service.review import round_view, split_histogram

    view = round_view(app.project)
    counts, edges = view.histogram(1)
    undecided = np.ones(len(view.pool_ids), bool)
    cut_edges, below, above, decided = split_histogram(view, 1, 0.8, undecided)
    assert (cut_edges == edges).all() and (below + above == counts).all() and decided.sum() == 0
    assert above.sum() == expected_count(1, 0.8) and below.sum() == counts.sum() - above.sum()
    assert not below[edges[:-1] >= 0.8].any() and not above[edges[1:] <= 0.8].any()


def test_the_histograms_candidates_are_the_undecided_ones(app):
    joy = [f"u{i:02d}" for i in range(1, N_POOL, 3)]            # predicted joy, confidence down from 0.98
    for name in joy[:3]:                                          # three candidates decided
        assert app.decide(name, "accept", "", "ann")["ok"]
    assert app.decide(joy[-1], "label", "joy", "ann")["ok"]      # and one sample below the threshold
    h = app.histograms()["classes"][1]
    table = {r["class"]: r for r in app.candidate_counts()["classes"]}
    assert sum(h["candidates"]) == table["joy"]["candidates"] == expected_count(1, 0.5) - 3
    assert sum(h["decided"]) == 4 and sum(h["below"]) == len(joy) - expected_count(1, 0.5) - 1


def test_every_refusal_carries_a_code_a_client_branches_on(app, monkeypatch):
    assert app.set_thresholds({"joy": 1.5}, "ann")["code"] == "invalid"
    assert app.next_candidate("all", "0.5")["code"] == "invalid"              # a number sent as a string
    n = app.accept_all("all", 0.0, "ann")
    assert n["code"] == "confirm" and n["count"] > 0
    held = app.next_candidate("all", 0.0, 0, "bob", "verify")["candidate"]["name"]   # on bob's screen now
    assert app.decide(held, "accept", "", "ann")["code"] == "claimed"
    assert app.training.train_round(config="nope")["code"] == "refused"
    monkeypatch.setattr(app.project, "status", lambda: 1 / 0)
    out = app.status()
    assert out["code"] == "internal" and "internal error in status" in out["error"]
    assert log(app) == []


def test_the_decision_log_export_writes_ids_as_whole_numbers(app):
    import csv

    assert app.decide("u49", "accept", "", "ann")["ok"] and app.undo("ann")["ok"]
    out = app.export("decisions")
    with open(out["file"], newline="") as f:
        rows = list(csv.DictReader(f))
    undone = rows[0]["id"]
    assert [(r["decision"], r["round"], r["undoes"]) for r in rows] == [("accept", "0", ""), ("undo", "0", undone)]
    assert all(r["id"].isdigit() for r in rows)
