"""A finished round's arrays as the review reads them (`RoundView`), loaded once per round
(moved here from service/review.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..engine.vocab import PredictionKind, RoundStatus, Split

from .project import Project, ProjectError

HIST_BINS = 40


@dataclass(frozen=True)
class RoundView:
    """Arrays of one finished round that never change: cached per (project, round)."""
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


_views: dict[tuple[str, int], RoundView] = {}


def round_view(project: Project, round_id: int | None = None) -> RoundView:
    rnd = project.store.rounds.get(round_id) if round_id is not None else project.store.rounds.current()
    if rnd is None or rnd.status != RoundStatus.DONE:
        raise ProjectError("no finished round yet: train round 0 first")
    key = (str(project.root.resolve()), rnd.id)
    if key not in _views:
        oof_ids, oof_probs = project.store.rounds.predictions(rnd.id, PredictionKind.OOF)
        gold = _gold_of(project, oof_ids)
        pool_ids, pool_probs = project.store.rounds.predictions(rnd.id, PredictionKind.POOL)
        C = len(project.classes)
        _views[key] = RoundView(rnd.id, C, oof_probs.argmax(1) if len(oof_ids) else np.zeros(0, int),
                                oof_probs.max(1) if len(oof_ids) else np.zeros(0), gold,
                                pool_ids, pool_probs if len(pool_ids) else np.zeros((0, C), np.float32))
    return _views[key]


def _gold_of(project: Project, ids: np.ndarray) -> np.ndarray:
    gold_ids, gold_y, _ = project.store.samples.split_arrays(Split.LABELED)
    lookup = dict(zip(gold_ids.tolist(), gold_y.tolist()))
    return np.array([lookup[i] for i in ids.tolist()], dtype=np.int64)
