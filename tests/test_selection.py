"""engine/selection.py and engine/self_training.py: the candidate, the target-precision
thresholds, the balance cap, the review queues. Small arrays whose answers can be worked out by
hand."""
import numpy as np
import pytest

from mersemi.engine.vocab import POOL_QUEUES
from mersemi.engine.selection import expected_precision, is_candidate, queue_orders, review_queue
from mersemi.engine.self_training import closed_if_unreachable, select, target_thresholds


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


def test_target_per_sample_admits_only_samples_that_reach_the_target_each():
    pred = np.array([0, 0, 0, 0, 0, 1, 1])
    conf = np.array([1.0, 0.98, 0.94, 0.90, 0.5, 0.93, 0.8])
    open_ = np.ones(7, bool)
    # the set reading admits .94 and .90 (mean .955); per sample the threshold is the target
    assert target_thresholds(pred, conf, open_, 2, 0.95, per="set") == [0.90, None]
    assert target_thresholds(pred, conf, open_, 2, 0.95, per="sample") == [0.95, None]
    assert target_thresholds(pred, conf, open_, 2, 0.93, per="sample") == [0.93, 0.93]
    # a class whose only sample that reaches it is decided cannot reach it
    assert target_thresholds(pred, conf, open_ & (conf != 0.93), 2, 0.93, per="sample") == [0.93, None]
    with pytest.raises(ValueError, match="target per"):
        target_thresholds(pred, conf, open_, 2, 0.95, per="each")


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


# ---------------------------------------------------------------------- edges (mutation testing)

def test_target_threshold_of_a_class_ignores_the_other_classes_and_empty_or_single_classes():
    # class 1's very confident samples must not lift class 0 to the target
    pred = np.array([0, 0, 1, 1, 1])
    conf = np.array([0.91, 0.80, 1.0, 1.0, 1.0])
    assert target_thresholds(pred, conf, np.ones(5, bool), 2, 0.95) == [None, 1.0]
    # an empty class before a full one, and a class of one sample
    assert target_thresholds(np.array([1, 2]), np.array([0.97, 0.99]), np.ones(2, bool), 3, 0.95) == \
        [None, 0.97, 0.99]


def test_a_bad_target_is_refused_with_the_exact_message():
    with pytest.raises(ValueError, match=r"^target precision must lie in \(0, 1\], got 1\.5$"):
        target_thresholds(np.zeros(1, int), np.ones(1), np.ones(1, bool), 1, 1.5)
    with pytest.raises(ValueError, match=r"^queue kind must be one of both, label, verify, got 'best'$"):
        review_queue(np.ones((1, 2)) / 2, np.ones(1, bool), [0.5, 0.5], "best")


def test_the_selections_picks_are_what_a_round_records():
    s = select(np.array([0, 0, 1]), np.array([0.912345, 0.95, 0.5]), np.ones(3, bool), [0.9, 0.9, 0.9], [1, 1, 1])
    assert {c: p.to_json() for c, p in s.picks(["a", "b", "c"]).items()} == {
        "a": {"candidates": 2, "accepted": 2, "disagreed": 0, "expected_precision": 0.9312},
        "b": {"candidates": 0, "accepted": 0, "disagreed": 0, "expected_precision": None},
        "c": {"candidates": 0, "accepted": 0, "disagreed": 0, "expected_precision": None}}
    # a gate that lets one candidate of a through: the other is counted as held back, not as no candidate
    s = select(np.array([0, 0, 1]), np.array([0.912345, 0.95, 0.5]), np.ones(3, bool), [0.9, 0.9, 0.9], [1, 1, 1],
               agree=np.array([False, True, True]))
    assert s.mask.tolist() == [False, True, False]
    assert s.picks(["a", "b", "c"])["a"].to_json() == {"candidates": 2, "accepted": 1, "disagreed": 1,
                                                       "expected_precision": 0.95}


def test_no_cap_by_default_and_a_cap_of_one_applies():
    pred = np.r_[np.zeros(50, int), np.ones(10, int)]
    conf = np.linspace(0.99, 0.96, 60)
    assert select(pred, conf, np.ones(60, bool), [0.9, 0.9], [1, 1]).kept == [50, 10]
    # cap 1, labeled shares 1/2 each: class 0 holds no more than half of all pseudo-labels
    assert select(pred, conf, np.ones(60, bool), [0.9, 0.9], [1, 1], balance_cap=1.0).kept == [10, 10]


def test_balance_cap_fixed_point_with_the_share_term_binding():
    # labeled 10 / 30, cap 2: class 0 may hold max(2 x 0.25 x T, 20); T = k0 + 100 gives k0 = 100
    pred = np.r_[np.zeros(500, int), np.ones(100, int)]
    conf = np.full(600, 0.99)
    assert select(pred, conf, np.ones(600, bool), [0.9, 0.9], [10, 30], balance_cap=2.0).kept == [100, 100]
    # with 5 candidates of class 1 the share term allows 5, the floor of 2 x 10 labeled wins
    pred5 = np.r_[np.zeros(500, int), np.ones(5, int)]
    assert select(pred5, conf[:505], np.ones(505, bool), [0.9, 0.9], [10, 30], balance_cap=2.0).kept == [20, 5]
    # one labeled sample in all: its class's share is 1, nothing capped
    assert select(pred, conf, np.ones(600, bool), [0.9, 0.9], [1, 0], balance_cap=1.0).kept == [500, 0]


def test_queues_of_one_sample_empty_queues_and_min_confidence_at_a_sample():
    one = np.array([[0.9, 0.1]])
    assert [e.index for e in review_queue(one, np.ones(1, bool), [0.5, 0.5], "verify")] == [0]
    assert [e.index for e in review_queue(one, np.ones(1, bool), [0.95, 0.95], "label")] == [0]
    assert review_queue(one, np.ones(1, bool), [0.5, 0.5], "label") == []       # it is a candidate
    assert review_queue(np.zeros((0, 2)), np.zeros(0, bool), [0.5, 0.5], "verify") == []
    probs = np.array([[0.8, 0.2], [0.7, 0.3]])
    q = review_queue(probs, np.ones(2, bool), [0.5, 0.5], "verify", min_confidence=0.7)
    assert [e.index for e in q] == [1, 0]                                       # 0.7 itself is kept


def test_label_queue_takes_turns_over_three_predicted_classes():
    probs = np.array([
        [0.40, 0.35, 0.25],   # 0: class 0, margin .05
        [0.41, 0.39, 0.20],   # 1: class 0, margin .02
        [0.30, 0.45, 0.25],   # 2: class 1, margin .15
        [0.20, 0.30, 0.50],   # 3: class 2, margin .20
        [0.21, 0.39, 0.40],   # 4: class 2, margin .01
        [0.42, 0.41, 0.17],   # 5: class 0, margin .01 (after 4 by index)
    ])
    q = review_queue(probs, np.ones(6, bool), [0.9, 0.9, 0.9], "label")
    # by margin: 4, 5, 1, 0, 2, 3; rank 0: 4 (c2), 5 (c0), 2 (c1); rank 1: 1 (c0), 3 (c2); rank 2: 0
    assert [e.index for e in q] == [4, 5, 2, 1, 3, 0]


def reference_queue(probs, open_, th, kind, cls, min_conf) -> list[tuple[int, bool]]:
    """The queues as their docstring defines them, written out with Python sorts."""
    pred, conf = probs.argmax(1), probs.max(1).astype(np.float64)
    ok = [i for i in range(len(probs)) if open_[i] and conf[i] >= min_conf and cls in (None, pred[i])]
    below = sorted((i for i in ok if conf[i] < th[pred[i]]),
                   key=lambda i: (np.diff(np.sort(probs[i].astype(np.float64))[-2:])[0], i))
    rank = {}
    seen: dict[int, int] = {}
    for i in below:
        rank[i] = seen.get(pred[i], 0)
        seen[pred[i]] = rank[i] + 1
    label = sorted(below, key=lambda i: (rank[i], below.index(i)))
    verify = sorted((i for i in ok if conf[i] >= th[pred[i]]), key=lambda i: (conf[i], i))
    return {"label": [(i, True) for i in label], "verify": [(i, False) for i in verify],
            "both": [(i, True) for i in label] + [(i, False) for i in verify]}[kind]


@pytest.mark.parametrize("kind", list(POOL_QUEUES))
def test_a_queue_filtered_from_kept_orders_is_the_queue_by_its_definition(kind):
    # The app sorts once per round, thresholds and filter (queue_orders) and keeps the open
    # samples per request: decided samples leaving must not reorder what is left.
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 1, (600, 4)) + 3 * rng.random((600, 1)) * np.eye(4)[rng.integers(0, 4, 600)]
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    th = [0.9, 0.8, 0.7, 0.95]
    for cls, min_conf in ((None, 0.0), (2, 0.0), (None, 0.6)):
        orders = queue_orders(probs, th, cls, min_conf)
        for share_open in (1.0, 0.7, 0.1):
            open_ = rng.random(600) < share_open
            q = review_queue(probs, open_, th, kind, cls, min_conf, orders=orders)
            want = reference_queue(probs, open_, th, kind, cls, min_conf)
            assert list(zip(q.order.tolist(), q.is_label.tolist())) == want and len(want) > 0



def test_a_class_that_cannot_reach_the_target_is_closed_to_all_but_certain_samples():
    found = target_thresholds(np.array([0, 1]), np.array([0.97, 0.6]), np.array([True, True]), 2, 0.9, "sample")
    assert found == [0.9, None]
    th = [closed_if_unreachable(t) for t in found]
    assert th == [0.9, 1.0]
    assert is_candidate(np.array([0, 1, 1]), np.array([0.97, 0.6, 0.999]), np.ones(3, bool), th).tolist() == \
        [True, False, False]
