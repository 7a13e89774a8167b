"""A finished round's arrays as the review reads them (`RoundView`), loaded once per round and
kept by the project that loaded them (`RoundViews`: its latest few rounds), with the review
queues' sorting, kept per view for a few thresholds and filters."""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..db.store import Store
from ..engine import selection
from ..engine.checkpoint import Checkpoint
from ..engine.vocab import PredictionKind, RoundStatus, Split

from .errors import NoRound

HIST_BINS = 40
VIEWS_KEPT = 4     # rounds a project keeps the arrays of: the current one, and a few a request may still read
ORDERS_KEPT = 32   # queue orders kept per round: a few thresholds and filters


@dataclass(frozen=True)
class RoundView:
    """Arrays of one finished round that never change (kept in `Project.views`)."""
    round_id: int
    n_classes: int
    oof_pred: np.ndarray
    oof_conf: np.ndarray
    oof_true: np.ndarray
    pool_ids: np.ndarray
    pool_probs: np.ndarray
    # Derived once here: every request reads them (an argmax over the pool costs ~10 ms at
    # MER2024 scale).
    pool_pred: np.ndarray = field(init=False)
    pool_conf: np.ndarray = field(init=False)
    _orders: OrderedDict = field(init=False, repr=False, compare=False, default_factory=OrderedDict)
    _votes: dict = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        empty = len(self.pool_ids) == 0
        object.__setattr__(self, "pool_pred", np.zeros(0, np.int64) if empty else self.pool_probs.argmax(1))
        object.__setattr__(self, "pool_conf", np.zeros(0, np.float32) if empty else self.pool_probs.max(1))

    def precision(self, cls: int, threshold: float) -> tuple[float | None, int]:
        """(out-of-fold precision, its support) of class `cls` at `threshold`."""
        sel = (self.oof_pred == cls) & (self.oof_conf >= threshold)
        n = int(sel.sum())
        return (float(np.mean(self.oof_true[sel] == cls)) if n else None), n

    def histogram(self, cls: int, bins: int = HIST_BINS) -> tuple[np.ndarray, np.ndarray]:
        """Pool confidence histogram of samples predicted `cls` (all, decided or not)."""
        # The top probability of C classes is never below 1/C.
        return np.histogram(self.pool_conf[self.pool_pred == cls], bins=bins,
                            range=(1.0 / self.n_classes, 1.0))

    def queue_orders(self, thresholds: list[float], cls: int | None,
                     min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
        """engine/selection.queue_orders of this round's pool. The sorting depends on the round,
        the thresholds and the filter only, not on decisions: kept for the next request (each
        decision would otherwise re-sort the whole pool)."""
        key = (tuple(map(float, thresholds)), cls, float(min_confidence))
        found = self._orders.get(key)
        if found is None:
            found = selection.queue_orders(self.pool_probs, thresholds, cls, float(min_confidence),
                                           pred=self.pool_pred, conf=self.pool_conf)
            self._orders[key] = found
            while len(self._orders) > ORDERS_KEPT:
                self._orders.popitem(last=False)
        return found

    def fold_votes(self, checkpoint_file: Path | None) -> Checkpoint | None:
        """The round's fold models' votes over the rows it scored (a Checkpoint without weights,
        what the gate of self_training.gate folds reads), loaded from its checkpoint once; None
        when the round kept none."""
        if "votes" not in self._votes:
            saved = None
            if checkpoint_file is not None and checkpoint_file.is_file():
                saved = Checkpoint.load(checkpoint_file)
            self._votes["votes"] = None if saved is None or saved.fold_votes is None else Checkpoint(
                config={}, modalities=saved.modalities, n_classes=saved.n_classes, folds=[],
                score_rows=saved.score_rows, fold_votes=saved.fold_votes)
        return self._votes["votes"]


class HasViews(Protocol):
    """What `round_view` reads of a project (service/project.Project)."""
    store: Store
    classes: list[str]
    views: RoundViews


class RoundViews:
    """The RoundViews of one project's latest VIEWS_KEPT rounds, least recently read dropped
    first. Shared by the threads of a server."""

    def __init__(self, keep: int = VIEWS_KEPT) -> None:
        self.keep = keep
        self._views: OrderedDict[int, RoundView] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._views)

    def get(self, store: Store, round_id: int, n_classes: int) -> RoundView:
        """Round `round_id`'s view (a finished round), loaded once."""
        with self._lock:
            view = self._views.get(round_id)
            if view is not None:
                self._views.move_to_end(round_id)
                return view
        view = _load(store, round_id, n_classes)   # outside the lock: seconds at MER2024 scale
        with self._lock:
            view = self._views.setdefault(round_id, view)
            self._views.move_to_end(round_id)
            while len(self._views) > self.keep:
                self._views.popitem(last=False)
        return view

    def clear(self) -> None:
        with self._lock:
            self._views.clear()


def round_view(project: HasViews, round_id: int | None = None) -> RoundView:
    """The view of round `round_id` (default: the current round); NoRound (a ProjectError) when it has not
    finished."""
    rnd = project.store.rounds.get(round_id) if round_id is not None else project.store.rounds.current()
    if rnd is None or rnd.status != RoundStatus.DONE:
        raise NoRound("no finished round yet: train round 0 first")
    return project.views.get(project.store, rnd.id, len(project.classes))


def _load(store: Store, round_id: int, C: int) -> RoundView:
    oof_ids, oof_probs = store.rounds.predictions(round_id, PredictionKind.OOF)
    gold_ids, gold_y, _ = store.samples.split_arrays(Split.LABELED)
    lookup = dict(zip(gold_ids.tolist(), gold_y.tolist()))
    gold = np.array([lookup[i] for i in oof_ids.tolist()], dtype=np.int64)
    pool_ids, pool_probs = store.rounds.predictions(round_id, PredictionKind.POOL)
    return RoundView(round_id, C, oof_probs.argmax(1) if len(oof_ids) else np.zeros(0, int),
                     oof_probs.max(1) if len(oof_ids) else np.zeros(0), gold,
                     pool_ids, pool_probs if len(pool_ids) else np.zeros((0, C), np.float32))
