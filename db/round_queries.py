"""The store's rounds and their predictions: a round starts `running` (one at a time), beats
while it trains, and ends failed, or done in one transaction with its predictions, automatic
decisions and the policy's thresholds."""
from __future__ import annotations

from collections import Counter

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from .database import Database, chunks
from ..engine.vocab import UNFINISHED, PredictionKind, RoundStatus
from .errors import RoundBusy, StoreDamaged
from .models import Prediction, Round
from .writes import DecisionIn, PolicyChange, append_decisions, apply_policy


class RoundQueries:
    """The queries on rounds and their predictions (`store.rounds`, db/store.py)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, *, config: dict, config_name: str, thresholds: dict[str, float],
               auto_accept: bool, pid: int, host: str) -> int:
        """Start a round as `running`; refuses while another round runs."""
        def work(s: Session) -> int:
            busy = s.scalar(select(Round.id).where(Round.status.in_(UNFINISHED)))
            if busy is not None:
                raise RoundBusy(busy)
            last = s.scalar(select(func.max(Round.id)))
            rid = 0 if last is None else last + 1
            now = self.db.clock()
            s.add(Round(id=rid, status=RoundStatus.RUNNING, created_at=now, started_at=now, heartbeat_at=now,
                        config=config, config_name=config_name, thresholds=thresholds,
                        auto_accept=auto_accept, pid=pid, host=host))
            return rid
        return self.db.write(work)

    def fail(self, round_id: int, error: str) -> None:
        self.db.write(lambda s: s.execute(
            update(Round).where(Round.id == round_id, Round.status != RoundStatus.DONE)
            .values(status=RoundStatus.FAILED, error=error[:2000], finished_at=self.db.clock())))

    def heartbeat(self, round_id: int, progress: float | None = None, message: str | None = None) -> None:
        """The training process is alive (see `fail_dead`), and how far it is."""
        values: dict[str, Any] = {"heartbeat_at": self.db.clock()}
        if progress is not None:
            values |= {"progress": float(progress), "progress_message": (message or "")[:255]}
        self.db.write(lambda s: s.execute(update(Round).where(Round.id == round_id, Round.status == RoundStatus.RUNNING)
                                          .values(**values)))

    def fail_dead(self, is_dead: Callable[[Round], bool], error: Callable[[Round], str]) -> list[Round]:
        """Mark failed, in one write transaction, the unfinished rounds that `is_dead` judges
        dead when read under the write lock; return them."""
        def work(s: Session) -> list[Round]:
            dead = [r for r in s.scalars(select(Round).where(Round.status.in_(UNFINISHED)))
                    if is_dead(r)]
            for r in dead:
                s.execute(update(Round).where(Round.id == r.id).values(
                    status=RoundStatus.FAILED, error=error(r)[:2000], finished_at=self.db.clock()))
            return dead
        return self.db.write(work)

    def unfinished(self) -> list[Round]:
        with self.db.session() as s:
            return list(s.scalars(select(Round).where(Round.status.in_(UNFINISHED))))

    def all(self) -> list[Round]:
        with self.db.session() as s:
            return list(s.scalars(select(Round).order_by(Round.id)))

    def get(self, round_id: int) -> Round | None:
        with self.db.session() as s:
            return s.get(Round, round_id)

    def ids(self) -> list[int]:
        """Every round's id, without reading the records (`mersemi check` reads them one by one)."""
        with self.db.session() as s:
            return list(s.scalars(select(Round.id).order_by(Round.id)))

    def current(self) -> Round | None:
        """The latest finished round: its predictions are the ones in force."""
        with self.db.session() as s:
            return s.scalar(select(Round).where(Round.status == RoundStatus.DONE).order_by(Round.id.desc()).limit(1))

    def complete(self, round_id: int, *, predictions: list[tuple[str, np.ndarray, np.ndarray]],
                 decisions: list[DecisionIn], reviewer: str, composition: dict,
                 metrics: dict, checkpoint: str | None,
                 thresholds: dict[int, float] | None = None, everyone: bool = False,
                 discarded: bool = False) -> list[PolicyChange]:
        """Write a round's results in ONE transaction: predictions (kind, sample ids, probs),
        automatic decisions, the policy's `thresholds` (class id -> value) for the classes it
        may set (all of them with `everyone`), composition and metrics (the service's JSON,
        stored as given), what the policy did, status done. A crash before commit leaves
        nothing. Returns per class what happened to its threshold (`writes.apply_policy`). A
        round `discarded` keeps its composition and metrics only, for the record: no
        predictions, decisions or thresholds; the round before stays in force."""
        def work(s: Session) -> list[PolicyChange]:
            now = self.db.clock()
            status = s.scalar(select(Round.status).where(Round.id == round_id))
            if status != RoundStatus.RUNNING:
                raise RuntimeError(f"round {round_id} is {status}, not running")
            if discarded:
                s.execute(update(Round).where(Round.id == round_id).values(
                    status=RoundStatus.DISCARDED, finished_at=now, composition=composition, metrics=metrics,
                    checkpoint=None, progress=1.0, progress_message=RoundStatus.DISCARDED))
                return []
            for kind, ids, probs in predictions:
                _insert_predictions(s, round_id, kind, ids, probs)
            if decisions:
                append_decisions(s, decisions, reviewer, now)
            changes = apply_policy(s, round_id, thresholds or {}, everyone, now)
            s.execute(update(Round).where(Round.id == round_id).values(
                status=RoundStatus.DONE, finished_at=now, composition=composition, metrics=metrics,
                threshold_changes=[c.to_json() for c in changes], checkpoint=checkpoint,
                progress=1.0, progress_message=RoundStatus.DONE))
            return changes
        return self.db.write(work)

    # ------------------------------------------------------------------ predictions
    def predictions(self, round_id: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """sample ids and [n, C] probabilities of one kind, in sample order."""
        with self.db.session() as s:
            rows = s.execute(select(Prediction.sample_id, Prediction.probs)
                             .where(Prediction.round_id == round_id, Prediction.kind == kind)
                             .order_by(Prediction.sample_id)).all()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        width = Counter(len(r[1]) for r in rows).most_common(1)[0][0] if rows else 0
        bad = next((r[0] for r in rows if len(r[1]) != width or width % 4), None)
        if bad is not None:
            raise StoreDamaged(f"round {round_id}'s {kind} prediction of sample id {bad} is damaged (a probability "
                               "vector of the wrong size); `mersemi check DIR` says what else, and the way out")
        probs = (np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
                 if rows else np.zeros((0, 0), np.float32))
        return ids, probs

    def pool_confidences(self, round_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """sample ids, predicted classes and confidences of the round's pool predictions, in sample order."""
        with self.db.session() as s:
            rows = s.execute(select(Prediction.sample_id, Prediction.predicted, Prediction.confidence)
                             .where(Prediction.round_id == round_id, Prediction.kind == PredictionKind.POOL)
                             .order_by(Prediction.sample_id)).all()
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
        a = np.array(rows, dtype=np.float64)
        return a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2]

    def prediction_of(self, round_id: int, sample_ids: Sequence[int]) -> dict[int, tuple[str, int, float]]:
        """sample id -> (kind, predicted, confidence) in a round."""
        out: dict[int, tuple[str, int, float]] = {}
        with self.db.session() as s:
            for part in chunks(list(sample_ids)):
                q = select(Prediction.sample_id, Prediction.kind, Prediction.predicted,
                           Prediction.confidence).where(Prediction.round_id == round_id,
                                                        Prediction.sample_id.in_(part))
                for sid, kind, pred, conf in s.execute(q):
                    out[sid] = (kind, pred, conf)
        return out


def _insert_predictions(s: Session, round_id: int, kind: str, ids: np.ndarray, probs: np.ndarray) -> None:
    if len(ids) == 0:
        return
    probs = np.ascontiguousarray(probs, dtype=np.float32)
    pred = probs.argmax(axis=1)
    conf = probs[np.arange(len(ids)), pred]
    rows = [{"round_id": round_id, "sample_id": int(i), "kind": kind, "predicted": int(p),
             "confidence": float(c), "probs": v.tobytes()}
            for i, p, c, v in zip(ids.tolist(), pred.tolist(), conf.tolist(), probs)]
    for part in chunks(rows, 20_000):
        s.execute(insert(Prediction), list(part))   # executemany
