"""Reverse validation of an automatic round's pseudo-labels (Zhong et al., 2010): a model trained
on the pseudo-labels alone predicts the gold samples, and must do so as well as the loop's first
round did out of fold. It sees what the out-of-fold log-loss of 16-22 gold samples cannot: a
class the pseudo-labels leave out, or a class they mostly get wrong, costs the reverse model that
class's gold samples.

The comparison is per gold sample (right or not, reverse against the reference), averaged per
class and then over the classes (balanced accuracy: a class of 2 gold samples weighs as much as a
class of 20), with a bootstrap over the gold samples within each class for the interval: the
guard discards a round only when the upper bound is below zero, i.e. when the reverse model is
worse beyond what the few gold samples leave open. The reverse model is a logistic regression on
the views side by side: cheap (a second at MER2024 scale), deterministic, and a different
learner from the one whose mistakes it checks.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .results import ReverseValidation

MAX_ROWS = 5000     # pseudo-labels the reverse model trains on at most (a seeded draw): its cost stays flat
N_BOOTSTRAP = 2000


def reverse_validation(features: Mapping[str, np.ndarray], pseudo_rows: np.ndarray, pseudo_labels: np.ndarray,
                       gold_rows: np.ndarray, gold_labels: np.ndarray, reference_pred: np.ndarray, *,
                       level: float, seed: int) -> ReverseValidation:
    """`reference_pred`: the reference round's out-of-fold classes of `gold_rows`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    pseudo_rows, pseudo_labels = np.asarray(pseudo_rows, np.int64), np.asarray(pseudo_labels, np.int64)
    gold_labels = np.asarray(gold_labels, np.int64)
    if len(pseudo_rows) > MAX_ROWS:
        pick = np.sort(rng.choice(len(pseudo_rows), MAX_ROWS, replace=False))
        pseudo_rows, pseudo_labels = pseudo_rows[pick], pseudo_labels[pick]
    present = np.unique(pseudo_labels)
    if len(present) == 1:   # one class only: the reverse model can only say that class
        pred = np.full(len(gold_rows), present[0])
    else:
        x = _views(features, pseudo_rows)
        scaler = StandardScaler().fit(x)
        model = LogisticRegression(max_iter=500).fit(scaler.transform(x), pseudo_labels)
        pred = model.predict(scaler.transform(_views(features, np.asarray(gold_rows, np.int64))))
    diff = (pred == gold_labels).astype(np.float64) - (np.asarray(reference_pred) == gold_labels)
    classes = np.unique(gold_labels)
    by_class = [diff[gold_labels == c] for c in classes]
    boot = np.mean([d[rng.integers(0, len(d), (N_BOOTSTRAP, len(d)))].mean(1) for d in by_class], axis=0)

    def balanced(right: np.ndarray) -> float:
        return float(np.mean([right[gold_labels == c].mean() for c in classes]))

    return ReverseValidation(
        pseudo=int(len(pseudo_rows)), gold=int(len(gold_labels)),
        reference=round(balanced((np.asarray(reference_pred) == gold_labels).astype(float)), 4),
        reverse=round(balanced((pred == gold_labels).astype(float)), 4),
        difference=round(float(np.mean([d.mean() for d in by_class])), 4),
        lower=round(float(np.quantile(boot, 1 - level)), 4), upper=round(float(np.quantile(boot, level)), 4),
        level=float(level))


def _views(features: Mapping[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(x[rows], np.float64) for x in features.values()], axis=1)
