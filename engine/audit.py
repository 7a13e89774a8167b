"""Which given labels look wrong: confident learning (Northcutt, Jiang and Chuang, JAIR 2021) on
out-of-fold probabilities, as cleanlab's `find_label_issues(filter_by="confident_learning",
return_indices_ranked_by="self_confidence")` computes it (tests/test_agreement.py checks that the
two agree). Pure NumPy: the gold audit (service/audit.py) and the benchmark call it.

Per class k, the confident threshold t_k is the mean probability of k over the samples labeled
k. A sample is confidently of class j when p_j >= t_j (of the largest such p_j when several
are); its given label is an issue when that class is not the given one, unless the given class
is (within 1e-6) the predicted one. Issues come ranked by self-confidence, the probability of
the given label, lowest first.

A weak model flags many labels, and flagged labels are often right: they go to reviewers, never
changed by this function.
"""
from __future__ import annotations

import numpy as np

FUZZ = 1e-6   # cleanlab's FLOATING_POINT_COMPARISON


def confident_thresholds(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per class, the mean probability of it over the samples labeled it (2, out of reach, for a
    class no sample has), at least 2e-6."""
    C = probs.shape[1]
    t = np.array([probs[labels == k, k].mean() if np.any(labels == k) else 2.0 for k in range(C)])
    return np.clip(t, 2 * FUZZ, None)


def label_issues(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Positions of the labels confident learning flags, the least likely right first."""
    labels = np.asarray(labels, np.int64)
    probs = np.asarray(probs, np.float64)
    if len(labels) == 0:
        return np.zeros(0, np.int64)
    confident = probs >= confident_thresholds(labels, probs) - FUZZ
    n_confident = confident.sum(1)
    guess = np.where(n_confident > 1, probs.argmax(1), confident.argmax(1))
    issue = (n_confident > 0) & (guess != labels)
    nudged = probs.copy()
    nudged[np.arange(len(labels)), labels] += FUZZ
    issue &= nudged.argmax(1) != labels          # the given class (nearly) predicted: no issue
    at = np.flatnonzero(issue)
    self_confidence = probs[at, labels[at]]
    return at[np.argsort(self_confidence)]
