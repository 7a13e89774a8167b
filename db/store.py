"""The queries the app and the command line need, each behind a small method.

`Store` owns the SQLAlchemy engine. Every method opens its own short session, so the app's
threads and a training round in the background can share one Store. Arrays go in and out as
NumPy (probability vectors are float32 blobs), which keeps the database free of torch.

Every write runs in one locked transaction (`StoreBase._write`, db/store_base.py, with the
engine and the sessions). The queries come in mixins by what they are about: rounds and their
predictions (db/round_queries.py), thresholds (db/threshold_queries.py), decisions
(db/decision_queries.py) and claims on cards (db/claim_queries.py); meta, classes and samples
are here.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..engine.vocab import RoundStatus, Tool
from .claim_queries import ClaimQueries
from .decision_queries import DecisionQueries
from .models import ClassLabel, Decision, Meta, Round, Sample, Threshold, ThresholdChange
from .round_queries import RoundQueries
from .store_base import _chunks
from .threshold_queries import ThresholdQueries


@dataclass(frozen=True)
class DecisionIn:
    sample_id: int
    action: str               # accept | reject | relabel | label
    label: int                # accepted / relabelled / given class, or the rejected prediction
    round_id: int | None
    note: str | None = None
    predicted: int | None = None  # the round's prediction; accept / reject: `label` when not given
    card: str | None = None       # the card it was decided on: verify (at or above the threshold) | label
    confidence: float | None = None   # the round's confidence in its prediction

    @property
    def predicted_class(self) -> int | None:
        return self.label if self.predicted is None and self.action in ("accept", "reject") else self.predicted


class Store(RoundQueries, ThresholdQueries, DecisionQueries, ClaimQueries):
    """One project's store (see the module doc): `Store(url)` opens it, `create=True` makes it."""

    # ------------------------------------------------------------------ meta, classes
    def set_meta(self, **values: str) -> None:
        def work(s: Session) -> None:
            for k, v in values.items():
                s.merge(Meta(key=k, value=v))
        self._write(work)

    def meta(self, key: str) -> str | None:
        with self.session() as s:
            return s.scalar(select(Meta.value).where(Meta.key == key))

    def meta_or_set(self, key: str, value: str) -> str:
        """The value `key` holds; `value` set first when it holds none (one transaction: two
        servers starting at once agree on one value)."""
        def work(s: Session) -> str:
            held = s.scalar(select(Meta.value).where(Meta.key == key))
            if held is None:
                s.add(Meta(key=key, value=value))
            return value if held is None else held
        try:
            return self._write(work)
        except IntegrityError:   # another process set it between our read and our write
            return cast(str, self.meta(key))

    def set_classes(self, names: Sequence[str], default_thresholds: Sequence[float]) -> None:
        def work(s: Session) -> None:
            now = self.clock()
            for i, (n, t) in enumerate(zip(names, default_thresholds)):
                s.add(ClassLabel(id=i, name=n))
                s.flush()
                s.add(Threshold(class_id=i, value=t, updated_at=now, updated_by=Tool.INIT, policy_may_set=True))
                s.add(ThresholdChange(class_id=i, value=t, policy_may_set=True, set_by=Tool.INIT, set_at=now))
        self._write(work)

    def classes(self) -> list[str]:
        with self.session() as s:
            return list(s.scalars(select(ClassLabel.name).order_by(ClassLabel.id)))

    # ------------------------------------------------------------------ samples
    def insert_samples(self, rows: list[dict[str, Any]]) -> None:
        """Bulk insert in one transaction; rows carry id, name, split, labels, text, media."""
        self._write(lambda s: s.execute(insert(Sample), rows))

    def sample_count(self) -> int:
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(Sample)) or 0

    def split_counts(self) -> dict[str, int]:
        with self.session() as s:
            return dict(s.execute(select(Sample.split, func.count()).group_by(Sample.split)).all())

    def gold_counts(self) -> dict[int, int]:
        with self.session() as s:
            q = (select(Sample.gold_label, func.count())
                 .where(Sample.split == "labeled", Sample.gold_label.is_not(None))
                 .group_by(Sample.gold_label))
            return {cast(int, label): n for label, n in s.execute(q).all()}

    def split_arrays(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ids, gold labels (-1 where none) and hidden true labels (-1 where none) of a split."""
        with self.session() as s:
            rows = s.execute(select(Sample.id, Sample.gold_label, Sample.true_label)
                             .where(Sample.split == split).order_by(Sample.id)).all()
        if not rows:
            empty = np.zeros(0, np.int64)
            return empty, empty.copy(), empty.copy()
        a = np.array([(i, -1 if g is None else g, -1 if t is None else t) for i, g, t in rows],
                     dtype=np.int64)
        return a[:, 0], a[:, 1], a[:, 2]

    def samples_by_name(self, names: Iterable[str]) -> dict[str, tuple[int, str]]:
        """name -> (id, split) for the names that exist."""
        names = list(dict.fromkeys(names))
        out: dict[str, tuple[int, str]] = {}
        with self.session() as s:
            for part in _chunks(names):
                for n, i, sp in s.execute(select(Sample.name, Sample.id, Sample.split)
                                          .where(Sample.name.in_(part))):
                    out[n] = (i, sp)
        return out

    def samples(self, ids: Sequence[int]) -> dict[int, Sample]:
        """id -> Sample for the ids that exist (detached: read their columns only)."""
        out: dict[int, Sample] = {}
        with self.session() as s:
            for part in _chunks(list(ids)):
                out.update((r.id, r) for r in s.scalars(select(Sample).where(Sample.id.in_(part))))
        return out

    def sample_names(self, ids: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        with self.session() as s:
            for part in _chunks(list(ids)):
                out.update(s.execute(select(Sample.id, Sample.name).where(Sample.id.in_(part))).all())
        return out

    # ------------------------------------------------------------------ what a page polls
    def change_marks(self) -> dict[str, Any]:
        """Cheap marks that change with every write a page shows: the decision log, the threshold
        history, the rounds (their count, the last one's status and progress), the round in force
        and the number of samples."""
        with self.session() as s:
            decisions = tuple(s.execute(select(func.count(), func.max(Decision.id))).one())
            thresholds = s.scalar(select(func.max(ThresholdChange.id)))
            last = s.execute(select(Round.id, Round.status, Round.progress).order_by(Round.id.desc()).limit(1)).first()
            current = s.scalar(select(func.max(Round.id)).where(Round.status == RoundStatus.DONE))
            samples = s.scalar(select(func.count()).select_from(Sample))
        return {"decisions": list(decisions), "thresholds": thresholds,
                "rounds": None if last is None else [last[0], last[1], last[2]],
                "current_round": current, "samples": samples}
