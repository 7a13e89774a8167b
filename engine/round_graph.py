"""Label spreading inside a round: the neighbour graph (or a cheap estimate that the round
would leave it out), the graph's class distributions from the round's human labels, out-of-fold
for the gold rows, and the rule by which engine/train.py joins them to the ensemble's."""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Protocol, cast

import numpy as np
import scipy.sparse as sp
import torch

from .bank import FeatureBank
from .calibration import combine, fit_temperature, fit_weights
from .config import Config
from .folds import Fold, LabeledRows
from .hardware import cpu_kernels
from .metrics import waf
from .propagation import EXACT_BUDGET_S, knn_graph, plan_knn, spread



class RoundRows(LabeledRows, Protocol):
    """What label spreading reads of a round's training set (train.TrainSet has it): the
    labeled rows as the folds read them, and the rows the round scores."""
    score_rows: np.ndarray


def spread_labels(graph: sp.csr_matrix, bank: FeatureBank, data: RoundRows, folds: list[Fold], n_classes: int,
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


def join_weights(oof: np.ndarray, oof_graph: np.ndarray, gold_labels: np.ndarray, share: float | None,
                 cfg: Config) -> np.ndarray:
    """The ensemble's and the graph's weights in the joined scores: fitted on the out-of-fold
    predictions of both (jointly from propagation.joint_fit_min gold samples), or with a given
    `share` (the graph's weight per unit of the ensemble's) only the temperature of the joined
    scores is fitted. A plain product when calibration is off."""
    if share is None:
        joint = len(gold_labels) >= cfg.propagation.joint_fit_min
        return fit_weights([oof, oof_graph], gold_labels, joint) if cfg.finetune.calibrate else np.ones(2)
    given = np.array([1.0, share])
    joined = combine([oof, oof_graph], given)
    return given / (fit_temperature(joined, gold_labels) if cfg.finetune.calibrate else 1.0)


def left_out(oof: np.ndarray, oof_graph: np.ndarray, weights: np.ndarray, gold_labels: np.ndarray, cv_waf: float,
             cfg: Config) -> float | None:
    """The joined out-of-fold WAF where it is below the ensemble's alone, judged from
    propagation.joint_fit_min gold samples (below, one sample moves the WAF by points); None
    where the graph joins. The weights minimise the log-loss, which a graph can lower while it
    costs classes: where it costs them out of fold, it costs them on the pool and test too."""
    joined_waf = waf(gold_labels, combine([oof, oof_graph], weights).argmax(1))
    return joined_waf if joined_waf < cv_waf and len(gold_labels) >= cfg.propagation.joint_fit_min else None


class _Rows:
    """Positions of global rows in a sorted subset of them (FeatureBank.local's contract)."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    def local(self, rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.rows, np.asarray(rows, np.int64))


def graph_for_round(embedding: torch.Tensor, bank: FeatureBank, data: RoundRows, folds: list[Fold],
                    oof: np.ndarray, cv_waf: float, share: float | None, n_classes: int, cfg: Config,
                    notes: list[str]) -> sp.csr_matrix | None:
    """The neighbour graph over every bank row, or None where a cheap estimate says the round
    would leave it out: no minutes on a graph that is thrown away.

    Where the whole graph is estimated to cost more than propagation.EXACT_BUDGET_S on this
    machine and the gold labels are enough to judge (joint_fit_min), the same rule is first
    applied to an exact graph over the seed rows and a random sample of the others, as many as
    that budget compares pair by pair; the whole graph is built only where that graph joins."""
    pc = cfg.propagation
    t0 = time.time()
    n, dim = embedding.shape
    plan = plan_knn(n, dim, pc.knn, embedding.device)
    cost = plan.exact_s if plan.method == "exact" else plan.approx_s
    if cost > EXACT_BUDGET_S and len(data.gold_labels) >= pc.joint_fit_min:
        human = np.ones(len(data.extra_rows), bool) if data.extra_from_model is None else ~data.extra_from_model
        seeds = np.union1d(data.gold_rows, data.extra_rows[human])
        size = max(int(n * np.sqrt(EXACT_BUDGET_S / max(plan.exact_s, 1e-9))), 2 * len(seeds))
        others = np.setdiff1d(bank.rows, seeds)
        rng = np.random.default_rng(cfg.seed)
        sample = np.union1d(seeds, rng.choice(others, min(len(others), max(size - len(seeds), 0)), replace=False))
        sub, _ = knn_graph(embedding[torch.as_tensor(bank.local(sample), device=embedding.device)], pc.neighbours,
                           "exact", cfg.seed)
        no_scores = dataclasses.replace(cast(Any, data), score_rows=np.zeros(0, np.int64))
        estimate = spread_labels(sub, cast(FeatureBank, _Rows(sample)), no_scores, folds, n_classes, cfg)[0]
        weights = join_weights(oof, estimate, data.gold_labels, share, cfg)
        worse = left_out(oof, estimate, weights, data.gold_labels, cv_waf, cfg)
        said = (f"a graph over {len(sample)} of {n} rows ({time.time() - t0:.1f} s) estimated the round's "
                f"out-of-fold WAF with label spreading")
        if worse is not None:
            notes.append(f"label spreading left out on an estimate: {said} at {100 * worse:.2f}, {100 * cv_waf:.2f} "
                         f"without; the whole graph ({plan.method}, estimated {cost:.0f} s here) was not built")
            return None
        notes.append(f"{said} no lower than without it: the whole graph is built")
    t1 = time.time()
    graph, how = knn_graph(embedding, pc.neighbours, pc.knn, cfg.seed)
    notes.append(f"neighbour graph over {n} rows: {how} ({time.time() - t1:.1f} s)")
    if embedding.device.type == "cpu":
        notes.append(cpu_kernels().note())
    return graph
