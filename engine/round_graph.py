"""Label spreading inside a round: the graph's class distributions from the round's human
labels, out-of-fold for the gold rows (engine/train.py joins them to the ensemble's)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from .bank import FeatureBank
from .config import Config
from .folds import Fold
from .propagation import spread

if TYPE_CHECKING:
    from .train import TrainSet


def spread_labels(graph: sp.csr_matrix, bank: FeatureBank, data: TrainSet, folds: list[Fold], n_classes: int,
                   cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """The graph's class distributions from the human labels (gold and extra rows not from the
    model): out-of-fold for the gold rows (each fold hides its evaluation labels) and, from
    every human label, for the score rows.

    Pseudo-labels do not seed it: the model's errors would come back as the graph's, and a few
    hundred of them in the easy regions outweigh the classes with few labels."""
    pc = cfg.propagation
    human = np.ones(len(data.extra_rows), bool) if data.extra_from_model is None else ~data.extra_from_model
    seeds = np.r_[data.gold_rows, data.extra_rows[human]]
    labels = np.r_[data.gold_labels, data.extra_labels[human]]

    def run(keep: np.ndarray) -> np.ndarray:
        return spread(graph, bank.local(seeds[keep]), labels[keep], n_classes, pc.alpha, pc.iterations,
                      pc.class_mass)

    oof = np.zeros((len(data.gold_rows), n_classes), np.float32)
    for fold in folds:
        keep = np.ones(len(seeds), bool)
        keep[fold.eval_pos] = False           # gold rows come first among the seeds
        oof[fold.eval_pos] = run(keep)[bank.local(data.gold_rows[fold.eval_pos])]
    every = run(np.ones(len(seeds), bool))
    return oof, every[bank.local(data.score_rows)]
