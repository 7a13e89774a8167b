"""How far reviewers agree, from their votes: Krippendorff's alpha (nominal) overall and per class
with a bootstrap interval, percent agreement, a reviewer-by-reviewer matrix, each reviewer
against the consensus and against hidden gold probes. Pure functions on arrays; the one place
service/agreement.py, `mersemi agreement`, `status --json` and the benchmark compute them.

The votes are a matrix [units, reviewers] of float values: a class id, engine/votes.REJECTED
for a rejection, NaN where the reviewer did not vote. Alpha follows Krippendorff (2011):
every unit with m >= 2 votes adds, for each ordered pair of its votes (i != j), 1 / (m - 1) to
the coincidence matrix o; with n = sum(o) and n_c its margins,

    alpha = 1 - (n - 1) * (n - sum_c o_cc) / (n^2 - sum_c n_c^2)        (nominal)

Per class, the values are collapsed to "c" and "not c" (a rejection is not c); the
coincidence matrix of the collapsed values is the collapsed matrix, so one pass over the units
serves every class and every bootstrap draw.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def coincidences(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values in column order, per pairable unit its coincidence matrix [units, V, V])."""
    votes = np.asarray(votes, np.float64)
    present = ~np.isnan(votes)
    m = present.sum(1)
    pairable = m >= 2
    values = np.unique(votes[present & pairable[:, None]])
    if len(values) == 0:
        return values, np.zeros((0, 0, 0))
    counts = np.stack([((votes == v) & present).sum(1) for v in values], axis=1)[pairable].astype(np.float64)
    m_u = m[pairable].astype(np.float64)
    # ordered pairs of distinct votes: n_c * n_k off the diagonal, n_c * (n_c - 1) on it
    per_unit = counts[:, :, None] * counts[:, None, :]
    idx = np.arange(len(values))
    per_unit[:, idx, idx] -= counts
    return values, per_unit / (m_u - 1)[:, None, None]


def alpha_of(o: np.ndarray) -> float | None:
    """Nominal alpha of a coincidence matrix (the last two axes); None where the values never
    vary (the expected disagreement is 0: alpha is undefined)."""
    n = o.sum((-2, -1))
    margins = o.sum(-1)
    agree = np.trace(o, axis1=-2, axis2=-1)
    expected = n * n - (margins ** 2).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = 1.0 - (n - 1) * (n - agree) / expected
    if np.ndim(a) == 0:
        return None if expected <= 0 else float(a)
    return np.where(expected > 0, a, np.nan)   # type: ignore[return-value]


def collapse(o: np.ndarray, at: int) -> np.ndarray:
    """The coincidence matrix of "value `at`" against every other value ([..., 2, 2])."""
    c = o[..., at, at]
    row = o[..., at, :].sum(-1) - c
    rest = o.sum((-2, -1)) - c - 2 * row
    return np.stack([np.stack([c, row], -1), np.stack([row, rest], -1)], -2)


def krippendorff_alpha(votes: np.ndarray) -> float | None:
    """Nominal alpha of a vote matrix [units, reviewers] (NaN: no vote)."""
    _, per_unit = coincidences(votes)
    return alpha_of(per_unit.sum(0)) if len(per_unit) else None


@dataclass(frozen=True)
class AlphaEstimate:
    value: float | None
    low: float | None          # the bootstrap's 2.5th percentile
    high: float | None         # and 97.5th
    units: int                 # units with at least two votes


def alpha_with_interval(votes: np.ndarray, n_classes: int, draws: int = 1000,
                        seed: int = 0) -> tuple[AlphaEstimate, list[AlphaEstimate], float | None]:
    """(alpha overall, alpha per class 0..n_classes-1, percent agreement), each alpha with a 95 %
    interval from `draws` bootstrap resamples of the units (Hayes and Krippendorff 2007 resample
    pairs; units are the simpler and the common choice). Percent agreement: the share of
    ordered pairs of votes on the same unit that agree."""
    values, per_unit = coincidences(votes)
    units = len(per_unit)
    if units == 0:
        empty = AlphaEstimate(None, None, None, 0)
        return empty, [empty] * n_classes, None
    total = per_unit.sum(0)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(units, np.full(units, 1.0 / units), size=draws).astype(np.float64)
    boot = np.einsum("bu,uvw->bvw", weights, per_unit)

    def estimate(point: np.ndarray, drawn: np.ndarray) -> AlphaEstimate:
        value = alpha_of(point)
        spread = np.asarray(alpha_of(drawn), np.float64)
        spread = spread[np.isfinite(spread)]
        if value is None or len(spread) == 0:
            return AlphaEstimate(value, None, None, units)
        low, high = np.percentile(spread, [2.5, 97.5])
        return AlphaEstimate(value, float(low), float(high), units)

    per_class = []
    for c in range(n_classes):
        at = np.flatnonzero(values == c)
        per_class.append(estimate(collapse(total, int(at[0])), collapse(boot, int(at[0])))
                         if len(at) else AlphaEstimate(None, None, None, units))
    agreement = float(np.trace(total) / total.sum())
    return estimate(total, boot), per_class, agreement


def pair_matrix(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair of reviewers (columns): the units both voted on, and the share where their votes
    agree (NaN where they share none). Both [R, R]; the diagonal counts a reviewer's votes."""
    votes = np.asarray(votes, np.float64)
    present = ~np.isnan(votes)
    both = present.T.astype(np.int64) @ present.astype(np.int64)
    R = votes.shape[1]
    same = np.zeros((R, R), np.int64)
    for r in range(R):
        same[r] = ((votes == votes[:, [r]]) & present & present[:, [r]]).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(both > 0, same / np.maximum(both, 1), np.nan)
    return both, share


def agreement_with(votes: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per reviewer: the units they voted on that have a reference value (the consensus, say;
    NaN: none), and the share of those votes equal to it (NaN without any)."""
    votes = np.asarray(votes, np.float64)
    ref = np.asarray(reference, np.float64)[:, None]
    counted = ~np.isnan(votes) & ~np.isnan(ref)
    n = counted.sum(0)
    hits = ((votes == ref) & counted).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return n, np.where(n > 0, hits / np.maximum(n, 1), np.nan)
