"""The folds of a round: the evaluation scheme the gold labels allow, the stratified folds
(evaluation folds hold gold rows only), which extra rows train which fold, and each epoch's
sampling order with oversampling."""
from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .config_schema import FinetuneConfig


class LabeledRows(Protocol):
    """What the folds read of a round's training set (train.TrainSet has it): the gold rows and
    labels, the extra rows and labels, and which extra labels came from the model."""
    gold_rows: np.ndarray
    gold_labels: np.ndarray
    extra_rows: np.ndarray
    extra_labels: np.ndarray
    extra_from_model: np.ndarray | None
    extra_targets: np.ndarray | None


@dataclass
class Fold:
    train_rows: np.ndarray    # global rows: the fold's gold training rows, then every extra row
    train_labels: np.ndarray
    eval_pos: np.ndarray      # positions into gold_rows/gold_labels held out in this fold
    # per training row the class distribution it trains on, when extra rows have their own
    # (LabeledRows.extra_targets; gold rows one-hot), or the doubly robust loss's signed
    # mixture (doubly_robust_targets); None: train_labels alone
    train_targets: np.ndarray | None = None


MIN_GOLD_PER_CLASS = 2


def gold_problem(counts: Sequence[int], classes: Sequence[str]) -> str | None:
    """The one rule for the labeled (gold) samples a round needs, in a line, or None: every
    class at least MIN_GOLD_PER_CLASS, one to train on while another is held out. The import
    and the round both ask it (gold labels come only from the import)."""
    missing = [c for c, n in zip(classes, counts) if n == 0]
    if missing:
        return (f"class {missing[0]!r} has no labeled sample; every class needs at least {MIN_GOLD_PER_CLASS} "
                f"(missing: {', '.join(missing)})")
    few = [(c, n) for c, n in zip(classes, counts) if n < MIN_GOLD_PER_CLASS]
    if few:
        return (f"class {few[0][0]!r} has {few[0][1]} labeled sample; every class needs at least "
                f"{MIN_GOLD_PER_CLASS} (one to train on while another is held out): label more")
    return None


def eval_scheme(counts: np.ndarray, fc: FinetuneConfig) -> dict:
    """The evaluation scheme a round's gold labels allow: stratified K folds, K at most
    `finetune.folds` and at most the count of the class `finetune.fold_cap` names (smallest:
    every fold evaluates every class; largest: a class with fewer samples than folds is
    evaluated in as many folds as it has samples, and the folds train on more). Recorded with
    the round, with a line that says it."""
    counts = np.asarray(counts)
    bound = int(counts.min() if fc.fold_cap == "smallest" else counts.max())
    k = max(2, min(fc.folds, bound))
    short = [int(c) for c in np.flatnonzero(counts < k)]
    text = f"stratified {k}-fold cross-validation on {int(counts.sum())} gold samples"
    if k < fc.folds:
        text += f" (finetune.folds {fc.folds}; the {fc.fold_cap} class has {bound})"
    if short:
        text += f"; {len(short)} class(es) with fewer samples than folds are evaluated in fewer folds"
    return {"folds": k, "fold_cap": fc.fold_cap, "smallest_class": int(counts.min()),
            "largest_class": int(counts.max()), "text": text}


def fold_key(gold_rows: np.ndarray, gold_labels: np.ndarray, k: int, seed: int) -> str:
    """What decides the folds: two rounds with the same key split the gold rows the same way,
    so fold k of one is the predecessor of fold k of the other."""
    h = hashlib.sha1(f"{k}:{seed}:".encode())
    h.update(np.ascontiguousarray(gold_rows, np.int64).tobytes())
    h.update(np.ascontiguousarray(gold_labels, np.int64).tobytes())
    return h.hexdigest()[:16]


def make_folds(data: LabeledRows, n_classes: int, k: int, seed: int, votes: np.ndarray | None = None,
               teacher: np.ndarray | None = None) -> list[Fold]:
    """Stratified K folds of the gold rows (shuffled, seeded). Evaluation folds hold gold
    rows only; every extra row joins every training fold, but a label from the model joins
    fold k only where fold k's predecessor voted for it (`votes`, see train.Prior). With
    `teacher` (per gold row the round in force's out-of-fold class, -1: none) a fold with
    pseudo-labels trains on the doubly robust loss (`doubly_robust_targets`)."""
    from sklearn.model_selection import StratifiedKFold   # a second of start-up: only training needs it

    with warnings.catch_warnings():
        # Tiny classes are reported by _validate with their ids; sklearn's warning says the
        # same without them.
        warnings.filterwarnings("ignore", message=".*least populated class.*")
        splits = list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
                      .split(np.zeros(len(data.gold_labels)), data.gold_labels))
    eye = np.eye(n_classes, dtype=np.float32)
    from_model = np.zeros(len(data.extra_rows), bool) if data.extra_from_model is None else data.extra_from_model
    folds = []
    for fold, (tr, ev) in enumerate(splits):
        keep = extra_in_fold(data, fold, votes)
        extra = eye[data.extra_labels[keep]] if data.extra_targets is None else data.extra_targets[keep]
        targets = None if data.extra_targets is None else np.concatenate([eye[data.gold_labels[tr]], extra])
        if teacher is not None:
            dr = doubly_robust_targets(eye, data.gold_labels[tr], teacher[tr], extra, from_model[keep])
            targets = targets if dr is None else dr
        folds.append(Fold(train_rows=np.concatenate([data.gold_rows[tr], data.extra_rows[keep]]).astype(np.int64),
                          train_labels=np.concatenate([data.gold_labels[tr], data.extra_labels[keep]]).astype(np.int64),
                          eval_pos=ev, train_targets=None if targets is None else targets.astype(np.float32)))
    return folds


def doubly_robust_targets(eye: np.ndarray, gold: np.ndarray, teacher: np.ndarray, extra: np.ndarray,
                          from_model: np.ndarray) -> np.ndarray | None:
    """The doubly robust loss (Zhu et al., NeurIPS 2023) as one signed target per training row
    (gold rows, then extra rows; cross-entropy is linear in its target): the mean loss of the n
    labeled rows (gold, and the human labels among the extras) + the mean loss of the n_t + m
    model labels (the teacher's out-of-fold classes of n_t gold rows, m pseudo-labels) - the mean
    loss of those n_t teacher classes. Scaled so that a pseudo-label weighs 1, as in plain
    training. A gold row the teacher got right trains on its class with weight 1 like a
    pseudo-label; one it got wrong is pulled to its class and pushed from the teacher's, so the
    pseudo-labels' errors are offset by as many as the teacher makes on gold rows. Summing the
    terms per row keeps a batch's loss from swinging between large positive and negative parts.
    None (plain) without a pseudo-label or a teacher class."""
    n_t, m = int((teacher >= 0).sum()), int(from_model.sum())
    if n_t == 0 or m == 0:
        return None
    labeled = (n_t + m) / (len(gold) + int((~from_model).sum()))
    gold_t = labeled * eye[gold]
    seen = teacher >= 0
    gold_t[seen] += (1.0 - (n_t + m) / n_t) * eye[teacher[seen]]
    return np.concatenate([gold_t, np.where(from_model[:, None], extra, labeled * extra)])


def extra_in_fold(data: LabeledRows, fold: int, votes: np.ndarray | None) -> np.ndarray:
    """Which extra rows train `fold`: every human label, and a label from the model where the
    fold's predecessor voted for it (all of them without votes)."""
    keep = np.ones(len(data.extra_rows), bool)
    if votes is not None and data.extra_from_model is not None:
        keep = ~data.extra_from_model | (votes[:, fold] == data.extra_labels)
    return keep


def epoch_order(y: np.ndarray, oversample: bool, n_classes: int, rng: np.random.Generator,
                limit: int = 0, min_len: int = 0) -> np.ndarray:
    """Positions into a training fold for one epoch, shuffled. With oversampling every class
    present is topped up, drawing with replacement, to the largest class's count; `limit`
    (0 = none) keeps the first `limit` of the shuffled positions; `min_len` repeats fresh
    passes until the epoch is at least that long (tiny training sets)."""
    def one_pass() -> np.ndarray:
        idx = np.arange(len(y))
        if oversample and len(y):
            counts = np.bincount(y, minlength=n_classes)
            extra = [rng.choice(np.flatnonzero(y == c), counts.max() - counts[c])
                     for c in range(n_classes) if 0 < counts[c] < counts.max()]
            idx = np.concatenate([idx, *extra])
        return rng.permutation(idx)

    passes = [one_pass()]
    while len(y) and sum(map(len, passes)) < min_len:
        passes.append(one_pass())
    order = np.concatenate(passes)
    return order[:max(limit, min_len) or None] if limit else order
