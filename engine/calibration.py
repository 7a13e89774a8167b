"""Confidence that means probability: temperature scaling and the expected calibration error.

A round's out-of-fold predictions of the gold samples are honest (no fold model trained on
the sample it predicts), so they are where the round learns how far to trust its scores:
one temperature T, fitted on them by smoothed maximum likelihood, rescales every probability vector
the round stores, p_c -> p_c^(1/T) / sum_k p_k^(1/T) (softmax of log p / T). T > 1 softens
over-confident scores, T < 1 sharpens under-confident ones; the predicted class never
changes. Guo et al. 2017, "On Calibration of Modern Neural Networks".
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize, minimize_scalar

T_MIN, T_MAX = 0.05, 20.0   # beyond these the fit is chasing a handful of samples
ECE_BINS = 15
_EPS = 1e-12


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities [N, C] rescaled by a temperature, rows summing to 1 (float32)."""
    if len(probs) == 0 or temperature == 1.0:
        return np.asarray(probs, np.float32)
    logits = np.log(np.clip(np.asarray(probs, np.float64), _EPS, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def fold_term(probs: np.ndarray, average: str) -> np.ndarray:
    """What one fold model adds to the ensemble's running sum (see `ensemble_mean`)."""
    probs = np.asarray(probs, np.float64)
    return np.log(np.clip(probs, _EPS, 1.0)) if average == "geometric" else probs


def ensemble_mean(total: np.ndarray, n_models: int, average: str) -> np.ndarray:
    """The ensemble's probabilities from the sum of `n_models` fold terms: the arithmetic
    mean, or the renormalised geometric mean (softmax of the mean log-probability)."""
    mean = np.asarray(total, np.float64) / max(n_models, 1)
    if average != "geometric":
        return mean.astype(np.float32)
    mean -= mean.max(axis=1, keepdims=True)
    e = np.exp(mean)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The temperature in [T_MIN, T_MAX] minimising the cross-entropy against `y`, smoothed
    by the rule of succession (1.0 when there is nothing to fit on).

    n samples support a confidence of about (n + 1) / (n + 2), not 1: the target puts
    1 / (n + 2) of each sample's mass on the other classes. Unsmoothed, a few dozen
    out-of-fold samples that are all right (a few-label round trained on pseudo-labels) drive
    T to T_MIN and every pool score to 1.0. At thousands of samples this changes nothing."""
    y = np.asarray(y, np.int64)
    if len(y) == 0:
        return 1.0
    log_p = _log(probs)
    target = _smoothed_target(y, log_p.shape[1])

    def nll(log_t: float) -> float:
        return _cross_entropy(target, log_p / np.exp(log_t))

    res = minimize_scalar(nll, bounds=(np.log(T_MIN), np.log(T_MAX)), method="bounded",
                          options={"xatol": 1e-4})
    return float(np.exp(res.x))


def fit_weights(sources: list[np.ndarray], y: np.ndarray, joint: bool = False) -> np.ndarray:
    """Weights w of several probability sources for the same samples, combined as
    softmax(sum_s w_s log p_s) (see `combine`).

    joint False: each source's own 1 / temperature, fitted alone on `y` by `fit_temperature`;
    a source that does not help gets a high temperature and so a small weight (>= 1 / T_MAX).
    joint True: all weights fitted together on the same smoothed cross-entropy; the first
    source's weight lies in [1/T_MAX, 1/T_MIN], the others may get 0, so a source that only
    repeats the first drops out. [1, 0, ...] when there is nothing to fit on.

    Which, by the number of samples: on a few dozen out-of-fold samples the joint fit chases
    the few that disagree; on thousands it learns what separate fits cannot, that one source
    repeats or adds little to the other (bench/results/README.md, Measurements behind the
    defaults)."""
    if not joint:
        return np.array([1.0 / fit_temperature(p, y) for p in sources], np.float64)
    y = np.asarray(y, np.int64)
    start = np.r_[1.0, np.zeros(len(sources) - 1)]
    if len(y) == 0:
        return start
    logs = [_log(p) for p in sources]
    target = _smoothed_target(y, logs[0].shape[1])

    def nll(w: np.ndarray) -> float:
        return _cross_entropy(target, sum(wi * lp for wi, lp in zip(w, logs)))

    bounds = [(1 / T_MAX, 1 / T_MIN)] + [(0.0, 1 / T_MIN)] * (len(sources) - 1)
    start[0] = 1 / fit_temperature(sources[0], y)
    return np.asarray(minimize(nll, start, method="L-BFGS-B", bounds=bounds).x, np.float64)


def combine(sources: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """softmax(sum_s w_s log p_s): the sources' weighted geometric mean, rows summing to 1
    (float32). One source with weight 1/T is `apply_temperature(p, T)`."""
    if len(sources[0]) == 0:
        return np.asarray(sources[0], np.float32)
    z = np.asarray(sum(w * _log(p) for w, p in zip(weights, sources)), np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _log(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probs, np.float64), _EPS, 1.0))


def _smoothed_target(y: np.ndarray, n_classes: int) -> np.ndarray:
    """One-hot rows with 1 / (n + 2) of the mass spread over the other classes."""
    n = len(y)
    eps = 1.0 / (n + 2)
    target = np.full((n, n_classes), eps / max(n_classes - 1, 1))
    target[np.arange(n), y] = 1.0 - eps
    return target


def _cross_entropy(target: np.ndarray, logits: np.ndarray) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    log_q = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-(target * log_q).sum(axis=1).mean())


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float | None:
    """ECE: over equal-width confidence bins, the sample-weighted mean |accuracy - mean
    confidence| of the top-class predictions. None without samples."""
    y = np.asarray(y, np.int64)
    if len(y) == 0:
        return None
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == y
    which = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for b in np.unique(which):
        m = which == b
        total += m.sum() * abs(right[m].mean() - conf[m].mean())
    return float(total / len(y))
