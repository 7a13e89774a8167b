"""The review queue's other orders (engine/selection.review_queue, `order`), measured against the
default queue for the first decisions (bench/suite_methods.py --queue): margin sampling over every
open sample, and cluster-typical samples first."""
from __future__ import annotations

import numpy as np
import pytest

from mersemi.engine.selection import review_queue
from mersemi.engine.vocab import CardKind


def probs_of(top: list[float]) -> np.ndarray:
    """Two classes: sample i predicts class i % 2 with probability top[i]."""
    p = np.array([[t, 1 - t] for t in top])
    p[1::2] = p[1::2, ::-1]
    return p


def test_margin_orders_every_open_sample_by_its_top_two_gap_whatever_its_threshold():
    probs = probs_of([0.95, 0.55, 0.99, 0.75, 0.97, 0.51, 0.62])
    open_ = np.array([True, True, True, True, False, True, True])
    q = review_queue(probs, open_, [0.6, 0.9], "both", order="margin")
    assert q.order.tolist() == [5, 1, 6, 3, 0, 2]       # gaps 0.02, 0.1, 0.24, 0.5, 0.9, 0.98; row 4 is decided
    L, V = CardKind.LABEL, CardKind.VERIFY
    assert [e.kind for e in q] == [L, L, V, L, V, V]     # row 6 reaches class 0's threshold yet is unsure
    default = review_queue(probs, open_, [0.6, 0.9], "both")
    assert default.order.tolist() == [5, 1, 3, 6, 0, 2]  # below the thresholds first, then the candidates


def test_typical_puts_the_sample_nearest_each_cluster_centre_first_largest_cluster_first():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    sizes = [31, 21, 11]
    # each cluster: its centre (first row) and pairs mirrored around it, so k-means's centre is exact
    x = np.concatenate([np.r_[c + (h := rng.uniform(0.5, 1.5, ((n - 1) // 2, 2))), c[None], c - h]
                        for c, n in zip(centres, sizes)])
    first = [15, 31 + 10, 52 + 5]
    probs = probs_of(list(rng.uniform(0.5, 1.0, len(x))))
    q = review_queue(probs, np.ones(len(x), bool), [0.9, 0.9], "both", order="typical", features=x, clusters=3)
    assert q.order[:3].tolist() == first
    assert sorted(q.order.tolist()) == list(range(len(x)))          # then every other open sample, once
    rest = review_queue(probs, ~np.isin(np.arange(len(x)), first), [0.9, 0.9], "both")
    assert q.order[3:].tolist() == rest.order.tolist()              # in the default queue's order


def test_an_unknown_order_or_an_order_of_another_kind_or_typical_without_features_is_refused():
    probs = probs_of([0.9, 0.6])
    for kw, match in ((dict(kind="both", order="random"), "queue order must be one of default, margin, typical"),
                      (dict(kind="label", order="margin"), "kind both only"),
                      (dict(kind="both", order="typical"), "give features, one row per pool sample")):
        with pytest.raises(ValueError, match=match):
            review_queue(probs, np.ones(2, bool), [0.9, 0.9], **kw)
