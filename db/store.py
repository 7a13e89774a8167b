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
from typing import Any, cast

from sqlalchemy import URL, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..engine.vocab import RoundStatus, Tool
from .claim_queries import ClaimQueries
from .database import Database
from .decision_queries import DecisionQueries
from .models import ClassLabel, Decision, Meta, Round, Sample, Threshold, ThresholdChange, utcnow
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

    def get_or_set(self, key: str, value: str) -> str:
        """The value `key` holds; `value` set first when it holds none (one transaction: two
        servers starting at once agree on one value)."""
        def work(s: Session) -> str:
            held = s.scalar(select(Meta.value).where(Meta.key == key))
            if held is None:
                s.add(Meta(key=key, value=value))
            return value if held is None else held
        try:
            return self.db.write(work)
        except IntegrityError:   # another process set it between our read and our write
            return cast(str, self.get(key))


class ClassQueries:
    """The project's classes (`store.classes`), in their order: a class's id is its position."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, names: Sequence[str], default_thresholds: Sequence[float]) -> None:
        """The classes of a new project, each with its first threshold (set by `init`)."""
        self.db.write(lambda s: add_classes(s, names, default_thresholds, self.db.clock()))

    def names(self) -> list[str]:
        with self.db.session() as s:
            return list(s.scalars(select(ClassLabel.name).order_by(ClassLabel.id)))


def add_classes(s: Session, names: Sequence[str], default_thresholds: Sequence[float], now: datetime) -> None:
    """A new project's classes with their first thresholds, in session `s`."""
    for i, (n, t) in enumerate(zip(names, default_thresholds)):
        s.add(ClassLabel(id=i, name=n))
        s.flush()
        s.add(Threshold(class_id=i, value=t, updated_at=now, updated_by=Tool.INIT, policy_may_set=True))
        s.add(ThresholdChange(class_id=i, value=t, policy_may_set=True, set_by=Tool.INIT, set_at=now))


class Store:
    """One project's store (see the module doc): `Store(url)` opens it, `create=True` makes it."""

    def __init__(self, url: str | URL, create: bool = False, busy_timeout_s: float | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 classes: tuple[Sequence[str], Sequence[float]] | None = None) -> None:
        """`busy_timeout_s`: how long a write waits for another writer (connect.BUSY_TIMEOUT_S);
        `clock`: the store's now, an aware UTC time (db/database.py); `classes`: with `create`,
        a new project's class names and first thresholds, written with the schema (one
        transaction: a kill leaves no store without classes)."""
        populate = None if classes is None else (lambda s: add_classes(s, *classes, clock()))
        self.db = Database(url, create, busy_timeout_s, clock, populate)
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

    def people(self) -> set[str]:
        """Every name the store records as having decided or set a threshold."""
        with self.db.session() as s:
            return set(s.scalars(select(Decision.reviewer).distinct())) | \
                set(s.scalars(select(ThresholdChange.set_by).distinct()))

    def change_marks(self) -> dict[str, Any]:
        """Cheap marks that change with every write a page shows: the decision log, the threshold
        history, the rounds (their count, the last one's status and progress), the round in force
        and the number of samples."""
        with self.db.session() as s:
            decisions = tuple(s.execute(select(func.count(), func.max(Decision.id))).one())
            thresholds = s.scalar(select(func.max(ThresholdChange.id)))
            last = s.execute(select(Round.id, Round.status, Round.progress).order_by(Round.id.desc()).limit(1)).first()
            current = s.scalar(select(func.max(Round.id)).where(Round.status == RoundStatus.DONE))
            samples = s.scalar(select(func.count()).select_from(Sample))
        return {"decisions": list(decisions), "thresholds": thresholds,
                "rounds": None if last is None else [last[0], last[1], last[2]],
                "current_round": current, "samples": samples}
