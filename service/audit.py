"""The gold audit: the gold labels the current round's out-of-fold probabilities flag as likely
wrong (confident learning, engine/audit.py) form the `audit` queue; reviewers vote on them, and a
gold label changes only by a consensus of K votes (db/vote_writes.py), logged with the label it
had (`gold_changes`, exported with `export --what gold_changes`). No Gradio."""
from __future__ import annotations

import numpy as np

from ..engine.audit import label_issues
from ..engine.vocab import PredictionKind, Split, VotePurpose

from .project import Project

_oof: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}   # (project, round) -> OOF ids, probs


def oof_predictions(project: Project, round_id: int) -> tuple[np.ndarray, np.ndarray]:
    """A finished round's out-of-fold probabilities of the gold samples (ids, [n, C]); kept, they
    never change."""
    key = (str(project.root.resolve()), round_id)
    if key not in _oof:
        if len(_oof) > 8:
            _oof.pop(next(iter(_oof)))
        _oof[key] = project.store.rounds.predictions(round_id, PredictionKind.OOF)
    return _oof[key]


def flagged(project: Project) -> np.ndarray:
    """Gold sample ids whose labels the current round's out-of-fold probabilities flag, the least
    likely right first (labels as they are now: a label an audit changed is judged anew)."""
    rnd = project.store.rounds.current()
    if rnd is None:
        return np.zeros(0, np.int64)
    ids, probs = oof_predictions(project, rnd.id)
    if len(ids) == 0:
        return np.zeros(0, np.int64)
    gold_ids, gold_y, _ = project.store.samples.split_arrays(Split.LABELED)
    label = dict(zip(gold_ids.tolist(), gold_y.tolist()))
    labels = np.array([label.get(i, -1) for i in ids.tolist()], np.int64)
    known = labels >= 0
    ids, probs, labels = ids[known], probs[known], labels[known]
    return ids[label_issues(labels, probs)]


def audit_queue(project: Project, reviewer: str | None = None) -> list[int]:
    """The audit queue: flagged gold labels, then audit cards still taking votes that the round no
    longer flags; without the cards that have all their votes and those `reviewer` voted on."""
    cards = project.store.votes.cards(VotePurpose.AUDIT)
    ballots = project.store.votes.on(list(cards))
    done = {sid for sid, c in cards.items() if len(ballots.get(sid, [])) >= c.votes_needed}
    mine = {sid for sid, votes in ballots.items() if reviewer and any(b.reviewer == reviewer for b in votes)}
    order = list(dict.fromkeys(flagged(project).tolist() + sorted(cards)))
    return [sid for sid in order if sid not in done and sid not in mine]


def gold_changes(project: Project) -> list[dict]:
    """Every gold label an audit changed (or changed back), oldest first."""
    changes = project.store.votes.gold_changes()
    names = project.store.samples.names([c.sample_id for c in changes])
    classes = project.classes
    return [{"name": names[c.sample_id], "old_label": classes[c.old_label], "new_label": classes[c.new_label],
             "votes_for": c.votes_for, "votes_cast": c.votes_cast, "round": c.round_id,
             "at": c.changed_at.isoformat(timespec="seconds"), "note": c.note}
            for c in changes]
