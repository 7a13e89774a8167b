"""The store's samples: imported once, in bulk; read by split, by name and by id."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np
from sqlalchemy import func, insert, select

from ..engine.vocab import Split
from .database import Database, chunks
from .models import Sample


class SampleQueries:
    """The queries on samples (`store.samples`, db/store.py)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, rows: list[dict[str, Any]]) -> None:
        """Bulk insert in one transaction; rows carry id, name, split, labels, text, media."""
        self.db.write(lambda s: s.execute(insert(Sample), rows))

    def count(self) -> int:
        with self.db.session() as s:
            return s.scalar(select(func.count()).select_from(Sample)) or 0

    def split_counts(self) -> dict[str, int]:
        with self.db.session() as s:
            return dict(s.execute(select(Sample.split, func.count()).group_by(Sample.split)).all())

    def gold_counts(self) -> dict[int, int]:
        with self.db.session() as s:
            q = (select(Sample.gold_label, func.count())
                 .where(Sample.split == Split.LABELED, Sample.gold_label.is_not(None))
                 .group_by(Sample.gold_label))
            return {cast(int, label): n for label, n in s.execute(q).all()}

    def split_arrays(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ids, gold labels (-1 where none) and hidden true labels (-1 where none) of a split."""
        with self.db.session() as s:
            rows = s.execute(select(Sample.id, Sample.gold_label, Sample.true_label)
                             .where(Sample.split == split).order_by(Sample.id)).all()
        if not rows:
            empty = np.zeros(0, np.int64)
            return empty, empty.copy(), empty.copy()
        a = np.array([(i, -1 if g is None else g, -1 if t is None else t) for i, g, t in rows],
                     dtype=np.int64)
        return a[:, 0], a[:, 1], a[:, 2]

    def by_name(self, names: Iterable[str]) -> dict[str, tuple[int, str]]:
        """name -> (id, split) for the names that exist."""
        names = list(dict.fromkeys(names))
        out: dict[str, tuple[int, str]] = {}
        with self.db.session() as s:
            for part in chunks(names):
                for n, i, sp in s.execute(select(Sample.name, Sample.id, Sample.split)
                                          .where(Sample.name.in_(part))):
                    out[n] = (i, sp)
        return out

    def by_id(self, ids: Sequence[int]) -> dict[int, Sample]:
        """id -> Sample for the ids that exist (detached: read their columns only)."""
        out: dict[int, Sample] = {}
        with self.db.session() as s:
            for part in chunks(list(ids)):
                out.update((r.id, r) for r in s.scalars(select(Sample).where(Sample.id.in_(part))))
        return out

    def names(self, ids: Sequence[int]) -> dict[int, str]:
        """id -> name for the ids that exist."""
        out: dict[int, str] = {}
        with self.db.session() as s:
            for part in chunks(list(ids)):
                out.update(s.execute(select(Sample.id, Sample.name).where(Sample.id.in_(part))).all())
        return out
