"""engine/selection.py: the candidate, the target-precision thresholds, the balance cap, the
review queues. Small arrays whose answers can be worked out by hand."""
import numpy as np
import pytest

from mersemi.engine.selection import (expected_precision, is_candidate, review_queue, select,
                                      target_thresholds)


def test_a_candidate_is_undecided_and_at_or_above_its_class_threshold():
    pred = np.array([0, 0, 1, 1, 1])
    conf = np.array([0.90, 0.80, 0.70, 0.60, 0.95])
    open_ = np.array([True, True, True, True, False])
    assert is_candidate(pred, conf, open_, [0.85, 0.60]).tolist() == [True, False, True, True, False]
    # exactly at the threshold counts
    assert is_candidate(np.array([0]), np.array([0.5]), np.array([True]), [0.5]).tolist() == [True]


def test_target_threshold_is_the_lowest_whose_mean_confidence_reaches_the_target():
    pred = np.zeros(5, int)
    conf = np.array([1.0, 0.98, 0.94, 0.90, 0.5])
    open_ = np.ones(5, bool)
    # means from the top: 1.0, .99, .9733, .955, .864
    assert target_thresholds(pred, conf, open_, 1, 0.95) == [0.90]
    assert target_thresholds(pred, conf, open_, 1, 0.97) == [0.94]
    assert target_thresholds(pred, conf, open_, 1, 1.0) == [1.0]
    # unreachable class and an empty class: None, not an error
    assert target_thresholds(np.array([0, 0]), np.array([0.6, 0.5]), np.ones(2, bool), 2, 0.9) == [None, None]


def test_target_threshold_never_splits_a_run_of_ties():
    pred = np.zeros(4, int)
    conf = np.array([1.0, 0.9, 0.9, 0.9])      # means 1.0, .95, .933, .925
    assert target_thresholds(pred, conf, np.ones(4, bool), 1, 0.95) == [1.0]


def test_target_threshold_ignores_decided_samples_and_refuses_a_bad_target():
    pred, conf = np.zeros(3, int), np.array([0.99, 0.97, 0.5])
    assert target_thresholds(pred, conf, np.array([True, True, False]), 1, 0.95) == [0.97]
    for bad in (0.0, -0.1, 1.01):
        with pytest.raises(ValueError, match="target precision"):
            target_thresholds(pred, conf, np.ones(3, bool), 1, bad)


def test_expected_precision_is_the_mean_confidence_per_class():
    prec, n = expected_precision(np.array([0, 0, 1]), np.array([0.9, 0.7, 0.6]), np.array([True, True, False]), 3)
    assert prec[0] == pytest.approx(0.8) and prec[1] is None and prec[2] is None
    assert n == [2, 0, 0]


def test_balance_cap_keeps_an_easy_class_from_flooding_the_pseudo_labels():
    rng = np.random.default_rng(0)
    # class 0 has 500 confident candidates, class 1 has 20; labeled 10 / 30 (share 0.25 / 0.75)
    pred = np.r_[np.zeros(500, int), np.ones(20, int)]
    conf = np.r_[rng.uniform(0.96, 1.0, 500), rng.uniform(0.96, 1.0, 20)]
    open_ = np.ones(520, bool)
    free = select(pred, conf, open_, [0.95, 0.95], [10, 30], balance_cap=0)
    assert free.kept == [500, 20] and free.mask.sum() == 520 and free.candidates == [500, 20]
    capped = select(pred, conf, open_, [0.95, 0.95], [10, 30], balance_cap=2.0)
    k0, k1 = capped.kept
    assert capped.candidates == [500, 20]
    assert k1 == 20
    # at most 2 x 0.25 of all pseudo-labels, but never held below 2 x its 10 labeled
    assert k0 == 20
    assert capped.mask.sum() == k0 + k1
    # the capped class keeps its most confident candidates
    chosen = conf[:500][capped.mask[:500]]
    assert chosen.min() >= np.sort(conf[:500])[-k0]
    # pseudo-labels accepted earlier count against the cap
    later = select(pred, conf, open_, [0.95, 0.95], [10, 30], pseudo_per_class=[40, 0], balance_cap=2.0)
    assert later.kept == [0, 20]


def test_verify_queue_is_candidates_least_confident_first():
    probs = np.array([[0.97, 0.03], [0.91, 0.09], [0.6, 0.4], [0.2, 0.8], [0.99, 0.01]])
    open_ = np.array([True, True, True, True, False])
    q = review_queue(probs, open_, [0.9, 0.7], "verify")
    assert [e.index for e in q] == [3, 1, 0]
    assert all(e.kind == "verify" for e in q)
    assert q[0].reason == "at or above threshold: 0.80 >= 0.70"
    assert [e.index for e in review_queue(probs, open_, [0.9, 0.7], "verify", cls=0)] == [1, 0]
    assert [e.index for e in review_queue(probs, open_, [0.9, 0.7], "verify", min_confidence=0.95)] == [0]


def test_label_queue_is_below_threshold_smallest_margin_first_in_turn_per_class():
    probs = np.array([
        [0.50, 0.45, 0.05],   # 0: class 0, margin .05
        [0.40, 0.38, 0.22],   # 1: class 0, margin .02
        [0.30, 0.60, 0.10],   # 2: class 1, margin .30
        [0.10, 0.45, 0.45],   # 3: class 1 (tie, argmax first), margin 0
        [0.34, 0.33, 0.33],   # 4: class 0, margin .01
        [0.05, 0.05, 0.90],   # 5: a candidate of class 2 at 0.8
    ])
    q = review_queue(probs, np.ones(6, bool), [0.8, 0.8, 0.8], "label")
    # by margin: 3 (0), 4 (.01), 1 (.02), 0 (.05), 2 (.30); round-robin over predicted classes
    # rank 0: 3 (class 1), 4 (class 0); rank 1: 1 (class 0), 2 (class 1); rank 2: 0
    assert [e.index for e in q] == [3, 4, 1, 2, 0]
    assert q[1].reason == "below threshold: top two classes 0.34 / 0.33"
    assert all(e.kind == "label" for e in q)


def test_both_queue_is_the_label_queue_then_the_verify_queue():
    probs = np.array([[0.97, 0.03], [0.55, 0.45], [0.6, 0.4], [0.2, 0.8], [0.99, 0.01]])
    open_ = np.array([True, True, True, True, False])
    q = review_queue(probs, open_, [0.9, 0.7], "both")
    assert [(e.index, e.kind) for e in q] == [(1, "label"), (2, "label"), (3, "verify"), (0, "verify")]
    assert [e.index for e in review_queue(probs, open_, [0.9, 0.7], "both", cls=1)] == [3]


def test_unknown_queue_kind_is_refused():
    with pytest.raises(ValueError, match="queue kind"):
        review_queue(np.ones((1, 2)) / 2, np.ones(1, bool), [0.5, 0.5], "best")
