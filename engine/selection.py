"""Which pool samples a round offers: the one definition of a candidate, the thresholds a
target precision implies, the class-balance cap, and the two review queues.

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

from .vocab import QueueKind



def is_candidate(pred: np.ndarray, conf: np.ndarray, open_: np.ndarray, thresholds) -> np.ndarray:
    """THE candidate: an undecided pool sample whose confidence reaches the threshold of its
    predicted class."""
    th = np.asarray(thresholds, np.float64)
    return np.asarray(open_, bool) & (np.asarray(conf) >= th[np.asarray(pred, np.int64)])


def expected_precision(pred: np.ndarray, conf: np.ndarray, mask: np.ndarray,
                       n_classes: int) -> tuple[list[float | None], list[int]]:
    """Per class: (mean confidence of the masked samples predicted that class, or None when
    there are none; their count)."""
    pred, conf, mask = np.asarray(pred), np.asarray(conf, np.float64), np.asarray(mask, bool)
    counts = np.bincount(pred[mask], minlength=n_classes)
    sums = np.bincount(pred[mask], weights=conf[mask], minlength=n_classes)
    return ([float(s / n) if n else None for s, n in zip(sums, counts)],
            [int(n) for n in counts])


TARGET_PER = ("set", "sample")


def closed_if_unreachable(threshold: float | None) -> float:
    """The threshold a class gets from `target_thresholds`: 1.0 (nothing below certainty is a
    candidate) for a class that cannot reach the target."""
    return 1.0 if threshold is None else threshold


def target_thresholds(pred: np.ndarray, conf: np.ndarray, open_: np.ndarray, n_classes: int,
                      target: float, per: str = "set") -> list[float | None]:
    """Per class, the lowest threshold at which the class's candidates have an expected
    precision >= `target`; None when not even the most confident one reaches it.

    per="set": their mean confidence reaches the target. per="sample": each one's does, i.e.
    the threshold is the target itself (None when no open sample of the class reaches it).
    The set reading admits more; the sample reading keeps every subset at the target, which
    matters when automatic rounds accept again and again (each round's set would otherwise
    bring its own tail below the target)."""
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target precision must lie in (0, 1], got {target}")
    if per not in TARGET_PER:
        raise ValueError(f"target per must be one of {', '.join(TARGET_PER)}, got {per!r}")
    out: list[float | None] = []
    for c in range(n_classes):
        sel = np.asarray(open_, bool) & (np.asarray(pred) == c)
        cs = np.sort(np.asarray(conf, np.float64)[sel])[::-1]
        if len(cs) == 0:
            out.append(None)
            continue
        if per == "sample":
            out.append(float(target) if cs[0] >= target - 1e-12 else None)
            continue
        mean = np.cumsum(cs) / np.arange(1, len(cs) + 1)   # non-increasing in k
        # A threshold at cs[k] admits every sample tied with it: only the last index of a run
        # of equal values is a threshold one can set.
        last_of_run = np.r_[cs[1:] != cs[:-1], True]
        ok = np.flatnonzero(last_of_run & (mean >= target - 1e-12))
        out.append(float(cs[ok[-1]]) if len(ok) else None)
    return out


@dataclass(frozen=True)
class Selection:
    """What the automatic step takes: `mask` over the pool, and per class the candidates at the
    thresholds, how many the balance cap kept, and the expected precision of those kept."""
    mask: np.ndarray
    candidates: list[int]
    kept: list[int]
    expected_precision: list[float | None]

    def as_dict(self, classes: list[str]) -> dict:
        return {name: {"candidates": self.candidates[c], "accepted": self.kept[c],
                       "expected_precision": None if p is None else round(p, 4)}
                for c, (name, p) in enumerate(zip(classes, self.expected_precision))}


def select(pred: np.ndarray, conf: np.ndarray, open_: np.ndarray, thresholds,
           labeled_per_class, pseudo_per_class=None, balance_cap: float = 0.0) -> Selection:
    """The candidates the automatic step accepts. With `balance_cap` m > 0 no class ends up
    with more than m times its labeled share of all pseudo-labels (those already accepted,
    `pseudo_per_class`, included), nor is held below m times its own labeled count; a capped
    class keeps its most confident candidates. 0 = no cap."""
    pred, conf = np.asarray(pred, np.int64), np.asarray(conf, np.float64)
    n_classes = len(np.asarray(thresholds))
    cand = is_candidate(pred, conf, open_, thresholds)
    n_cand = np.bincount(pred[cand], minlength=n_classes)
    keep = n_cand.copy()
    if balance_cap > 0:
        keep = _balanced_counts(n_cand, np.asarray(labeled_per_class, np.float64),
                                np.zeros(n_classes) if pseudo_per_class is None
                                else np.asarray(pseudo_per_class, np.float64), balance_cap)
    mask = np.zeros(len(pred), bool)
    for c in range(n_classes):
        idx = np.flatnonzero(cand & (pred == c))
        if keep[c] < len(idx):
            idx = idx[np.argsort(-conf[idx], kind="stable")[:keep[c]]]
        mask[idx] = True
    prec, _ = expected_precision(pred, conf, mask, n_classes)
    return Selection(mask, [int(n) for n in n_cand], [int(k) for k in keep], prec)


def _balanced_counts(n_cand: np.ndarray, labeled: np.ndarray, already: np.ndarray,
                     cap: float) -> np.ndarray:
    """Largest per-class counts k <= n_cand with already_c + k_c <= max(cap * share_c * T,
    cap * labeled_c), T the total pseudo-labels afterwards: a fixed point reached from above
    (T only shrinks, so the loop ends)."""
    share = labeled / max(labeled.sum(), 1.0)
    k = n_cand.astype(np.int64)
    while True:
        total = already.sum() + k.sum()
        limit = np.floor(np.maximum(cap * share * total, cap * labeled) - already).clip(min=0)
        new = np.minimum(n_cand, limit).astype(np.int64)
        if (new == k).all():
            return k
        k = new


# ---------------------------------------------------------------------- review queues

@dataclass(frozen=True)
class QueueEntry:
    index: int        # position in the pool arrays
    kind: str         # "verify" | "label"
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
        pred = int(row.argmax())
        if self.is_label[k]:
            second = float(np.sort(row)[-2]) if len(row) > 1 else 0.0
            return QueueEntry(i, "label", f"below threshold: top two classes {row[pred]:.2f} / {second:.2f}")
        return QueueEntry(i, "verify", f"at or above threshold: {row[pred]:.2f} >= {self.thresholds[pred]:.2f}")


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
    above = conf >= th[pred]
    idx = np.flatnonzero(keep & ~above)
    top2 = np.sort(np.asarray(probs[idx], np.float64), axis=1)[:, -2:] if len(idx) else np.zeros((0, 2))
    by_margin = idx[np.lexsort((idx, top2[:, 1] - top2[:, 0]))]
    idx = np.flatnonzero(keep & above)
    return by_margin, idx[np.lexsort((idx, conf[idx]))]


def review_queue(probs: np.ndarray, open_: np.ndarray, thresholds, kind: str,
                 cls: int | None = None, min_confidence: float = 0.0, *,
                 pred: np.ndarray | None = None, conf: np.ndarray | None = None,
                 orders: tuple[np.ndarray, np.ndarray] | None = None) -> ReviewQueue:
    """The review queue of one kind, in the order the reviewer sees it.

    both: the label queue, then the verify queue.
    verify: candidates (at or above their threshold), least confident first: the riskiest
    pseudo-labels, where a rejection or a relabel changes the most.
    label: undecided samples below their threshold, smallest gap between the top two classes
    first, taken in turn from each predicted class so that one confusing class does not fill
    the queue. `cls` keeps one predicted class; `min_confidence` drops samples below it.
    This runs on every key press of the review page: `pred` and `conf` (argmax and max of
    `probs`) and `orders` (queue_orders of the same arguments) spare recomputing them."""
    if kind not in tuple(QueueKind):
        raise ValueError(f"queue kind must be one of {', '.join(QueueKind)}, got {kind!r}")
    th = np.asarray(thresholds, np.float64)
    if len(probs) == 0:
        return ReviewQueue(np.zeros(0, np.int64), np.zeros(0, bool), probs, th)
    pred = probs.argmax(1) if pred is None else pred
    by_margin, by_conf = orders if orders is not None else queue_orders(
        probs, th, cls, min_confidence, pred=pred, conf=conf)
    open_ = np.asarray(open_, bool)
    parts = []
    if kind in ("both", "label"):
        # Where the model is least sure first; once that runs out (low thresholds leave few
        # samples below them), the riskiest candidates.
        label = by_margin[open_[by_margin]]
        parts.append(ReviewQueue(_round_robin(label, pred), np.ones(len(label), bool), probs, th))
    if kind in ("both", "verify"):
        verify = by_conf[open_[by_conf]]
        parts.append(ReviewQueue(verify, np.zeros(len(verify), bool), probs, th))
    return parts[0] if len(parts) == 1 else parts[0] + parts[1]


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
