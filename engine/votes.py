"""What a card's votes say: the consensus (a strict majority), and the training target the votes
give under each setting of `votes:` (engine/config_schema.VotesConfig). Pure functions on
integers: a vote's value is the class it names, or REJECTED for a rejection of the card's
prediction that names none.

The store keeps the plain majority as the label in force (source `consensus`); training may read
the votes otherwise (service/votes.training_labels): as their distribution (soft targets), or
weighed by each reviewer's accuracy on the gold probes (a one-coin Dawid-Skene posterior: a
reviewer right with probability a gives the true class with probability a and each other class
with (1 - a) / (C - 1)).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Literal

import numpy as np

REJECTED = -1   # a vote that rejects the prediction without naming a class
# config `votes.disagreement` and `votes.weights` (engine/config_schema.VotesConfig)
Disagreement = Literal["hold_out", "soft"]
VoteWeights = Literal["equal", "probes"]


def vote_value(rejects: bool, label: int | None) -> int:
    """The value of a vote: the class it names, or REJECTED."""
    return REJECTED if rejects or label is None else int(label)


def majority(values: Sequence[int]) -> tuple[int | None, int]:
    """(the value more than half of `values` name, its count), or (None, the largest count) when
    no value has a strict majority: a tie, or no majority, which goes to adjudication."""
    if not values:
        return None, 0
    (top, n), *rest = Counter(values).most_common()
    return (top, n) if 2 * n > len(values) else (None, n)


def accuracy_of(right: int, total: int, n_classes: int) -> float:
    """A reviewer's accuracy from their gold-probe votes, smoothed by the rule of succession
    ((right + 1) / (total + 2)) and kept inside (1 / C, 0.99]: a reviewer no better than chance
    gets almost no weight, none gets a weight that overrules every other reviewer together."""
    a = (right + 1) / (total + 2)
    return float(min(0.99, max(a, 1.0 / n_classes + 1e-3)))


def class_posterior(values: Sequence[int], n_classes: int,
                    accuracies: Sequence[float] | None = None) -> np.ndarray | None:
    """The class distribution the votes give: with no accuracies, the share of the class votes
    (the vote distribution); with one accuracy per vote, the one-coin posterior under a uniform
    prior. Rejections name no class and are left out; None when no vote names a class."""
    named = [(v, i) for i, v in enumerate(values) if v != REJECTED]
    if not named:
        return None
    if accuracies is None:
        dist = np.bincount([v for v, _ in named], minlength=n_classes).astype(np.float64)
        return dist / dist.sum()
    log_p = np.zeros(n_classes)
    for v, i in named:
        a = float(accuracies[i])
        wrong = np.log((1.0 - a) / (n_classes - 1))
        log_p += wrong
        log_p[v] += np.log(a) - wrong
    p = np.exp(log_p - log_p.max())
    return p / p.sum()


def decided_class(posterior: np.ndarray, tol: float = 1e-9) -> int | None:
    """The class a posterior decides: its single largest entry; None on a tie."""
    top = posterior.max()
    winners = np.flatnonzero(posterior >= top - tol)
    return int(winners[0]) if len(winners) == 1 else None
