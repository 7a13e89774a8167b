"""How far a project's reviewers agree (`agreement(project) -> Agreement`): what `mersemi
agreement`, `status --json`, the API and the Decisions tab show. The votes of the overlap share
are read from the store and measured by engine/agreement.py; the gold probes score each
reviewer. No Gradio."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..engine.agreement import AlphaEstimate, agreement_with, alpha_with_interval, pair_matrix
from ..engine.votes import majority, vote_value
from ..engine.vocab import Action, Split, VotePurpose

from .project import Project
from .review import wilson_interval
from .votes import card_states, is_right, overlap

DRAWS = 1000   # bootstrap resamples behind each interval


@dataclass(frozen=True)
class ReviewerAgreement:
    reviewer: str
    votes: int                       # on overlap cards
    consensus_items: int             # of those, cards with a consensus
    with_consensus: float | None     # share of those votes equal to it
    probe_votes: int
    probe_right: int
    probe_accuracy: float | None
    probe_interval: tuple[float, float] | None   # 95 % Wilson


@dataclass(frozen=True)
class Agreement:
    alpha: AlphaEstimate
    per_class: dict[str, AlphaEstimate]
    percent_agreement: float | None   # share of pairs of votes on the same card that agree
    items: int                        # overlap cards with at least two votes
    votes: int                        # votes on overlap cards
    reviewers: list[ReviewerAgreement]
    pair_reviewers: list[str]         # the rows and columns of the two matrices below
    pair_items: list[list[int]]       # [a][b]: cards both voted on (diagonal: a's votes)
    pair_agreement: list[list[float | None]]   # [a][b]: share of those where they agree
    cards: dict[str, int] = field(default_factory=dict)   # overlap cards by state
    settings: dict = field(default_factory=dict)           # the overlap setting

    def as_dict(self) -> dict:
        """JSON: `alpha`, `alpha_interval`, `per_class`, `items`, `pairs`, ... (docs/api.md)."""
        def est(a: AlphaEstimate) -> dict:
            return {"alpha": _num(a.value), "low": _num(a.low), "high": _num(a.high), "items": a.units}

        return {"alpha": _num(self.alpha.value), "alpha_interval": [_num(self.alpha.low), _num(self.alpha.high)],
                "per_class": {c: est(a) for c, a in self.per_class.items()},
                "percent_agreement": _num(self.percent_agreement), "items": self.items, "votes": self.votes,
                "pairs": {"reviewers": self.pair_reviewers, "items": self.pair_items,
                          "agreement": [[_num(x) for x in row] for row in self.pair_agreement]},
                "reviewers": [{"reviewer": r.reviewer, "votes": r.votes, "consensus_items": r.consensus_items,
                               "with_consensus": _num(r.with_consensus), "probe_votes": r.probe_votes,
                               "probe_right": r.probe_right, "probe_accuracy": _num(r.probe_accuracy),
                               "probe_interval": None if r.probe_interval is None else
                               [round(r.probe_interval[0], 4), round(r.probe_interval[1], 4)]}
                              for r in self.reviewers],
                "cards": self.cards, "settings": self.settings}


def _num(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)


def vote_matrix(project: Project) -> tuple[np.ndarray, list[str], list[int]]:
    """The overlap cards' votes as [cards, reviewers] values (class id, engine/votes.REJECTED,
    NaN: no vote), the reviewers (columns) and the cards (rows, sample ids)."""
    ballots = project.store.votes.ballots(VotePurpose.OVERLAP)
    reviewers = sorted({b.reviewer for b in ballots})
    cards = sorted({b.sample_id for b in ballots})
    row, col = {s: i for i, s in enumerate(cards)}, {r: j for j, r in enumerate(reviewers)}
    votes = np.full((len(cards), len(reviewers)), np.nan)
    for b in ballots:
        votes[row[b.sample_id], col[b.reviewer]] = vote_value(b.action == Action.REJECT, b.label)
    return votes, reviewers, cards


def probe_scores(project: Project) -> dict[str, tuple[int, int]]:
    """Per reviewer: (right, total) of their votes on the gold probes (against the gold labels now)."""
    gold_ids, gold_y, _ = project.store.samples.split_arrays(Split.LABELED)
    gold = dict(zip(gold_ids.tolist(), gold_y.tolist()))
    out: dict[str, tuple[int, int]] = {}
    for b in project.store.votes.ballots(VotePurpose.PROBE):
        right, n = out.get(b.reviewer, (0, 0))
        out[b.reviewer] = (right + is_right(b.action, b.label, gold[b.sample_id]), n + 1)
    return out


def agreement(project: Project, draws: int = DRAWS, seed: int = 0) -> Agreement:
    """Agreement of the votes on the overlap share, per class and overall, with 95 % bootstrap
    intervals; the reviewer-pair matrix; each reviewer against the consensus and the probes."""
    C = len(project.classes)
    votes, reviewers, cards = vote_matrix(project)
    overall, per_class, percent = alpha_with_interval(votes, C, draws, seed)
    present = ~np.isnan(votes)
    consensus = np.full(len(cards), np.nan)
    needed = {sid: c.votes_needed for sid, c in project.store.votes.cards(VotePurpose.OVERLAP).items()}
    for i, sid in enumerate(cards):
        values = votes[i][present[i]].astype(int).tolist()
        value, _ = majority(values)
        if value is not None and len(values) >= needed.get(sid, 1):
            consensus[i] = value
    shared, agree = pair_matrix(votes)
    n_cons, with_cons = agreement_with(votes, consensus)
    probes = probe_scores(project)
    people = sorted(set(reviewers) | set(probes))
    col = {r: j for j, r in enumerate(reviewers)}
    rows = []
    for r in people:
        right, n = probes.get(r, (0, 0))
        j = col.get(r)
        rows.append(ReviewerAgreement(
            r, int(present[:, j].sum()) if j is not None else 0, int(n_cons[j]) if j is not None else 0,
            float(with_cons[j]) if j is not None and n_cons[j] else None, n, right, right / n if n else None,
            wilson_interval(right, n)))
    states: dict[str, int] = {}
    for st in card_states(project, list(needed)).values():
        states[st["state"]] = states.get(st["state"], 0) + 1
    settings = overlap(project)
    return Agreement(overall, dict(zip(project.classes, per_class)), percent, int((present.sum(1) >= 2).sum()),
                     int(present.sum()), rows, reviewers, shared.tolist(), agree.tolist(), states,
                     {"votes": settings.votes, "share": settings.share, "probes": settings.probes})
