"""The steps of voted cards inside one write transaction (each takes the open session): which
entries of a batch are votes, adjudications or plain decisions, refused with the reason when the
rules say no; votes appended and kept per reviewer; and each touched card settled: an overlap
card's consensus (the strict majority of its K votes: engine/votes.majority) put in force or
withdrawn, an audit card's gold label set to its consensus or back to what it was.

The rules (DESIGN.md, "Votes, consensus, adjudication, audit"): one vote per reviewer and card
(an undo takes one's own back); a card takes no vote past its K; a tie (no majority) of K votes
is decided by a reviewer who did not vote, as source `adjudicated`; with an overlap of K >= 2
set, a sample outside the share decided by one reviewer takes no second opinion as an
overwrite (`single_holder`)."""
from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..engine.votes import REJECTED, majority, vote_value
from ..engine.vocab import UNDO, Action, CardKind, Source, Tool, VotePurpose
from .database import chunks
from .errors import VoteRefused
from .models import Decision, GoldChange, Sample, Vote, VoteCard
from .writes import DecisionIn, append_decisions, decisions_in_force, log_rows, recompute_current


def cards_of(s: Session, sample_ids: Sequence[int]) -> dict[int, VoteCard]:
    out: dict[int, VoteCard] = {}
    for part in chunks(list(sample_ids)):
        out.update((c.sample_id, c) for c in s.scalars(select(VoteCard).where(VoteCard.sample_id.in_(part))))
    return out


def votes_on(s: Session, sample_ids: Sequence[int]) -> dict[int, dict[str, Vote]]:
    """Per sample, the votes in force by reviewer."""
    out: dict[int, dict[str, Vote]] = {}
    for part in chunks(list(sample_ids)):
        for v in s.scalars(select(Vote).where(Vote.sample_id.in_(part))):
            out.setdefault(v.sample_id, {})[v.reviewer] = v
    return out


def value_of(v: Vote) -> int:
    return vote_value(v.action == Action.REJECT, v.label)


def route(s: Session, entries: Sequence[DecisionIn], reviewer: str,
          single_holder: bool) -> tuple[list[DecisionIn], list[DecisionIn]]:
    """(decisions to put in force, adjudications among them marked; votes) of a batch, or
    VoteRefused naming every entry the rules refuse."""
    ids = [e.sample_id for e in entries]
    cards, ballots, current = cards_of(s, ids), votes_on(s, ids), decisions_in_force(s, ids)
    by = {c.decision_id: d for c in current.values() if (d := s.get(Decision, c.decision_id)) is not None}
    plain: list[DecisionIn] = []
    votes: list[DecisionIn] = []
    problems: dict[int, str] = {}
    voted: set[int] = set()
    for e in entries:
        sid, card, mine = e.sample_id, cards.get(e.sample_id), ballots.get(e.sample_id, {})
        in_force = by.get(current[sid].decision_id) if sid in current else None
        if card is None:
            if single_holder and in_force is not None and in_force.reviewer not in (reviewer, Tool.AUTO):
                problems[sid] = (f"decided by {in_force.reviewer} and not in the overlap share: a second "
                                 "opinion is a vote, which only the overlap share takes (mersemi overlap)")
            else:
                plain.append(e)
            continue
        full = card.purpose != VotePurpose.PROBE and len(mine) >= card.votes_needed
        if reviewer in mine:
            voted.add(sid)
            problems[sid] = ("you voted on it, so its tie is for a reviewer who did not vote to decide"
                             if full and card.purpose == VotePurpose.OVERLAP and _tied(in_force) else
                             "you voted on it already (undo your vote to change it)")
        elif card.purpose == VotePurpose.AUDIT and e.action == Action.REJECT:
            problems[sid] = "an audit card takes a class (accept or a label), not a rejection"
        elif not full:
            votes.append(e)
        elif card.purpose == VotePurpose.OVERLAP and _tied(in_force):
            plain.append(dataclasses.replace(e, source=Source.ADJUDICATED))
        else:
            problems[sid] = f"has its {card.votes_needed} votes; its consensus is in force"
    if problems:
        raise VoteRefused(problems, frozenset(voted))
    return plain, votes


def _tied(in_force: Decision | None) -> bool:
    """Whether a full overlap card waits for (or had) an adjudication: no consensus in force."""
    return in_force is None or in_force.reviewer != Tool.CONSENSUS


def cast(s: Session, entries: Sequence[DecisionIn], reviewer: str, now: datetime, batch: str) -> None:
    """Append votes to the log and make each the reviewer's vote in force on its card."""
    ids = log_rows(s, entries, reviewer, now, batch, vote=True)
    for did, e in zip(ids, entries):
        s.execute(delete(Vote).where(Vote.sample_id == e.sample_id, Vote.reviewer == reviewer))
        s.add(Vote(sample_id=e.sample_id, reviewer=reviewer, decision_id=did, action=e.action, label=e.label))
    s.flush()


def restore_vote(s: Session, sample_id: int, reviewer: str) -> None:
    """After an undo: the reviewer's vote in force on the card is their latest vote not undone."""
    log = list(s.scalars(select(Decision).where(Decision.sample_id == sample_id, Decision.reviewer == reviewer)
                         .order_by(Decision.id.desc())))
    undone = {d.undoes for d in log if d.undoes is not None}
    s.execute(delete(Vote).where(Vote.sample_id == sample_id, Vote.reviewer == reviewer))
    for d in log:
        if d.vote and d.id not in undone:
            s.add(Vote(sample_id=sample_id, reviewer=reviewer, decision_id=d.id, action=d.action, label=d.label))
            break
    s.flush()


def settle(s: Session, sample_ids: Sequence[int], now: datetime) -> None:
    """Bring each card's outcome in line with its votes in force: the consensus of an overlap
    card, the gold label of an audit card (probes have none)."""
    cards, ballots = cards_of(s, sample_ids), votes_on(s, sample_ids)
    for sid in dict.fromkeys(sample_ids):
        card = cards.get(sid)
        if card is None or card.purpose == VotePurpose.PROBE:
            continue
        mine = list(ballots.get(sid, {}).values())
        if card.purpose == VotePurpose.OVERLAP:
            _settle_overlap(s, card, mine, now)
        else:
            _settle_audit(s, card, mine, now)


def _settle_overlap(s: Session, card: VoteCard, votes: list[Vote], now: datetime) -> None:
    log = list(s.scalars(select(Decision).where(Decision.sample_id == card.sample_id).order_by(Decision.id)))
    undone = {d.undoes for d in log if d.undoes is not None}
    live = [d for d in log if d.reviewer == Tool.CONSENSUS and d.action != UNDO and d.id not in undone]
    desired = None
    if len(votes) >= card.votes_needed:
        value, n = majority([value_of(v) for v in votes])
        if value is not None:
            desired = (value, n, len(votes))
    last = live[-1] if live else None
    if last is not None and len(live) == 1 and desired is not None and \
            (_value_of_decision(last), last.votes_for, last.votes_cast) == desired:
        return
    batch = uuid.uuid4().hex
    for d in live:   # the consensus in force no longer holds: taken back, in the log
        s.add(Decision(sample_id=d.sample_id, round_id=d.round_id, action=UNDO, label=None, predicted=d.predicted,
                       undoes=d.id, reviewer=Tool.CONSENSUS, batch=batch, created_at=now, vote=False))
    s.flush()
    if desired is None:
        recompute_current(s, card.sample_id)
        return
    value, n, cast_ = desired
    first = s.get(Decision, min(v.decision_id for v in votes))
    assert first is not None
    predicted = first.predicted if first.predicted is not None else first.label
    if value == REJECTED:
        action, label = Action.REJECT, predicted
    elif value == predicted:
        action, label = Action.ACCEPT, value
    else:
        action, label = (Action.RELABEL if first.card == CardKind.VERIFY else Action.LABEL), value
    entry = DecisionIn(card.sample_id, action, int(label) if label is not None else value, first.round_id,
                       note=f"consensus: {n} of {cast_} votes", predicted=predicted,
                       card=CardKind(first.card) if first.card else None, confidence=first.confidence,
                       source=Source.CONSENSUS, votes_for=n, votes_cast=cast_)
    append_decisions(s, [entry], Tool.CONSENSUS, now, batch)


def _value_of_decision(d: Decision) -> int:
    return vote_value(d.action == Action.REJECT, d.label)


def _settle_audit(s: Session, card: VoteCard, votes: list[Vote], now: datetime) -> None:
    sample = s.get(Sample, card.sample_id)
    assert sample is not None and sample.gold_label is not None
    history = list(s.scalars(select(GoldChange).where(GoldChange.sample_id == card.sample_id)
                             .order_by(GoldChange.id)))
    imported = history[0].old_label if history else sample.gold_label
    value, n = majority([value_of(v) for v in votes]) if len(votes) >= card.votes_needed else (None, 0)
    target = imported if value is None or value == REJECTED else value
    if target == sample.gold_label:
        return
    note = (f"consensus of {n} of {len(votes)} votes" if value is not None
            else "its votes no longer agree: back to the imported label")
    s.add(GoldChange(sample_id=sample.id, old_label=sample.gold_label, new_label=target, votes_for=n,
                     votes_cast=len(votes), round_id=card.round_id, changed_at=now, note=note))
    sample.gold_label = target
    s.flush()
