"""The store's voted cards (`store.votes`): which samples take votes and why, the votes in force,
what the queues leave out because of them, the ties waiting for adjudication and the gold labels
changed by an audit. Writing a vote goes through `store.decisions.record` (one batch with the
other decisions; db/vote_writes.py holds the rules)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ..engine.vocab import Tool, VotePurpose
from .database import Database, chunks
from .models import CurrentDecision, Decision, GoldChange, Vote, VoteCard, as_utc


@dataclass(frozen=True)
class Ballot:
    """One vote in force: on which sample, by whom, what it names (class id; reject: the
    rejected class) and when."""
    sample_id: int
    reviewer: str
    action: str
    label: int | None
    at: datetime


class VoteQueries:
    """The queries on voted cards (`store.votes`, db/store.py)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def pick(self, purpose: VotePurpose, sample_ids: Sequence[int], votes_needed: int, round_id: int | None) -> int:
        """The cards of `purpose` become `sample_ids`, each needing `votes_needed` votes: the
        cards of that purpose nobody has voted on yet are dropped first, the voted ones keep
        theirs. Returns how many cards of the purpose there are now."""
        def work(s: Session) -> int:
            voted = select(Vote.sample_id).distinct()
            s.execute(delete(VoteCard).where(VoteCard.purpose == purpose, VoteCard.sample_id.not_in(voted)))
            taken = set(s.scalars(select(VoteCard.sample_id)))
            now = self.db.clock()
            for sid in sample_ids:
                if int(sid) not in taken:
                    s.add(VoteCard(sample_id=int(sid), purpose=purpose, votes_needed=votes_needed,
                                   round_id=round_id, created_at=now))
            s.flush()
            return s.scalar(select(func.count()).select_from(VoteCard).where(VoteCard.purpose == purpose)) or 0
        return self.db.write(work)

    def cards_of(self, sample_ids: Sequence[int]) -> dict[int, VoteCard]:
        """The voted cards among these samples."""
        out: dict[int, VoteCard] = {}
        with self.db.session() as s:
            for part in chunks(list(sample_ids)):
                out.update((c.sample_id, c) for c in s.scalars(select(VoteCard).where(VoteCard.sample_id.in_(part))))
        return out

    def cards(self, purpose: VotePurpose | None = None) -> dict[int, VoteCard]:
        q = select(VoteCard) if purpose is None else select(VoteCard).where(VoteCard.purpose == purpose)
        with self.db.session() as s:
            return {c.sample_id: c for c in s.scalars(q)}

    def ballots(self, purpose: VotePurpose | None = None) -> list[Ballot]:
        """Every vote in force (on the cards of `purpose`), oldest first."""
        q = (select(Vote.sample_id, Vote.reviewer, Vote.action, Vote.label, Decision.created_at)
             .join(Decision, Decision.id == Vote.decision_id).order_by(Decision.id))
        if purpose is not None:
            q = q.join(VoteCard, VoteCard.sample_id == Vote.sample_id).where(VoteCard.purpose == purpose)
        with self.db.session() as s:
            return [Ballot(sid, r, a, label, as_utc(t)) for sid, r, a, label, t in s.execute(q)]

    def on(self, sample_ids: Sequence[int]) -> dict[int, list[Ballot]]:
        """The votes in force on these samples, oldest first per sample."""
        out: dict[int, list[Ballot]] = {}
        with self.db.session() as s:
            for part in chunks(list(sample_ids)):
                q = (select(Vote.sample_id, Vote.reviewer, Vote.action, Vote.label, Decision.created_at)
                     .join(Decision, Decision.id == Vote.decision_id).where(Vote.sample_id.in_(part))
                     .order_by(Decision.id))
                for sid, r, a, label, t in s.execute(q):
                    out.setdefault(sid, []).append(Ballot(sid, r, a, label, as_utc(t)))
        return out

    def closed(self, reviewer: str | None, tool: bool = False) -> np.ndarray:
        """Pool samples the review queues leave out because of votes: those `reviewer` voted on,
        and the cards with all their votes (waiting for adjudication, or settled); with `tool`
        (the automatic step), every overlap card: people vote on those."""
        with self.db.session() as s:
            ids: set[int] = set()
            if reviewer:
                ids |= set(s.scalars(select(Vote.sample_id).where(Vote.reviewer == reviewer)))
            cast = (select(Vote.sample_id, func.count().label("n")).group_by(Vote.sample_id).subquery())
            ids |= set(s.scalars(select(VoteCard.sample_id).join(cast, cast.c.sample_id == VoteCard.sample_id)
                                 .where(VoteCard.purpose == VotePurpose.OVERLAP, cast.c.n >= VoteCard.votes_needed)))
            if tool:
                ids |= set(s.scalars(select(VoteCard.sample_id).where(VoteCard.purpose == VotePurpose.OVERLAP)))
        return np.array(sorted(ids), np.int64)

    def ties(self) -> list[int]:
        """Overlap cards with all their votes and no decision in force: no majority, so a
        reviewer who did not vote decides (the adjudicate queue), oldest first."""
        with self.db.session() as s:
            cast = (select(Vote.sample_id, func.count().label("n"), func.max(Vote.decision_id).label("last"))
                    .group_by(Vote.sample_id).subquery())
            q = (select(VoteCard.sample_id).join(cast, cast.c.sample_id == VoteCard.sample_id)
                 .outerjoin(CurrentDecision, CurrentDecision.sample_id == VoteCard.sample_id)
                 .where(VoteCard.purpose == VotePurpose.OVERLAP, cast.c.n >= VoteCard.votes_needed,
                        CurrentDecision.sample_id.is_(None))
                 .order_by(cast.c.last))
            return list(s.scalars(q))

    def adjudicated(self) -> dict[int, Decision]:
        """Overlap cards whose decision in force is a person's adjudication of a tie."""
        with self.db.session() as s:
            q = (select(Decision).join(CurrentDecision, CurrentDecision.decision_id == Decision.id)
                 .join(VoteCard, VoteCard.sample_id == Decision.sample_id)
                 .where(VoteCard.purpose == VotePurpose.OVERLAP, Decision.reviewer != Tool.CONSENSUS))
            return {d.sample_id: d for d in s.scalars(q)}

    def gold_changes(self) -> list[GoldChange]:
        with self.db.session() as s:
            return list(s.scalars(select(GoldChange).order_by(GoldChange.id)))
