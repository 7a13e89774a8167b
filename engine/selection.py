"""Which pool samples a round offers: the one definition of a candidate, the expected precision
of a set of them, and the review queues (self_training.py builds the automatic step on these).

Pure functions on arrays (one entry per pool sample): `pred` the predicted class, `conf` its
calibrated probability, `open_` whether the sample is still undecided (no human or automatic
decision in force, not held by another reviewer). The app's counts, its queue, the command
line's `queue`, the automatic step of `train --auto-accept` and the benchmarks all call these.

Expected precision of a set of candidates is the mean of their calibrated confidences: once a
round's probabilities are calibrated (engine/calibration.py) a sample at 0.9 is right nine
times in ten, so the set's expected share of right predictions is its mean confidence. Unlike
the out-of-fold precision it needs no gold samples above the threshold, which a few-label
project does not have.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .vocab import POOL_QUEUES, CardKind, QueueKind


def reaches_threshold(pred, conf, thresholds) -> np.ndarray:
    """THE rule: a confidence reaches (is at or above) the threshold of its predicted class.
    Arrays or scalars; a candidate and a verify card both mean this."""
    th = np.asarray(thresholds, np.float64)
    return np.asarray(conf) >= th[np.asarray(pred, np.int64)]


def is_candidate(pred: np.ndarray, conf: np.ndarray, open_: np.ndarray, thresholds) -> np.ndarray:
    """THE candidate: an undecided pool sample whose confidence reaches the threshold of its
    predicted class."""
    return np.asarray(open_, bool) & reaches_threshold(pred, conf, thresholds)


def card_kind(pred: int, conf: float, thresholds) -> CardKind:
    """The card a pool sample is shown on: verify when it reaches its predicted class's
    threshold (a candidate, decided or not), label below it."""
    return CardKind.VERIFY if reaches_threshold(pred, conf, thresholds) else CardKind.LABEL


def card_reason(kind: CardKind, probs: np.ndarray, threshold: float) -> str:
    """Why a sample is on a card of `kind`, from its probabilities and its predicted class's
    threshold: what the card and `mersemi queue` say."""
    pred = int(probs.argmax())
    if kind == CardKind.LABEL:
        second = float(np.sort(probs)[-2]) if len(probs) > 1 else 0.0
        return f"below threshold: top two classes {probs[pred]:.2f} / {second:.2f}"
    return f"at or above threshold: {probs[pred]:.2f} >= {threshold:.2f}"


def expected_precision(pred: np.ndarray, conf: np.ndarray, mask: np.ndarray,
                       n_classes: int) -> tuple[list[float | None], list[int]]:
    """Per class: (mean confidence of the masked samples predicted that class, or None when
    there are none; their count)."""
    pred, conf, mask = np.asarray(pred), np.asarray(conf, np.float64), np.asarray(mask, bool)
    counts = np.bincount(pred[mask], minlength=n_classes)
    sums = np.bincount(pred[mask], weights=conf[mask], minlength=n_classes)
    return ([float(s / n) if n else None for s, n in zip(sums, counts)],
            [int(n) for n in counts])


# ---------------------------------------------------------------------- review queues

@dataclass(frozen=True)
class QueueEntry:
    index: int        # position in the pool arrays
    kind: CardKind
    reason: str


class ReviewQueue(Sequence):
    """A review queue as arrays: pool positions in queue order and whether each is a label
    card. Entries (with their reason text) are built only for what is read, so a page of a
    100,000-sample queue costs a page, not the queue."""

    def __init__(self, order: np.ndarray, is_label: np.ndarray, probs: np.ndarray, thresholds: np.ndarray):
        self.order, self.is_label = np.asarray(order, np.int64), np.asarray(is_label, bool)
        self.probs, self.thresholds = probs, thresholds

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            return [self._entry(j) for j in range(*k.indices(len(self)))]
        if not -len(self) <= k < len(self):
            raise IndexError(k)
        return self._entry(k % len(self))

    def __eq__(self, other) -> bool:
        return list(self) == list(other) if isinstance(other, (list, ReviewQueue)) else NotImplemented

    def __add__(self, other: ReviewQueue) -> ReviewQueue:
        return ReviewQueue(np.r_[self.order, other.order], np.r_[self.is_label, other.is_label],
                           self.probs, self.thresholds)

    def position(self, index: int) -> int | None:
        """Where pool position `index` stands in the queue (None: not in it)."""
        at = np.flatnonzero(self.order == index)
        return int(at[0]) if len(at) else None

    def _entry(self, k: int) -> QueueEntry:
        i = int(self.order[k])
        row = self.probs[i]
        kind = CardKind.LABEL if self.is_label[k] else CardKind.VERIFY
        return QueueEntry(i, kind, card_reason(kind, row, float(self.thresholds[int(row.argmax())])))


def queue_orders(probs: np.ndarray, thresholds, cls: int | None = None, min_confidence: float = 0.0, *,
                 pred: np.ndarray | None = None, conf: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The sorting behind the review queues, over every pool sample whether decided or not:
    (samples below their threshold by the gap between their top two classes, then by
    position; samples at or above it by confidence, then by position). Keeping only the open
    samples keeps this order, so a caller may compute it once per round and thresholds and
    filter per request (`review_queue(..., orders=)`): the sorting is most of a queue's cost."""
    th = np.asarray(thresholds, np.float64)
    pred = probs.argmax(1) if pred is None else pred
    conf = np.asarray(probs[np.arange(len(probs)), pred] if conf is None else conf, np.float64)
    keep = conf >= min_confidence
    if cls is not None:
        keep &= pred == cls
    above = reaches_threshold(pred, conf, th)
    idx = np.flatnonzero(keep & ~above)
    top2 = np.sort(np.asarray(probs[idx], np.float64), axis=1)[:, -2:] if len(idx) else np.zeros((0, 2))
    by_margin = idx[np.lexsort((idx, top2[:, 1] - top2[:, 0]))]
    idx = np.flatnonzero(keep & above)
    return by_margin, idx[np.lexsort((idx, conf[idx]))]


def review_queue(probs: np.ndarray, open_: np.ndarray, thresholds, kind: str,
                 cls: int | None = None, min_confidence: float = 0.0, *,
                 pred: np.ndarray | None = None, conf: np.ndarray | None = None,
                 orders: tuple[np.ndarray, np.ndarray] | None = None, order: str = "default",
                 features: np.ndarray | None = None, clusters: int = 25) -> ReviewQueue:
    """The review queue of one kind, in the order the reviewer sees it.

    both: the label queue, then the verify queue.
    verify: candidates (at or above their threshold), least confident first: the riskiest
    pseudo-labels, where a rejection or a relabel changes the most.
    label: undecided samples below their threshold, smallest gap between the top two classes
    first, taken in turn from each predicted class so that one confusing class does not fill
    the queue. `cls` keeps one predicted class; `min_confidence` drops samples below it.
    This runs on every key press of the review page: `pred` and `conf` (argmax and max of
    `probs`) and `orders` (queue_orders of the same arguments) spare recomputing them.

    `order` (kind both only) other than the default, to measure against it: "margin" is every
    open sample by the gap between its top two classes, smallest first, whatever its threshold
    (margin sampling, Bahri et al. 2022); "typical" is, of `clusters` k-means clusters of the
    open samples' `features` ([n_pool, d]), the sample nearest each centre, largest cluster
    first (TypiClust-style, Hacohen et al. 2022), then the default queue."""
    if kind not in POOL_QUEUES:   # the queues of voted cards are service/vote_queues.py's
        raise ValueError(f"queue kind must be one of {', '.join(POOL_QUEUES)}, got {kind!r}")
    if order not in QUEUE_ORDERS or (order != "default" and kind != QueueKind.BOTH):
        raise ValueError(f"queue order must be one of {', '.join(QUEUE_ORDERS)} (other than default: kind both "
                         f"only), got {order!r} with kind {kind!r}")
    th = np.asarray(thresholds, np.float64)
    if len(probs) == 0:
        return ReviewQueue(np.zeros(0, np.int64), np.zeros(0, bool), probs, th)
    pred = probs.argmax(1) if pred is None else pred
    if order == "margin":
        return _margin_queue(probs, np.asarray(open_, bool), th, pred)
    if order == "typical":
        if features is None or len(features) != len(probs):
            raise ValueError("queue order typical: give features, one row per pool sample")
        first = _typical(np.asarray(features, np.float64), np.asarray(open_, bool), clusters)
        rest = review_queue(probs, np.asarray(open_, bool) & ~np.isin(np.arange(len(probs)), first), th, kind,
                            cls, min_confidence, pred=pred)
        return ReviewQueue(first, ~reaches_threshold(pred[first], probs[first, pred[first]], th), probs, th) + rest
    by_margin, by_conf = orders if orders is not None else queue_orders(
        probs, th, cls, min_confidence, pred=pred, conf=conf)
    open_ = np.asarray(open_, bool)
    parts = []
    if kind in (QueueKind.BOTH, QueueKind.LABEL):
        # Where the model is least sure first; once that runs out (low thresholds leave few
        # samples below them), the riskiest candidates.
        label = by_margin[open_[by_margin]]
        parts.append(ReviewQueue(_round_robin(label, pred), np.ones(len(label), bool), probs, th))
    if kind in (QueueKind.BOTH, QueueKind.VERIFY):
        verify = by_conf[open_[by_conf]]
        parts.append(ReviewQueue(verify, np.zeros(len(verify), bool), probs, th))
    return parts[0] if len(parts) == 1 else parts[0] + parts[1]


QUEUE_ORDERS = ("default", "margin", "typical")


def _margin_queue(probs: np.ndarray, open_: np.ndarray, th: np.ndarray, pred: np.ndarray) -> ReviewQueue:
    idx = np.flatnonzero(open_)
    top2 = np.sort(np.asarray(probs[idx], np.float64), axis=1)[:, -2:]
    idx = idx[np.lexsort((idx, top2[:, 1] - top2[:, 0]))]
    return ReviewQueue(idx, ~reaches_threshold(pred[idx], probs[idx, pred[idx]], th), probs, th)


def _typical(features: np.ndarray, open_: np.ndarray, clusters: int) -> np.ndarray:
    """Pool positions: per k-means cluster of the open samples, the one nearest its centre,
    largest cluster first (seeded: the same queue for the same round)."""
    from sklearn.cluster import KMeans

    idx = np.flatnonzero(open_)
    k = min(clusters, len(idx))
    if k == 0:
        return idx
    x = features[idx]
    km = KMeans(k, n_init=3, random_state=0).fit(x)
    dist = np.linalg.norm(x - km.cluster_centers_[km.labels_], axis=1)
    sizes = np.bincount(km.labels_, minlength=k)
    picks = [idx[np.flatnonzero(km.labels_ == c)[np.argmin(dist[km.labels_ == c])]]
             for c in np.argsort(-sizes, kind="stable") if sizes[c]]
    return np.asarray(picks, np.int64)


def _round_robin(order: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """`order` re-interleaved: the first of each predicted class, then the second of each, ..."""
    if len(order) == 0:
        return order
    cls = pred[order]
    rank = np.zeros(len(order), np.int64)
    for c in np.unique(cls):
        at = np.flatnonzero(cls == c)
        rank[at] = np.arange(len(at))
    return order[np.lexsort((np.arange(len(order)), rank))]
