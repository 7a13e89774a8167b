"""The self-training policy, in one place: the thresholds a finished round proposes, and the
candidates the automatic step accepts within the class-balance cap. Pure functions on arrays
(one entry per pool sample: `pred` the predicted class, `conf` its calibrated probability,
`open_` whether it is still undecided); the loop (engine/loop.py), which the round
(service/rounds.py), the app's preview and the benchmarks all drive, calls them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .results import ClassPick
from .selection import expected_precision, is_candidate
from .thresholds import TARGET_PER, check_target_precision, quantize


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
    check_target_precision(target)
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
    thresholds, how many of them the gate held back (the fold models disagree), how many the
    class balance kept of the rest, and the expected precision of those kept."""
    mask: np.ndarray
    candidates: list[int]
    kept: list[int]
    expected_precision: list[float | None]
    disagreed: list[int]

    def picks(self, classes: Sequence[str]) -> dict[str, ClassPick]:
        return {name: ClassPick(candidates=self.candidates[c], disagreed=self.disagreed[c], accepted=self.kept[c],
                                expected_precision=None if p is None else round(p, 4))
                for c, (name, p) in enumerate(zip(classes, self.expected_precision))}


BALANCES = ("cap", "quota", "no_starve")


def select(pred: np.ndarray, conf: np.ndarray, open_: np.ndarray, thresholds,
           labeled_per_class, pseudo_per_class=None, balance_cap: float = 0.0, balance: str = "cap",
           agree: np.ndarray | None = None) -> Selection:
    """The candidates the automatic step accepts. `agree` (None: every row): the rows the gate
    lets through (self_training.gate); a candidate outside it is held back before the class
    balance counts anything. balance "cap": with `balance_cap` m > 0 no
    class ends up with more than m times its labeled share of all pseudo-labels (those already
    accepted, `pseudo_per_class`, included), nor is held below m times its own labeled count
    (0 = no cap). balance "quota": every class ends up with its labeled share of the
    pseudo-labels, paced by the class with the fewest candidates for its share (`_quota_counts`).
    balance "no_starve": the cap, and nothing at all while a labeled class would be left with no
    pseudo-label (one class with none while the others get hundreds teaches the model not to
    predict it). A class held back keeps its most confident candidates."""
    pred, conf = np.asarray(pred, np.int64), np.asarray(conf, np.float64)
    n_classes = len(np.asarray(thresholds))
    at_threshold = is_candidate(pred, conf, open_, thresholds)
    cand = at_threshold if agree is None else at_threshold & np.asarray(agree, bool)
    n_cand = np.bincount(pred[cand], minlength=n_classes)
    disagreed = np.bincount(pred[at_threshold], minlength=n_classes) - n_cand
    keep = n_cand.copy()
    already = np.zeros(n_classes) if pseudo_per_class is None else np.asarray(pseudo_per_class, np.float64)
    if balance not in BALANCES:
        raise ValueError(f"balance must be one of {', '.join(BALANCES)}, got {balance!r}")
    if balance == "quota":
        keep = _quota_counts(n_cand, np.asarray(labeled_per_class, np.float64), already)
    elif balance_cap > 0:
        keep = _balanced_counts(n_cand, np.asarray(labeled_per_class, np.float64), already, balance_cap)
    if balance == "no_starve" and (already + keep == 0)[np.asarray(labeled_per_class) > 0].any():
        keep = np.zeros(n_classes, np.int64)
    mask = np.zeros(len(pred), bool)
    for c in range(n_classes):
        idx = np.flatnonzero(cand & (pred == c))
        if keep[c] < len(idx):
            idx = idx[np.argsort(-conf[idx], kind="stable")[:keep[c]]]
        mask[idx] = True
    prec, _ = expected_precision(pred, conf, mask, n_classes)
    return Selection(mask, [int(n + d) for n, d in zip(n_cand, disagreed)], [int(k) for k in keep], prec,
                     [int(d) for d in disagreed])


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


def _quota_counts(n_cand: np.ndarray, labeled: np.ndarray, already: np.ndarray) -> np.ndarray:
    """Per class k_c <= n_cand_c so that already_c + k_c is the class's labeled share of a total
    T, the largest T every labeled class can fill: a class the round cannot find candidates for
    holds every other class back instead of being starved by them (one class with no
    pseudo-labels while the others get hundreds teaches the model not to predict it: jvowels
    2 %, bench/results/README.md). A class without labels gets none."""
    share = labeled / max(labeled.sum(), 1.0)
    has = share > 0
    if not has.any():
        return np.zeros(len(n_cand), np.int64)
    total = float(np.min((already[has] + n_cand[has]) / share[has]))
    keep = np.floor(share * total + 1e-9 - already).clip(0, n_cand).astype(np.int64)
    if (already[has] + keep[has] == 0).any():   # rounding down would leave a small class out: nothing yet
        return np.zeros(len(n_cand), np.int64)
    return keep


def propose_thresholds(pred: np.ndarray, conf: np.ndarray, open_: np.ndarray, n_classes: int, *,
                       policy: str, target: float, per: str, fixed: Sequence[float]) -> tuple[list[float], list[int]]:
    """The thresholds the policy proposes after a round, quantized, and the classes that cannot
    reach the target (proposed 1.0: nothing below certainty is a candidate). policy
    "target_precision": `target_thresholds`; "fixed": the preset's `fixed` values."""
    if policy == "fixed":
        return [quantize(float(t)) for t in fixed], []
    found = target_thresholds(pred, conf, open_, n_classes, target, per)
    return ([quantize(closed_if_unreachable(t)) for t in found],
            [c for c, t in enumerate(found) if t is None])
