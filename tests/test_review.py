"""service/review.py directly, on the fixture project of app_fixtures (pool u00..u59: class i % 3,
confidence falling from 0.99 to 0.40; gold l00..l29 with four in five out-of-fold predictions
right): the round view, open samples, the class table, suggestions, queue pages and positions."""
from __future__ import annotations

import numpy as np
import pytest

from app_fixtures import CLASSES, N_LABELED, N_POOL, make_review_project, pool_confidences, pool_probs
from mersemi.engine.thresholds import quantize
from mersemi.service import review
from mersemi.service.project import DecisionRequest, Project, ProjectError


@pytest.fixture
def project(tmp_path):
    p = make_review_project(tmp_path / "proj")
    yield p
    p.close()


def sid(i: int) -> int:
    """Sample id of pool sample u<i>."""
    return N_LABELED + i


def test_round_view_holds_the_rounds_arrays_and_is_cached(project):
    view = review.round_view(project)
    assert view.round_id == 0 and view.n_classes == 3
    assert view.pool_ids.tolist() == [sid(i) for i in range(N_POOL)]
    np.testing.assert_array_equal(view.pool_probs, pool_probs())
    assert view.pool_pred.tolist() == [i % 3 for i in range(N_POOL)]
    np.testing.assert_allclose(view.pool_conf, pool_confidences(), rtol=1e-6)
    assert view.oof_true.tolist() == [i % 3 for i in range(N_LABELED)]     # gold of l00..l29
    assert view.oof_pred.tolist() == [i % 3 if i % 5 else (i + 1) % 3 for i in range(N_LABELED)]
    np.testing.assert_allclose(view.oof_conf, [0.9 - 0.01 * i for i in range(N_LABELED)], rtol=1e-6)
    assert review.round_view(project) is view
    assert review.round_view(project, 0) is view


def test_round_view_refuses_without_a_finished_round(tmp_path, project):
    with Project.init(tmp_path / "empty", CLASSES) as empty:
        with pytest.raises(ProjectError, match="no finished round yet"):
            review.round_view(empty)
        assert review.queue_size(empty) == 0 and review.queue_position(empty, 1) is None
        with pytest.raises(ProjectError, match="no finished round yet"):
            review.next_candidates(empty)
    running = project.store.rounds.create(config={}, config_name="t", thresholds={}, auto_accept=False,
                                          pid=1, host="elsewhere")
    with pytest.raises(ProjectError, match="no finished round yet"):
        review.round_view(project, running)


def test_out_of_fold_precision_counts_samples_at_the_threshold(project):
    view = review.round_view(project)
    # calm is predicted for l<i> with i % 3 == 0 and i % 5 != 0 (right) and for i = 5, 20 (wrong)
    assert view.precision(0, 0.0) == (pytest.approx(8 / 10), 10)
    # l03 has oof confidence 0.87 exactly (float32): a threshold there keeps it
    at = float(view.oof_conf[3])
    assert view.precision(0, at) == (pytest.approx(1.0), 1)
    assert view.precision(0, 0.95) == (None, 0)


def test_histogram_spans_one_over_c_to_one_for_the_class(project):
    view = review.round_view(project)
    counts, edges = view.histogram(1)
    assert len(counts) == review.HIST_BINS and edges[0] == pytest.approx(1 / 3) and edges[-1] == 1.0
    assert counts.sum() == N_POOL // 3
    counts, edges = view.histogram(2, bins=4)
    want, _ = np.histogram(pool_confidences()[2::3], bins=4, range=(1 / 3, 1.0))
    assert counts.tolist() == want.tolist()


def test_open_mask_closes_decided_samples_and_other_reviewers_claims(project):
    view = review.round_view(project)
    project.decide([DecisionRequest("u04", "accept")], reviewer="ann")
    assert project.store.claims.take(sid(7), "bob", seconds=60) and project.store.claims.take(sid(8), "ann", seconds=60)
    closed = lambda mask: [i for i in range(N_POOL) if not mask[i]]   # noqa: E731
    assert closed(review.open_mask(project, view)) == [4]
    assert closed(review.open_mask(project, view, "ann")) == [4, 7]
    assert closed(review.open_mask(project, view, "bob")) == [4, 8]


def test_class_table_counts_candidates_and_the_decisions_per_class(project):
    project.decide([DecisionRequest("u00", "accept"), DecisionRequest("u03", "accept"),
                    DecisionRequest("u01", "reject"), DecisionRequest("u02", "relabel", "joy"),
                    DecisionRequest("u59", "label", "anger")], reviewer="ann")
    rows = {r["class"]: r for r in review.class_table(project)}
    conf = pool_confidences()
    calm = [conf[i] for i in range(0, N_POOL, 3) if conf[i] >= 0.5 and i not in (0, 3)]
    assert rows["calm"]["candidates"] == rows["calm"]["support"] == len(calm)
    assert rows["calm"]["expected_precision"] == pytest.approx(np.mean(calm))
    assert rows["calm"]["threshold"] == 0.5
    assert (rows["calm"]["verified"], rows["joy"]["rejected"], rows["joy"]["relabeled"],
            rows["anger"]["labeled"], rows["calm"]["pseudo"]) == (2, 1, 1, 1, 0)
    assert rows["calm"]["rejected"] == rows["calm"]["relabeled"] == rows["calm"]["labeled"] == 0
    assert rows["calm"]["oof_precision"] == pytest.approx(0.8) and rows["calm"]["oof_support"] == 10
    # thresholds given override the project's
    other = {r["class"]: r for r in review.class_table(project, {"calm": 0.9, "joy": 0.9, "anger": 0.9})}
    assert other["calm"]["threshold"] == 0.9
    assert other["calm"]["candidates"] == sum(1 for i in range(0, N_POOL, 3) if conf[i] >= 0.9 and i not in (0, 3))
    assert other["anger"]["oof_support"] == review.round_view(project).precision(2, 0.9)[1]


def test_suggest_thresholds_takes_ties_whole_and_only_open_samples(project):
    # joy's second and third most confident samples (u04, u07) get the same confidence, .95:
    # joy reads .98, .95, .95, .89, ... whose running means are .98, .965, .96, .94
    view = review.round_view(project)
    view.pool_probs[7] = view.pool_probs[4]
    view.pool_conf[7], view.pool_pred[7] = view.pool_conf[4], view.pool_pred[4]  # derived once per view
    found = review.suggest_thresholds(project, 0.962)
    # .95 would admit both tied samples (mean .96 < .962): the threshold stays at .98
    assert found["joy"] == quantize(float(view.pool_conf[1]))
    project.decide([DecisionRequest("u01", "reject"), DecisionRequest("u04", "reject")], reviewer="ann")
    after = review.suggest_thresholds(project, 0.97)
    conf = view.pool_conf
    joy = np.sort([conf[i] for i in range(1, N_POOL, 3) if i not in (1, 4)])[::-1]
    ok = np.flatnonzero(np.cumsum(joy) / np.arange(1, len(joy) + 1) >= 0.97)
    assert after["joy"] == (quantize(joy[ok[-1]]) if len(ok) else None)
    for bad in (0, 0.0, -1, 1.01, "0.9", None):
        with pytest.raises(ProjectError, match="target precision must lie in"):
            review.suggest_thresholds(project, bad)
    assert review.suggest_thresholds(project, 1) == {c: None for c in CLASSES}   # an int target is fine


def test_queue_page_defaults_to_both_queues_label_first_and_pages_it(project):
    conf = pool_confidences()
    below = [i for i in range(N_POOL) if conf[i] < 0.5]
    cards, total = review.queue_page(project)
    assert review.DEFAULT_QUEUE == "both"
    assert total == N_POOL and len(cards) == 1 and cards[0].kind == "label"
    assert review.queue_page(project, "")[1] == total
    assert review.queue_page(project, "label")[1] == len(below)
    everything = review.queue_page(project, limit=N_POOL)[0]
    assert [c.kind for c in everything] == ["label"] * len(below) + ["verify"] * (N_POOL - len(below))
    page, total2 = review.queue_page(project, "verify", limit=3, offset=2)
    assert total2 == N_POOL - len(below) and [c.kind for c in page] == ["verify"] * 3
    first = review.queue_page(project, "verify", limit=5)[0]
    assert [c.name for c in page] == [c.name for c in first[2:5]]
    c = first[0]
    i = int(c.name[1:])
    assert c.sample_id == sid(i) and c.predicted == i % 3 and c.confidence == pytest.approx(conf[i])
    np.testing.assert_array_equal(c.probs, pool_probs()[i])
    assert c.text == f"transcript of u{i:02d}" and c.reason.startswith("at or above threshold")
    assert review.queue_page(project, "verify", offset=10_000, limit=5) == ([], total2)
    joy = review.queue_page(project, "verify", cls="joy", limit=100)[0]
    assert joy and all(c.predicted == 1 for c in joy)
    assert review.queue_page(project, "verify", cls="all")[1] == total2
    assert review.queue_page(project, "verify", min_confidence=0.9)[1] == sum(conf >= 0.9)
    with pytest.raises(ProjectError, match="queue kind must be one of both, label, verify"):
        review.queue_page(project, "best")


def test_claimed_samples_leave_the_other_reviewers_page_only(project):
    first = review.queue_page(project, "verify")[0][0]
    assert project.store.claims.take(first.sample_id, "ann", seconds=60)
    assert review.queue_page(project, "verify", reviewer="bob")[0][0].sample_id != first.sample_id
    assert review.queue_page(project, "verify", reviewer="ann")[0][0].sample_id == first.sample_id


def test_queue_size_and_position_of_each_kind(project):
    conf = pool_confidences()
    assert review.queue_size(project) == sum(conf >= 0.5)
    assert review.queue_size(project, kind="label") == sum(conf < 0.5)
    label_first = review.queue_page(project, "label")[0][0]
    assert review.queue_position(project, label_first.sample_id, kind="label") == 0
    assert review.queue_position(project, label_first.sample_id) is None     # not in verify
    assert review.queue_position(project, 0) is None                         # l00: not in the pool
    last = max(range(N_POOL), key=lambda i: conf[i])                         # u00: last of verify
    assert review.queue_position(project, sid(last)) == sum(conf >= 0.5) - 1


def test_next_candidates_is_the_verify_queue(project):
    got = review.next_candidates(project, limit=3, offset=1)
    want = review.queue_page(project, "verify", limit=4)[0][1:]
    assert [c.name for c in got] == [c.name for c in want]


def test_paper_preset_reads_the_default_config(project):
    assert review.paper_preset(project) == {"calm": 0.95, "joy": 0.95, "anger": 0.95}


def test_media_kinds_by_suffix(project):
    for name, kind in (("a.wav", "audio"), ("a.mp3", "audio"), ("a.flac", "audio"), ("a.ogg", "audio"),
                       ("a.m4a", "audio"), ("a.mp4", "video"), ("a.avi", "video"), ("a.mkv", "video"),
                       ("a.webm", "video"), ("a.txt", None)):
        (project.media_root / name).write_bytes(b"x")
        path, got = review.media_file(project, name)
        assert got == kind, name
        assert path == ((project.media_root / name).resolve() if kind else None)
    (project.media_root / "sub").mkdir()
    assert review.media_file(project, "sub") == (None, None)        # a folder is no clip
    assert review.media_file(project, "") == (None, None)


def test_round_views_of_two_projects_are_kept_apart(tmp_path, project):
    import os
    import socket

    first = review.round_view(project)
    with make_review_project(tmp_path / "other") as other:
        store = other.store
        rid = store.rounds.create(config={}, config_name="t", thresholds={}, auto_accept=False,
                                  pid=os.getpid(), host=socket.gethostname())
        flipped = pool_probs()[:, ::-1].copy()
        store.rounds.complete(rid, predictions=[("pool", np.arange(N_LABELED, N_LABELED + N_POOL), flipped)],
                              decisions=[], reviewer="auto", composition={}, metrics={}, checkpoint=None)
        view = review.round_view(other)
        assert view.round_id == rid == 1 and first.round_id == 0
        np.testing.assert_array_equal(view.pool_probs, flipped)
    assert review.round_view(project) is first


def test_a_samples_card_is_the_one_its_queue_shows_and_the_one_a_decision_records(project):
    """One definition of the card (engine/selection.card_kind, card_reason): opened from the
    decision log (decisions.sample_card), shown in the queue, and recorded with a decision,
    a sample's card has the same kind and reason, at a threshold it reaches exactly too."""
    from mersemi.service.decisions import sample_card

    at = float(pool_confidences()[6])                      # u06 (class 0) sits exactly at class 0's threshold
    project.store.thresholds.set({0: at}, by="ann")
    cards = review.queue_page(project, limit=N_POOL)[0]
    assert {c.kind for c in cards} == {"label", "verify"}
    for c in cards:
        opened, _ = sample_card(project, c.name)
        assert (opened.kind, opened.reason) == (c.kind, c.reason), c.name
    u06 = next(c for c in cards if c.name == "u06")
    assert u06.kind == "verify" and u06.reason == f"at or above threshold: {at:.2f} >= {at:.2f}"
    below = next(c for c in cards if c.kind == "label")
    project.decide([DecisionRequest("u06", "accept"), DecisionRequest(below.name, "reject")], reviewer="ann")
    cards_of = {d.sample_id: d.card for d in project.store.decisions.log()}
    assert cards_of == {u06.sample_id: "verify", below.sample_id: "label"}
