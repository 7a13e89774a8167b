"""The store's thresholds: per class the value in force and who set it, every change logged,
and the policy's step after a round (`_apply_policy`), which leaves a person's value alone."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..engine.vocab import Tool
from .models import Threshold, ThresholdChange
from .store_base import StoreBase


class ThresholdQueries(StoreBase):
    """The queries on thresholds, mixed into `Store` (db/store.py)."""

    def thresholds(self) -> list[float]:
        with self.session() as s:
            return list(s.scalars(select(Threshold.value).order_by(Threshold.class_id)))

    def threshold_rows(self) -> list[Threshold]:
        """Every class's threshold with its owner (class order)."""
        with self.session() as s:
            return list(s.scalars(select(Threshold).order_by(Threshold.class_id)))

    def set_thresholds(self, values: dict[int, float], by: str, policy_may_set: bool = False) -> None:
        """Set thresholds in one transaction, each change logged. A person's value is theirs
        (`policy_may_set` False) until they let the policy set it again (`release_thresholds`)."""
        def work(s: Session) -> None:
            now = self.clock()
            for cid, v in values.items():
                s.execute(update(Threshold).where(Threshold.class_id == cid).values(
                    value=float(v), updated_at=now, updated_by=by, policy_may_set=policy_may_set))
                s.add(ThresholdChange(class_id=cid, value=float(v), policy_may_set=policy_may_set,
                                      set_by=by, set_at=now))
        self._write(work)

    def release_thresholds(self, class_ids: Sequence[int], by: str) -> None:
        """Let the policy set these classes after the next rounds (their values stay for now)."""
        def work(s: Session) -> None:
            now = self.clock()
            for t in s.scalars(select(Threshold).where(Threshold.class_id.in_(list(class_ids)))):
                t.policy_may_set = True
                s.add(ThresholdChange(class_id=t.class_id, value=t.value, policy_may_set=True, set_by=by,
                                      set_at=now, note="let the policy set it"))
        self._write(work)

    def threshold_history(self, limit: int | None = None) -> list[ThresholdChange]:
        """Threshold changes, newest first."""
        q = select(ThresholdChange).order_by(ThresholdChange.id.desc())
        with self.session() as s:
            return list(s.scalars(q.limit(limit) if limit else q))


def _apply_policy(s: Session, round_id: int, proposal: dict[int, float], everyone: bool,
                  now: datetime) -> list[dict]:
    """Set each proposed class's threshold unless a person owns it (read under the write lock,
    so a value a reviewer set while the round trained is kept); returns per proposed class
    {class_id, old, new, by (who set the value in force now), changed}."""
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
        out.append({"class_id": t.class_id, "old": old, "new": t.value, "by": owner,
                    "changed": t.value != old, "kept_for_owner": not (t.policy_may_set or everyone)})
    return out
