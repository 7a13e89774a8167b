"""The queries the app and the command line need, each behind a small method, grouped by what
they are about: `store.meta`, `store.classes`, `store.samples` (db/sample_queries.py),
`store.rounds` and their predictions (db/round_queries.py), `store.thresholds`
(db/threshold_queries.py), `store.decisions` (db/decision_queries.py), `store.claims` on
cards (db/claim_queries.py) and `store.votes` on the cards that take votes (db/vote_queries.py).

`Store` holds the one `Database` (db/database.py: the SQLAlchemy engine, the short read sessions,
the write transaction, the clock) that every group shares, so the app's threads and a training
round in the background can share one Store. Arrays go in and out as NumPy (probability vectors
are float32 blobs), which keeps the database free of torch. What several groups write in one
transaction (a round's automatic decisions and thresholds) is db/writes.py.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import URL, func, select
from sqlalchemy.orm import Session

from ..engine.vocab import Tool
from .claim_queries import ClaimQueries
from .database import Database
from .decision_queries import DecisionQueries
from .models import ClassLabel, Decision, Meta, Round, Threshold, ThresholdChange, utcnow
from .round_queries import RoundQueries
from .sample_queries import SampleQueries
from .threshold_queries import ThresholdQueries
from .vote_queries import VoteQueries


class MetaQueries:
    """Key/value facts about the project (`store.meta`): feature dtype, media root, ..."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def set(self, **values: str) -> None:
        def work(s: Session) -> None:
            for k, v in values.items():
                s.merge(Meta(key=k, value=v))
        self.db.write(work)

    def get(self, key: str) -> str | None:
        with self.db.session() as s:
            return s.scalar(select(Meta.value).where(Meta.key == key))


class ClassQueries:
    """The project's classes (`store.classes`), in their order: a class's id is its position."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, names: Sequence[str], default_thresholds: Sequence[float]) -> None:
        """The classes of a new project, each with its first threshold (set by `init`)."""
        def work(s: Session) -> None:
            now = self.db.clock()
            for i, (n, t) in enumerate(zip(names, default_thresholds)):
                s.add(ClassLabel(id=i, name=n))
                s.flush()
                s.add(Threshold(class_id=i, value=t, updated_at=now, updated_by=Tool.INIT, policy_may_set=True))
                s.add(ThresholdChange(class_id=i, value=t, policy_may_set=True, set_by=Tool.INIT, set_at=now))
        self.db.write(work)

    def names(self) -> list[str]:
        with self.db.session() as s:
            return list(s.scalars(select(ClassLabel.name).order_by(ClassLabel.id)))


class Store:
    """One project's store (see the module doc): `Store(url)` opens it, `create=True` makes it."""

    def __init__(self, url: str | URL, create: bool = False, busy_timeout_s: float | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        """`busy_timeout_s`: how long a write waits for another writer (connect.BUSY_TIMEOUT_S);
        `clock`: the store's now, an aware UTC time (db/database.py)."""
        self.db = Database(url, create, busy_timeout_s, clock)
        self.meta = MetaQueries(self.db)
        self.classes = ClassQueries(self.db)
        self.samples = SampleQueries(self.db)
        self.rounds = RoundQueries(self.db)
        self.thresholds = ThresholdQueries(self.db)
        self.decisions = DecisionQueries(self.db)
        self.claims = ClaimQueries(self.db)
        self.votes = VoteQueries(self.db)

    def close(self) -> None:
        self.db.close()

    def change_marks(self) -> dict[str, Any]:
        """Cheap marks that change with every write a page shows: the decision log, the threshold
        history and the rounds (their count, the last one's status and progress)."""
        with self.db.session() as s:
            decisions = tuple(s.execute(select(func.count(), func.max(Decision.id))).one())
            thresholds = s.scalar(select(func.max(ThresholdChange.id)))
            last = s.execute(select(Round.id, Round.status, Round.progress).order_by(Round.id.desc()).limit(1)).first()
        return {"decisions": list(decisions), "thresholds": thresholds,
                "rounds": None if last is None else [last[0], last[1], last[2]]}
