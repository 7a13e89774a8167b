"""Votes on a project: the overlap setting (K votes on a share S of the pool cards, and gold
probes), what a batch of decisions needs to know about the voted cards it touches, each card's
state, and the training labels the votes give (`training_labels`, what a round trains on).
No Gradio; the rules themselves hold inside the write transaction (db/vote_writes.py).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..db.errors import VoteRefused
from ..db.models import VoteCard
from ..engine.config_schema import VotesConfig
from ..engine.votes import accuracy_of, class_posterior, decided_class, majority, vote_value
from ..engine.vocab import Action, CardState, Source, Split, VotePurpose

from .errors import Voted
from .project import Project, ProjectError
from .values import number

OVERLAP_VOTES, OVERLAP_SHARE, PROBE_SHARE = "overlap_votes", "overlap_share", "probe_share"   # meta keys
PICK_SEED = 27   # the overlap share and the probes are drawn with this seed: the same project, the same cards


@dataclass(frozen=True)
class Overlap:
    votes: int          # K: votes per card in the overlap share (1: one reviewer's decision, as without votes)
    share: float        # S: the share of the pool cards that take K votes
    probes: float       # the share of gold samples shown as ordinary cards (each vote scores its reviewer)


def overlap(project: Project) -> Overlap:
    """The project's overlap setting (K = 1, no share, no probes until `mersemi overlap`)."""
    meta = project.store.meta
    return Overlap(int(meta.get(OVERLAP_VOTES) or 1), float(meta.get(OVERLAP_SHARE) or 0.0),
                   float(meta.get(PROBE_SHARE) or 0.0))


def set_overlap(project: Project, votes: object, share: object, probes: object = 0.0, text: bool = False) -> dict:
    """`mersemi overlap DIR --votes K --share S [--probes P]`: from now on a share S of the current
    round's open pool cards (drawn at random, stratified by predicted class and card kind) go to K
    different reviewers, and a share P of the gold samples (stratified by class) is shown as
    ordinary cards. Cards already voted on keep their K; the others are drawn again. Every value
    is checked before anything is written. `text`: the values come from the command line."""
    flag = "--" if text else ""   # the command line's option, the API's argument
    k = int(number(votes, f"{flag}votes", low=1, high=100, integer=True, text=text))
    s = number(share, f"{flag}share", 0.0, 1.0, text=text)
    p = number(probes, f"{flag}probes", 0.0, 1.0, text=text)
    if (k > 1 and s > 0) or p > 0:
        rnd = project.store.rounds.current()
        if rnd is None:
            raise ProjectError("no finished round yet: the overlap share is drawn from a round's cards; "
                               "train round 0 first")
        from .review import open_mask, round_view

        view = round_view(project, rnd.id)
        open_ = open_mask(project, view)
        kind = np.array([1 if c >= t else 0 for c, t in zip(view.pool_conf, np.asarray(
            project.store.thresholds.values())[view.pool_pred])], np.int64)
        rng = np.random.default_rng(PICK_SEED)
        picked = _stratified(view.pool_ids[open_], view.pool_pred[open_] * 2 + kind[open_], s if k > 1 else 0.0, rng)
        gold_ids, gold_y, _ = project.store.samples.split_arrays(Split.LABELED)
        probes_ = _stratified(gold_ids, gold_y, p, rng)
        round_id: int | None = rnd.id
    else:
        picked = probes_ = np.zeros(0, np.int64)
        round_id = None
    store = project.store
    n_overlap = store.votes.pick(VotePurpose.OVERLAP, picked.tolist(), k, round_id)
    n_probes = store.votes.pick(VotePurpose.PROBE, probes_.tolist(), 1, round_id)
    store.meta.set(**{OVERLAP_VOTES: str(k), OVERLAP_SHARE: repr(s), PROBE_SHARE: repr(p)})
    return {"votes": k, "share": s, "probes": p, "overlap_cards": n_overlap, "probe_cards": n_probes}


def _stratified(ids: np.ndarray, strata: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """About `share` of `ids` at random, the same share of each stratum (rounded, at least one
    where the share is above 0)."""
    out = []
    for g in np.unique(strata):
        members = ids[strata == g]
        n = min(len(members), max(1, int(round(share * len(members))))) if share > 0 else 0
        out.append(rng.permutation(members)[:n])
    return np.sort(np.concatenate(out)).astype(np.int64) if out else np.zeros(0, np.int64)


# ---------------------------------------------------------------------- a batch's voted cards

def audit_cards(project: Project, sample_ids: Sequence[int], round_id: int) -> list[VoteCard]:
    """The gold samples among `sample_ids` on the audit queue now without a card yet: each
    becomes an audit card of K votes with its first vote."""
    from .audit import flagged

    wanted = set(int(i) for i in sample_ids) & set(flagged(project).tolist())
    have = project.store.votes.cards_of(sorted(wanted))
    k = overlap(project).votes
    return [VoteCard(sample_id=sid, purpose=VotePurpose.AUDIT, votes_needed=k, round_id=round_id)
            for sid in sorted(wanted - set(have))]


def gold_open_to_votes(project: Project, sample_ids: Sequence[int]) -> set[int]:
    """The gold samples among `sample_ids` a reviewer may decide on: probes and audit cards, and
    the gold labels the audit queue flags now."""
    from .audit import flagged

    ids = set(int(i) for i in sample_ids)
    cards = project.store.votes.cards_of(sorted(ids))
    return {i for i in ids if i in cards} | (ids & set(flagged(project).tolist()))


def refusal(project: Project, e: VoteRefused, source: str) -> ProjectError:
    """VoteRefused in one line, naming the samples; `Voted` (its own refusal code) when every
    sample refused is one the reviewer voted on."""
    names = project.store.samples.names(list(e.problems))
    parts = [f"{source}: sample {names.get(sid, sid)!r}: {why}" for sid, why in list(e.problems.items())[:5]]
    more = f" (and {len(e.problems) - 5} more)" if len(e.problems) > 5 else ""
    kind = Voted if e.voted and e.voted >= set(e.problems) else ProjectError
    return kind("; ".join(parts) + more)


def card_states(project: Project, sample_ids: Sequence[int]) -> dict[int, dict]:
    """Per voted card among `sample_ids`: its purpose, votes cast and needed, and its state:
    open (votes to come), consensus, tie (waits for adjudication), adjudicated; probes: open."""
    cards = project.store.votes.cards_of(sample_ids)
    mine = [i for i in sample_ids if i in cards]
    ballots = project.store.votes.on(mine)
    in_force = project.store.decisions.in_force(mine)
    out = {}
    for sid in mine:
        card, votes = cards[sid], ballots.get(sid, [])
        state = CardState.OPEN
        if card.purpose != VotePurpose.PROBE and len(votes) >= card.votes_needed:
            value, _ = majority([vote_value(b.action == Action.REJECT, b.label) for b in votes])
            if card.purpose == VotePurpose.AUDIT or in_force.get(sid) is None:
                state = CardState.TIE if value is None else CardState.CONSENSUS
            else:
                state = CardState.CONSENSUS if in_force[sid].source == Source.CONSENSUS else CardState.ADJUDICATED
        out[sid] = {"purpose": str(card.purpose), "votes": len(votes), "needed": card.votes_needed, "state": str(state)}
    return out


# ---------------------------------------------------------------------- training

def training_labels(project: Project, cfg: VotesConfig) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray | None]:
    """The pool labels a round trains on: sample ids, classes, sources and, when the votes train
    as soft targets, one distribution per row (None otherwise; rows without votes one-hot).

    `hold_out` with equal weights is what the store keeps in force: a card's consensus (the
    majority of its K votes) trains like any human label, a tie stays out until adjudicated.
    `soft`: every overlap card with all its votes and no adjudication trains on its vote
    distribution (rejections name no class: left out). `probes`: each vote counts by its
    reviewer's accuracy on the gold probes (engine/votes.class_posterior); with `hold_out` the
    posterior's single most likely class trains, a tie stays out."""
    ids, labels, sources = project.store.decisions.training_labels()
    if cfg.disagreement == "hold_out" and cfg.weights == "equal":
        return ids, labels, sources, None
    C = len(project.classes)
    cards = project.store.votes.cards(VotePurpose.OVERLAP)
    adjudicated = set(project.store.votes.adjudicated())
    ballots = project.store.votes.on([sid for sid in cards if sid not in adjudicated])
    accuracy = reviewer_accuracy(project) if cfg.weights == "probes" else {}
    voted: dict[int, np.ndarray] = {}
    for sid, votes in ballots.items():
        if len(votes) < cards[sid].votes_needed:
            continue
        values = [vote_value(b.action == Action.REJECT, b.label) for b in votes]
        acc = [accuracy.get(b.reviewer, accuracy_of(0, 0, C)) for b in votes] if accuracy else None
        dist = class_posterior(values, C, acc)
        if dist is not None:
            voted[sid] = dist
    keep = ~np.isin(ids, list(voted))
    ids, labels = ids[keep], labels[keep]
    sources = [s for s, k in zip(sources, keep) if k]
    rows, dists = [], []
    for sid, dist in sorted(voted.items()):
        if cfg.disagreement == "hold_out":
            c = decided_class(dist)
            if c is None:
                continue
            dist = np.eye(C)[c]
        rows.append(sid)
        dists.append(dist)
    new_labels = np.array([int(d.argmax()) for d in dists], np.int64)
    ids = np.concatenate([ids, np.array(rows, np.int64)])
    labels = np.concatenate([labels, new_labels])
    sources = sources + [Source.CONSENSUS] * len(rows)
    order = np.argsort(ids, kind="stable")
    if cfg.disagreement == "hold_out":
        return ids[order], labels[order], [sources[i] for i in order], None
    targets = np.concatenate([np.eye(C)[labels[:len(labels) - len(rows)]], np.array(dists).reshape(-1, C)])
    return ids[order], labels[order], [sources[i] for i in order], targets[order].astype(np.float32)


def reviewer_accuracy(project: Project) -> dict[str, float]:
    """Each reviewer's accuracy on the gold probes, smoothed (engine/votes.accuracy_of)."""
    from .agreement import probe_scores

    C = len(project.classes)
    return {r: accuracy_of(right, n, C) for r, (right, n) in probe_scores(project).items()}


def is_right(action: str, label: int | None, gold: int) -> bool:
    """Whether a vote on a gold probe is right: it names the gold class, or it rejects a
    prediction (its label) that is not the gold class."""
    return label != gold if action == Action.REJECT else label == gold


def tool_closed(project: Project) -> np.ndarray:
    """Pool samples the automatic step never takes: a decision in force, or a card people vote
    on (an overlap card, a gold probe)."""
    return np.union1d(project.store.decisions.decided_ids(), project.store.votes.closed(None, True))
