"""The store's claims: a card on a reviewer's screen is held for them for a while, so that
reviewers working at once get different cards."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..engine.vocab import VotePurpose
from .database import Database, chunks
from .models import Claim, as_utc
from .vote_writes import cards_of, votes_on
from .writes import decisions_in_force


class ClaimQueries:
    """The queries on claims (`store.claims`, db/store.py)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def take(self, sample_id: int, reviewer: str, seconds: float, server: str | None = None) -> bool:
        """Hold a sample's card for `reviewer` for `seconds` from now, so that reviewers
        working at once get different cards. False while another reviewer holds it; the
        holder claiming again extends the hold. An expired claim is simply taken over."""
        def work(s: Session) -> bool:
            now = self.db.clock()
            held = s.get(Claim, sample_id)
            if held is not None and held.reviewer != reviewer and as_utc(held.expires_at) > now:
                return False
            s.merge(Claim(sample_id=sample_id, reviewer=reviewer,
                          expires_at=now + timedelta(seconds=seconds), server=server))
            return True
        return self.db.write(work)

    def take_first(self, sample_ids: Sequence[int], reviewer: str, seconds: float,
                   server: str | None = None, adjudicate: bool = False) -> int | None:
        """In one write transaction: hold the first of `sample_ids` that no other reviewer
        holds, that has no decision in force and that is open to the reviewer's vote (not voted
        on by them, not a card with all its votes) (the queue the ids come from was read before
        this transaction) for `reviewer` for `seconds`, and drop the reviewer's other claims
        (a reviewer holds the one card on screen). None, and nothing changed, when there is none.
        `adjudicate`: the ids are ties, which have all their votes: open to those who did not vote."""
        def work(s: Session) -> int | None:
            now = self.db.clock()
            ids = [int(i) for i in sample_ids]
            held: dict[int, Claim] = {}
            for part in chunks(ids):
                held.update((c.sample_id, c) for c in s.scalars(select(Claim).where(Claim.sample_id.in_(part))))
            decided = set(decisions_in_force(s, ids))
            cards, ballots = cards_of(s, ids), votes_on(s, ids)
            decided |= {sid for sid, mine in ballots.items() if reviewer in mine or (
                not adjudicate and sid in cards and cards[sid].purpose == VotePurpose.OVERLAP
                and len(mine) >= cards[sid].votes_needed)}
            for sid in ids:
                c = held.get(sid)
                if sid not in decided and (c is None or c.reviewer == reviewer or as_utc(c.expires_at) <= now):
                    break
            else:
                return None
            s.execute(delete(Claim).where(Claim.reviewer == reviewer, Claim.sample_id != sid))
            s.merge(Claim(sample_id=sid, reviewer=reviewer, expires_at=now + timedelta(seconds=seconds),
                          server=server))
            return sid
        return self.db.write(work)

    def held_by_others(self, reviewer: str) -> set[int]:
        """Samples held by another reviewer right now (an index range scan on expires_at)."""
        now = self.db.clock()
        with self.db.session() as s:
            return set(s.scalars(select(Claim.sample_id).where(Claim.expires_at > now, Claim.reviewer != reviewer)))

    def release_dead_servers(self, is_dead: Callable[[str], bool]) -> int:
        """Drop the claims of the servers `is_dead` names (server "host:pid"): a killed server's
        cards would stay held until they expire. Returns how many were dropped."""
        with self.db.session() as s:
            servers = set(s.scalars(select(Claim.server).where(Claim.server.is_not(None)).distinct()))
        dead = [x for x in servers if x is not None and is_dead(x)]
        if not dead:
            return 0

        def work(s: Session) -> int:
            gone = list(s.scalars(select(Claim.sample_id).where(Claim.server.in_(dead))))
            s.execute(delete(Claim).where(Claim.server.in_(dead)))
            return len(gone)
        return self.db.write(work)
