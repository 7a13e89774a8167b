"""The store's thresholds: per class the value in force and who set it, every change logged.
The policy's step after a round (`writes.apply_policy`), which leaves a person's value alone,
runs inside the round's own transaction (db/round_queries.py)."""
from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .database import Database
from .models import Threshold, ThresholdChange


class ThresholdQueries:
    """The queries on thresholds (`store.thresholds`, db/store.py)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def values(self) -> list[float]:
        """Every class's threshold in force (class order)."""
        with self.db.session() as s:
            return list(s.scalars(select(Threshold.value).order_by(Threshold.class_id)))

    def rows(self) -> list[Threshold]:
        """Every class's threshold with its owner (class order)."""
        with self.db.session() as s:
            return list(s.scalars(select(Threshold).order_by(Threshold.class_id)))

    def set(self, values: dict[int, float], by: str, policy_may_set: bool = False) -> None:
        """Set thresholds in one transaction, each change logged. A person's value is theirs
        (`policy_may_set` False) until they let the policy set it again (`release`)."""
        def work(s: Session) -> None:
            now = self.db.clock()
            for cid, v in values.items():
                s.execute(update(Threshold).where(Threshold.class_id == cid).values(
                    value=float(v), updated_at=now, updated_by=by, policy_may_set=policy_may_set))
                s.add(ThresholdChange(class_id=cid, value=float(v), policy_may_set=policy_may_set,
                                      set_by=by, set_at=now))
        self.db.write(work)

    def release(self, class_ids: Sequence[int], by: str) -> None:
        """Let the policy set these classes after the next rounds (their values stay for now)."""
        def work(s: Session) -> None:
            now = self.db.clock()
            for t in s.scalars(select(Threshold).where(Threshold.class_id.in_(list(class_ids)))):
                t.policy_may_set = True
                s.add(ThresholdChange(class_id=t.class_id, value=t.value, policy_may_set=True, set_by=by,
                                      set_at=now, note="let the policy set it"))
        self.db.write(work)

    def history(self, limit: int | None = None) -> list[ThresholdChange]:
        """Threshold changes, newest first."""
        q = select(ThresholdChange).order_by(ThresholdChange.id.desc())
        with self.db.session() as s:
            return list(s.scalars(q.limit(limit) if limit else q))
