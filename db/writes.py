"""The steps inside one write transaction that more than one query group takes: a batch of
decisions appended to the log (and the decision in force per sample kept beside it), the
decisions in force read under the lock, and the policy's thresholds after a round. Each takes
the open session; the query groups (db/*_queries.py) call them from their `write` work."""
from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from ..engine.vocab import UNDO, Action, CardKind, Source, Tool, source_of
from .database import chunks
from .models import CurrentDecision, Decision, Threshold, ThresholdChange


@dataclass(frozen=True)
class DecisionIn:
    sample_id: int
    action: Action
    label: int                # accepted / relabelled / given class, or the rejected prediction
    round_id: int | None
    note: str | None = None
    predicted: int | None = None  # the round's prediction; accept / reject: `label` when not given
    card: CardKind | None = None  # the card it was decided on (engine/selection.card_kind)
    confidence: float | None = None   # the round's confidence in its prediction
    # Votes (db/vote_writes.py): the source when it is not the action's (consensus, adjudicated),
    # and on a consensus the votes behind it.
    source: Source | None = None
    votes_for: int | None = None
    votes_cast: int | None = None

    def source_for(self, reviewer: str) -> Source | None:
        """Where the label comes from: given, or what the action and the reviewer say."""
        if self.source is not None and self.action != Action.REJECT:
            return self.source
        return source_of(self.action, reviewer)

    @property
    def predicted_class(self) -> int | None:
        answers = self.action in (Action.ACCEPT, Action.REJECT)   # they name the prediction
        return self.label if self.predicted is None and answers else self.predicted


def decisions_in_force(s: Session, sample_ids: list[int]) -> dict[int, CurrentDecision]:
    out: dict[int, CurrentDecision] = {}
    for part in chunks(sample_ids):
        for c in s.scalars(select(CurrentDecision).where(CurrentDecision.sample_id.in_(part))):
            out[c.sample_id] = c
    return out


def log_rows(s: Session, entries: Sequence[DecisionIn], reviewer: str, now: datetime, batch: str,
             vote: bool = False) -> list[int]:
    """Append entries to the decision log (`vote`: as votes); their ids, in order."""
    if not entries:
        return []
    rows = [{"sample_id": e.sample_id, "round_id": e.round_id, "action": e.action, "label": e.label,
             "predicted": e.predicted_class, "reviewer": reviewer, "note": e.note, "batch": batch,
             "created_at": now, "source": e.source_for(reviewer), "card": e.card,
             "confidence": e.confidence, "vote": vote, "votes_for": e.votes_for, "votes_cast": e.votes_cast}
            for e in entries]
    return list(s.scalars(insert(Decision).returning(Decision.id, sort_by_parameter_order=True), rows))


def append_decisions(s: Session, entries: Sequence[DecisionIn], reviewer: str, now: datetime,
                     batch: str | None = None) -> str:
    """Append decisions, each the one in force on its sample from now on; returns the batch id."""
    batch = batch or uuid.uuid4().hex
    if not entries:
        return batch
    ids = log_rows(s, entries, reviewer, now, batch)
    sample_ids = [e.sample_id for e in entries]
    for part in chunks(sample_ids):
        s.execute(delete(CurrentDecision).where(CurrentDecision.sample_id.in_(part)))
    # A batch may name a sample twice: the later entry wins, as in the log.
    latest = {e.sample_id: (did, e) for did, e in zip(ids, entries)}
    s.execute(insert(CurrentDecision), [
        {"sample_id": sid, "decision_id": did, "action": e.action, "label": e.label,
         "predicted": e.predicted_class, "source": e.source_for(reviewer)} for sid, (did, e) in latest.items()])
    return batch


@dataclass(frozen=True)
class PolicyChange:
    """What the policy after a round did to one class's threshold: old -> new, who set the value
    in force now, and whether a person's ownership kept it."""
    class_id: int
    old: float
    new: float
    by: str | None       # who set the value in force now
    changed: bool
    kept_for_owner: bool

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, value: dict) -> PolicyChange:
        return cls(**value)


def apply_policy(s: Session, round_id: int, proposal: dict[int, float], everyone: bool,
                 now: datetime) -> list[PolicyChange]:
    """Set each proposed class's threshold unless a person owns it (read under the write lock,
    so a value a reviewer set while the round trained is kept); returns what happened per
    proposed class."""
    out = []
    for t in s.scalars(select(Threshold).where(Threshold.class_id.in_(list(proposal))).order_by(Threshold.class_id)):
        new = float(proposal[t.class_id])
        old, owner = t.value, t.updated_by
        if t.policy_may_set or everyone:
            if new != old or not t.policy_may_set:
                t.value, t.updated_at, t.updated_by, t.policy_may_set = new, now, Tool.POLICY, True
                s.add(ThresholdChange(class_id=t.class_id, value=new, policy_may_set=True, set_by=Tool.POLICY,
                                      set_at=now, round_id=round_id))
            owner = t.updated_by
        out.append(PolicyChange(t.class_id, old, t.value, owner, t.value != old, not (t.policy_may_set or everyone)))
    return out


def recompute_current(s: Session, sample_id: int) -> None:
    """Set the sample's decision in force to its latest entry that is neither an undo nor undone,
    nor a vote (a voted card's decision in force is its consensus or its adjudication)."""
    log = list(s.scalars(select(Decision).where(Decision.sample_id == sample_id).order_by(Decision.id.desc())))
    undone = {d.undoes for d in log if d.undoes is not None}
    s.execute(delete(CurrentDecision).where(CurrentDecision.sample_id == sample_id))
    for d in log:
        if d.action != UNDO and d.id not in undone and not d.vote:
            s.add(CurrentDecision(sample_id=sample_id, decision_id=d.id, action=d.action, label=d.label,
                                  predicted=d.predicted, source=d.source))
            break
