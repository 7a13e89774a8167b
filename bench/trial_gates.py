"""Gates tried on the suite before any of them is offered as `self_training.gate` (issue 30,
item 2): each holds back a candidate of the automatic step where something besides the model
disagrees with its predicted class. They plug into the loop's one gate hook
(engine/loop.SelfTrainer._agree), so the step, the class balance and the guard are the
product's own.

- "spreading": label spreading (scikit-learn's LabelSpreading, k-nearest-neighbour kernel, as
  bench/fewlabel.py's peer) from the gold and human labels over the standardised features must
  give the candidate the model's class.
- "density": CAST's idea (Kim et al. 2023, "cluster-aware self-training"), in our reading: a
  candidate's confidence is scaled down where its class's labeled samples are sparse, and it
  must still reach its class's threshold. Density of class c at x: the mean Gaussian kernel to
  c's labeled samples (bandwidth: the median distance from a pool sample to its nearest
  labeled one); scale: that density over the median density of the pool samples predicted c,
  at most 1, so the denser half of each class keeps its confidence.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.semi_supervised import LabelSpreading

from mersemi.engine.loop import InForce, LoopData, SelfTrainer

GATES = ("spreading", "density")


def standardised(data: LoopData, rows: np.ndarray) -> np.ndarray:
    """The views side by side, each column standardised over the gold and pool rows and each view
    scaled by 1/sqrt(its width), so that every view weighs the same in a distance."""
    fit = np.concatenate([data.gold_rows, data.pool_rows])
    parts = []
    for v in data.features.values():
        m = np.asarray(v[fit], np.float64)
        mu, sd = m.mean(0), m.std(0) + 1e-9
        parts.append((np.asarray(v[rows], np.float64) - mu) / sd / np.sqrt(m.shape[1]))
    return np.concatenate(parts, axis=1)


def labeled(trainer: SelfTrainer, data: LoopData) -> tuple[np.ndarray, np.ndarray]:
    """The rows and classes a person gave: gold and the human labels in force (never the tool's)."""
    human = trainer.labels_.human()
    return np.r_[data.gold_rows, human.rows], np.r_[data.gold_labels, human.labels].astype(np.int64)


def spreading_agrees(trainer: SelfTrainer, data: LoopData, inf: InForce) -> np.ndarray:
    """Per pool row of `inf`: label spreading from the person's labels gives it the predicted class."""
    rows, y = labeled(trainer, data)
    pool = np.setdiff1d(inf.pool_rows, rows)
    x = standardised(data, np.r_[rows, pool])
    ls = LabelSpreading(kernel="knn", n_neighbors=7).fit(x, np.r_[y, np.full(len(pool), -1)])
    spread = dict(zip(pool.tolist(), ls.transduction_[len(rows):].tolist()))
    return np.array([spread.get(r, -1) == p for r, p in zip(inf.pool_rows.tolist(), inf.pool_pred.tolist())])


def density_scale(x_pool: np.ndarray, pred: np.ndarray, x_lab: np.ndarray, y_lab: np.ndarray) -> np.ndarray:
    """Per pool row, its predicted class's density over the median density of the pool rows
    predicted that class, at most 1 (0 where the class has no labeled sample)."""
    d2 = (x_pool ** 2).sum(1)[:, None] + (x_lab ** 2).sum(1)[None, :] - 2 * x_pool @ x_lab.T
    d2 = np.maximum(d2, 0.0)
    h2 = float(np.median(d2.min(1))) or 1.0
    kernel = np.exp(-d2 / (2 * h2))
    scale = np.zeros(len(pred))
    for c in np.unique(pred):
        at = pred == c
        if not (y_lab == c).any():
            continue
        dens = kernel[np.ix_(at, y_lab == c)].mean(1)
        med = float(np.median(dens))
        scale[at] = np.minimum(1.0, dens / med) if med > 0 else 1.0
    return scale


def density_agrees(trainer: SelfTrainer, data: LoopData, inf: InForce) -> np.ndarray:
    """Per pool row of `inf`: its density-scaled confidence reaches the policy's proposed threshold
    (the suite's step always takes the proposal)."""
    rows, y = labeled(trainer, data)
    pred = np.asarray(inf.pool_pred, np.int64)
    scale = density_scale(standardised(data, inf.pool_rows), pred, standardised(data, rows), y)
    th = np.asarray(trainer.thresholds_, np.float64)
    return np.asarray(inf.pool_conf, np.float64) * scale >= th[pred] - 1e-12


_CHECKS: dict[str, Callable[[SelfTrainer, LoopData, InForce], np.ndarray]] = {
    "spreading": spreading_agrees, "density": density_agrees}


class GatedTrainer(SelfTrainer):
    """The loop with a trial gate in place of self_training.gate."""

    def __init__(self, *args, gate: str, data: LoopData, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if gate not in GATES:
            raise ValueError(f"gate must be one of {', '.join(GATES)}, got {gate!r}")
        self.gate, self.data = gate, data

    def _agree(self, inf: InForce) -> np.ndarray | None:
        return _CHECKS[self.gate](self, self.data, inf)
