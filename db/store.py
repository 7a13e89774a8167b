"""The queries the app and the command line need, each behind a small method.

`Store` owns the SQLAlchemy engine. Every method opens its own short session, so the app's
threads and a training round in the background can share one Store. Arrays go in and out as
NumPy (probability vectors are float32 blobs), which keeps the database free of torch.

Every write runs in `_write`: one transaction that holds the write lock before its first read
(SQLite: BEGIN IMMEDIATE; PostgreSQL: SERIALIZABLE, run again on a serialization failure), so
a read that decides a write sees what the write changes. A write that cannot get the lock
within the busy timeout raises StoreBusy.
"""
from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, UTC
from typing import Any, TypeVar, cast

import numpy as np
from sqlalchemy import URL, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from . import connect
from .connect import check_schema, is_busy, is_retryable, make_engine, write_engine
from .errors import StoreBusy, StoreError
from .migrate import create_schema
from ..engine.vocab import Source, Tool, source_of
from .models import (
    Claim, ClassLabel, CurrentDecision, Decision, Meta, Prediction, Round, Sample, Threshold, ThresholdChange, utcnow,
)

T = TypeVar("T")

_CHUNK = 900  # stays under SQLite's bound-parameter limit in IN (...) lists


def _chunks(seq: Sequence, n: int = _CHUNK) -> Iterable[Sequence]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


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


class Store:
    def __init__(self, url: str | URL, create: bool = False, busy_timeout_s: float | None = None) -> None:
        """`busy_timeout_s`: how long a write waits for another writer (connect.BUSY_TIMEOUT_S)."""
        self.busy_timeout_s = connect.BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s
        self._decided: tuple[tuple, np.ndarray] | None = None   # see decided_ids
        self.engine = make_engine(url, self.busy_timeout_s)
        try:
            if create:
                create_schema(self.engine)
            else:
                check_schema(self.engine)
        except BaseException as e:
            self.engine.dispose()
            if isinstance(e, DBAPIError) and e.statement is None:  # failed to connect at all
                raise connect.unavailable(self.engine, e) from None
            raise
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self._write_session = sessionmaker(write_engine(self.engine), expire_on_commit=False)

    def session(self) -> Session:
        """A session for reads (writes go through `_write`)."""
        return self._session()

    def close(self) -> None:
        self.engine.dispose()

    def _write(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one write transaction and return its result (see the module doc).
        PostgreSQL may abort a SERIALIZABLE transaction that raced another: it runs again, with
        a short random pause, until the busy timeout has passed."""
        deadline = time.monotonic() + self.busy_timeout_s
        pause = 0.005
        while True:
            try:
                with self._write_session() as s, s.begin():
                    return work(s)
            except DBAPIError as e:
                if is_busy(e):
                    raise StoreBusy() from None
                if not is_retryable(e):
                    raise
                if time.monotonic() > deadline:
                    raise StoreBusy() from None
                time.sleep(pause * random.uniform(0.5, 1.5))
                pause = min(pause * 2, 0.2)

    # ------------------------------------------------------------------ meta, classes
    def set_meta(self, **values: str) -> None:
        def work(s: Session) -> None:
            for k, v in values.items():
                s.merge(Meta(key=k, value=v))
        self._write(work)

    def meta(self, key: str) -> str | None:
        with self.session() as s:
            return s.scalar(select(Meta.value).where(Meta.key == key))

    def set_classes(self, names: Sequence[str], default_thresholds: Sequence[float]) -> None:
        def work(s: Session) -> None:
            now = utcnow()
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

    # ------------------------------------------------------------------ thresholds
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
            now = utcnow()
            for cid, v in values.items():
                s.execute(update(Threshold).where(Threshold.class_id == cid).values(
                    value=float(v), updated_at=now, updated_by=by, policy_may_set=policy_may_set))
                s.add(ThresholdChange(class_id=cid, value=float(v), policy_may_set=policy_may_set,
                                      set_by=by, set_at=now))
        self._write(work)

    def release_thresholds(self, class_ids: Sequence[int], by: str) -> None:
        """Let the policy set these classes after the next rounds (their values stay for now)."""
        def work(s: Session) -> None:
            now = utcnow()
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

    # ------------------------------------------------------------------ rounds
    def create_round(self, *, config: dict, config_name: str, thresholds: dict[str, float],
                     auto_accept: bool, pid: int, host: str) -> int:
        """Start a round as `running`; refuses while another round runs."""
        def work(s: Session) -> int:
            busy = s.scalar(select(Round.id).where(Round.status.in_(("queued", "running"))))
            if busy is not None:
                raise RoundBusy(busy)
            last = s.scalar(select(func.max(Round.id)))
            rid = 0 if last is None else last + 1
            now = utcnow()
            s.add(Round(id=rid, status="running", started_at=now, heartbeat_at=now, config=config,
                        config_name=config_name, thresholds=thresholds,
                        auto_accept=auto_accept, pid=pid, host=host))
            return rid
        return self._write(work)

    def fail_round(self, round_id: int, error: str) -> None:
        self._write(lambda s: s.execute(
            update(Round).where(Round.id == round_id, Round.status != "done")
            .values(status="failed", error=error[:2000], finished_at=utcnow())))

    def heartbeat(self, round_id: int, progress: float | None = None, message: str | None = None) -> None:
        """The training process is alive (see `fail_dead_rounds`), and how far it is."""
        values: dict[str, Any] = {"heartbeat_at": utcnow()}
        if progress is not None:
            values |= {"progress": float(progress), "progress_message": (message or "")[:255]}
        self._write(lambda s: s.execute(update(Round).where(Round.id == round_id, Round.status == "running")
                                        .values(**values)))

    def fail_dead_rounds(self, is_dead: Callable[[Round], bool], error: Callable[[Round], str]) -> list[Round]:
        """Mark failed, in one write transaction, the unfinished rounds that `is_dead` judges
        dead when read under the write lock; return them."""
        def work(s: Session) -> list[Round]:
            dead = [r for r in s.scalars(select(Round).where(Round.status.in_(("queued", "running"))))
                    if is_dead(r)]
            for r in dead:
                s.execute(update(Round).where(Round.id == r.id).values(
                    status="failed", error=error(r)[:2000], finished_at=utcnow()))
            return dead
        return self._write(work)

    def unfinished_rounds(self) -> list[Round]:
        with self.session() as s:
            return list(s.scalars(select(Round).where(Round.status.in_(("queued", "running")))))

    def rounds(self) -> list[Round]:
        with self.session() as s:
            return list(s.scalars(select(Round).order_by(Round.id)))

    def round(self, round_id: int) -> Round | None:
        with self.session() as s:
            return s.get(Round, round_id)

    def current_round(self) -> Round | None:
        """The latest finished round: its predictions are the ones in force."""
        with self.session() as s:
            return s.scalar(select(Round).where(Round.status == "done").order_by(Round.id.desc()).limit(1))

    def complete_round(self, round_id: int, *, predictions: list[tuple[str, np.ndarray, np.ndarray]],
                       decisions: list[DecisionIn], reviewer: str, composition: dict,
                       metrics: dict, checkpoint: str | None,
                       thresholds: dict[int, float] | None = None, everyone: bool = False,
                       discarded: str | None = None) -> list[dict]:
        """Write a round's results in ONE transaction: predictions (kind, sample ids, probs),
        automatic decisions, the policy's `thresholds` (class id -> value) for the classes it
        may set (all of them with `everyone`), metrics, status done. A crash before commit
        leaves nothing. Returns per class what happened to its threshold (`_apply_policy`).
        A round `discarded` (the reason) keeps its composition and metrics only, for the record:
        no predictions, decisions or thresholds; the round before stays in force."""
        def work(s: Session) -> list[dict]:
            status = s.scalar(select(Round.status).where(Round.id == round_id))
            if status != "running":
                raise RuntimeError(f"round {round_id} is {status}, not running")
            if discarded is not None:
                s.execute(update(Round).where(Round.id == round_id).values(
                    status="discarded", finished_at=utcnow(), composition=composition,
                    metrics=metrics | {"discarded": discarded}, checkpoint=None, progress=1.0,
                    progress_message="discarded"))
                return []
            for kind, ids, probs in predictions:
                _insert_predictions(s, round_id, kind, ids, probs)
            if decisions:
                _append_decisions(s, decisions, reviewer)
            changes = _apply_policy(s, round_id, thresholds or {}, everyone)
            s.execute(update(Round).where(Round.id == round_id).values(
                status="done", finished_at=utcnow(), composition=composition,
                metrics=metrics | {"threshold_changes": changes}, checkpoint=checkpoint,
                progress=1.0, progress_message="done"))
            return changes
        return self._write(work)

    # ------------------------------------------------------------------ predictions
    def predictions(self, round_id: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """sample ids and [n, C] probabilities of one kind, in sample order."""
        with self.session() as s:
            rows = s.execute(select(Prediction.sample_id, Prediction.probs)
                             .where(Prediction.round_id == round_id, Prediction.kind == kind)
                             .order_by(Prediction.sample_id)).all()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        probs = (np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
                 if rows else np.zeros((0, 0), np.float32))
        return ids, probs

    def pool_confidences(self, round_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """sample ids, predicted classes and confidences of the round's pool predictions."""
        with self.session() as s:
            rows = s.execute(select(Prediction.sample_id, Prediction.predicted, Prediction.confidence)
                             .where(Prediction.round_id == round_id, Prediction.kind == "pool")).all()
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
        a = np.array(rows, dtype=np.float64)
        return a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2]

    def prediction_of(self, round_id: int, sample_ids: Sequence[int]) -> dict[int, tuple[str, int, float]]:
        """sample id -> (kind, predicted, confidence) in a round."""
        out: dict[int, tuple[str, int, float]] = {}
        with self.session() as s:
            for part in _chunks(list(sample_ids)):
                q = select(Prediction.sample_id, Prediction.kind, Prediction.predicted,
                           Prediction.confidence).where(Prediction.round_id == round_id,
                                                        Prediction.sample_id.in_(part))
                for sid, kind, pred, conf in s.execute(q):
                    out[sid] = (kind, pred, conf)
        return out

    # ------------------------------------------------------------------ decisions
    def decide(self, entries: Sequence[DecisionIn], reviewer: str,
               respect_claims: bool = False) -> tuple[str, dict[int, Decision]]:
        """Append decisions (one batch); return the batch id and, per sample that had one,
        the decision in force that they replace (another reviewer's, perhaps). With
        `respect_claims`, a sample held by another reviewer's claim refuses the batch
        (CardClaimed), and the reviewer's own claims on the samples are dropped: decided."""
        def work(s: Session) -> tuple[str, dict[int, Decision]]:
            sample_ids = [e.sample_id for e in entries]
            if respect_claims:
                now, held = utcnow(), []
                for part in _chunks(sample_ids):
                    held += [c.sample_id for c in s.scalars(select(Claim).where(
                        Claim.sample_id.in_(part), Claim.reviewer != reviewer))
                        if as_utc(c.expires_at) > now]
                if held:
                    raise CardClaimed(held)
                for part in _chunks(sample_ids):
                    s.execute(delete(Claim).where(Claim.reviewer == reviewer, Claim.sample_id.in_(part)))
            before = _current(s, sample_ids)
            replaced = {sid: d for sid, c in before.items()
                        if (d := s.get(Decision, c.decision_id)) is not None}
            return _append_decisions(s, entries, reviewer), replaced
        return self._write(work)

    def undo_last(self, reviewer: str) -> list[int]:
        """Undo the reviewer's latest batch that is not undone yet; return its sample ids."""
        return self._write(lambda s: _undo_last(s, reviewer))

    def current_decisions(self, sample_ids: Sequence[int] | None = None) -> dict[int, CurrentDecision]:
        with self.session() as s:
            if sample_ids is None:
                return {c.sample_id: c for c in s.scalars(select(CurrentDecision))}
            return _current(s, list(sample_ids))

    def decided_ids(self) -> np.ndarray:
        """Sample ids with a decision in force (any action, any reviewer), read-only.

        Every request of the review page needs them (20,000 ids: ~25 ms) while most requests
        change nothing: they are kept until the decision log changes. Every change of the
        decisions in force appends to the log (undo too) and nothing deletes from it, so its
        row count and largest id tell whether the kept ids are still the ones in force (the
        count also catches a transaction that committed an older id late)."""
        with self.session() as s:
            version = tuple(s.execute(select(func.count(), func.max(Decision.id))).one())
            kept = self._decided
            if kept is not None and kept[0] == version:
                return kept[1]
            ids = _decided_since(s, kept, version) if kept is not None else None
            if ids is None:
                ids = np.unique(np.fromiter(s.scalars(select(CurrentDecision.sample_id)), dtype=np.int64))
        ids.setflags(write=False)
        self._decided = (version, ids)
        return ids

    def decision_counts(self, by: str = "label") -> dict[str, dict[int, int]]:
        """Decisions in force: action -> {class: count}, by "label" (the class the decision
        names; reject: the rejected class) or by "predicted" (the class the model predicted
        in the round decided on; one meaning for every action, a relabel counts under the
        class it was relabeled from). Decisions without a prediction are left out."""
        column = {"label": CurrentDecision.label, "predicted": CurrentDecision.predicted}[by]
        out: dict[str, dict[int, int]] = {"accept": {}, "reject": {}, "relabel": {}, "label": {}}
        with self.session() as s:
            q = select(CurrentDecision.action, column, func.count()).group_by(CurrentDecision.action, column)
            for action, cls, n in s.execute(q):
                if cls is not None:
                    out[action][cls] = n
        return out

    def training_labels(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Labels of pool samples in force: sample ids, classes, sources (verified, relabeled,
        labeled: a person's; pseudo: the tool's)."""
        with self.session() as s:
            rows = s.execute(select(CurrentDecision.sample_id, CurrentDecision.label, CurrentDecision.source)
                             .where(CurrentDecision.source.is_not(None))
                             .order_by(CurrentDecision.sample_id)).all()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        labels = np.array([r[1] for r in rows], dtype=np.int64)
        return ids, labels, [str(r[2]) for r in rows]

    def source_counts(self) -> dict[str, dict[int, int]]:
        """Labels in force of pool samples: source -> {class: count} (every source but gold)."""
        out: dict[str, dict[int, int]] = {src: {} for src in Source if src != Source.GOLD}
        with self.session() as s:
            q = (select(CurrentDecision.source, CurrentDecision.label, func.count())
                 .where(CurrentDecision.source.is_not(None))
                 .group_by(CurrentDecision.source, CurrentDecision.label))
            for source, cls, n in s.execute(q):
                out[str(source)][cast(int, cls)] = n
        return out

    def decision_log(self) -> list[Decision]:
        with self.session() as s:
            return list(s.scalars(select(Decision).order_by(Decision.id)))

    def decision(self, decision_id: int) -> Decision | None:
        with self.session() as s:
            return s.get(Decision, decision_id)

    def find_decisions(self, *, sample: str = "", reviewer: str = "", label: int | None = None, action: str = "",
                       in_force: bool = False, limit: int = 100,
                       offset: int = 0) -> tuple[list[tuple[Decision, str]], int]:
        """A page of the decision log, newest first, with each entry's sample name, and how many
        entries match: `sample` is part of a name (case-insensitive), `label` the class the
        entry names or predicted, `in_force` keeps the decisions in force only."""
        q = select(Decision, Sample.name).join(Sample, Sample.id == Decision.sample_id)
        if sample:
            pattern = "%" + sample.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            q = q.where(func.lower(Sample.name).like(pattern, escape="\\"))
        if reviewer:
            q = q.where(Decision.reviewer == reviewer)
        if label is not None:
            q = q.where((Decision.label == label) | (Decision.predicted == label))
        if action:
            q = q.where(Decision.action == action)
        if in_force:
            q = q.join(CurrentDecision, CurrentDecision.decision_id == Decision.id)
        with self.session() as s:
            total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
            rows = s.execute(q.order_by(Decision.id.desc()).limit(limit).offset(offset)).all()
        return [(d, name) for d, name in rows], total

    def reviewer_counts(self) -> list[dict[str, Any]]:
        """Per reviewer: the decisions they made (log entries, undos excluded), how many of those
        are in force by action, and when they last decided."""
        with self.session() as s:
            made = s.execute(select(Decision.reviewer, func.count(), func.max(Decision.created_at))
                             .where(Decision.action != "undo").group_by(Decision.reviewer)).all()
            force = s.execute(select(Decision.reviewer, CurrentDecision.action, func.count())
                              .join(CurrentDecision, CurrentDecision.decision_id == Decision.id)
                              .group_by(Decision.reviewer, CurrentDecision.action)).all()
        out: dict[str, dict[str, Any]] = {
            r: {"reviewer": r, "decisions": n, "last_at": as_utc(t).isoformat(timespec="seconds"), "in_force": {}}
            for r, n, t in made}
        for r, action, n in force:
            out[r]["in_force"][action] = n
        return sorted(out.values(), key=lambda x: -x["decisions"])

    def verify_verdicts(self) -> list[tuple[int, bool, float]]:
        """A person's decisions in force that were made on verify cards: (predicted class, whether
        the prediction was right by the person, the model's confidence then). What the review's
        check of the calibration reads."""
        q = (select(Decision.predicted, CurrentDecision.action, CurrentDecision.label, Decision.confidence)
             .join(CurrentDecision, CurrentDecision.decision_id == Decision.id)
             .where(Decision.card == "verify", Decision.reviewer != Tool.AUTO,
                    Decision.confidence.is_not(None), Decision.predicted.is_not(None)))
        with self.session() as s:
            return [(int(cast(int, p)), a != "reject" and label == p, float(cast(float, c)))
                    for p, a, label, c in s.execute(q)]

    def change_marks(self) -> dict[str, Any]:
        """Cheap marks that change with every write a page shows: the decision log, the threshold
        history and the rounds (their count, the last one's status and progress)."""
        with self.session() as s:
            decisions = tuple(s.execute(select(func.count(), func.max(Decision.id))).one())
            thresholds = s.scalar(select(func.max(ThresholdChange.id)))
            last = s.execute(select(Round.id, Round.status, Round.progress).order_by(Round.id.desc()).limit(1)).first()
        return {"decisions": list(decisions), "thresholds": thresholds,
                "rounds": None if last is None else [last[0], last[1], last[2]]}


    # ------------------------------------------------------------------ claims
    def claim(self, sample_id: int, reviewer: str, seconds: float) -> bool:
        """Hold a sample's card for `reviewer` for `seconds` from now, so that reviewers
        working at once get different cards. False while another reviewer holds it; the
        holder claiming again extends the hold. An expired claim is simply taken over."""
        def work(s: Session) -> bool:
            now = utcnow()
            held = s.get(Claim, sample_id)
            if held is not None and held.reviewer != reviewer and as_utc(held.expires_at) > now:
                return False
            s.merge(Claim(sample_id=sample_id, reviewer=reviewer,
                          expires_at=now + timedelta(seconds=seconds)))
            return True
        return self._write(work)

    def claim_first(self, sample_ids: Sequence[int], reviewer: str, seconds: float) -> int | None:
        """In one write transaction: hold the first of `sample_ids` that no other reviewer
        holds and that has no decision in force (the queue the ids come from was read before
        this transaction) for `reviewer` for `seconds`, and drop the reviewer's other claims
        (a reviewer holds the one card on screen). None, and nothing changed, when there is none."""
        def work(s: Session) -> int | None:
            now = utcnow()
            ids = [int(i) for i in sample_ids]
            held: dict[int, Claim] = {}
            for part in _chunks(ids):
                held.update((c.sample_id, c) for c in s.scalars(select(Claim).where(Claim.sample_id.in_(part))))
            decided = set(_current(s, ids))
            for sid in ids:
                c = held.get(sid)
                if sid not in decided and (c is None or c.reviewer == reviewer or as_utc(c.expires_at) <= now):
                    break
            else:
                return None
            s.execute(delete(Claim).where(Claim.reviewer == reviewer, Claim.sample_id != sid))
            s.merge(Claim(sample_id=sid, reviewer=reviewer, expires_at=now + timedelta(seconds=seconds)))
            return sid
        return self._write(work)

    def claimed_by_others(self, reviewer: str) -> set[int]:
        """Samples held by another reviewer right now (an index range scan on expires_at)."""
        with self.session() as s:
            return set(s.scalars(select(Claim.sample_id).where(Claim.expires_at > utcnow(),
                                                               Claim.reviewer != reviewer)))


class CardClaimed(StoreError):
    """A decision on a card that another reviewer holds (it is on their screen)."""

    def __init__(self, sample_ids: list[int]) -> None:
        super().__init__(f"{len(sample_ids)} sample(s) held by another reviewer")
        self.sample_ids = sample_ids


class RoundBusy(StoreError, RuntimeError):
    def __init__(self, round_id: int) -> None:
        super().__init__(f"round {round_id} is still running")
        self.round_id = round_id


# ---------------------------------------------------------------------- helpers

def _insert_predictions(s: Session, round_id: int, kind: str, ids: np.ndarray, probs: np.ndarray) -> None:
    if len(ids) == 0:
        return
    probs = np.ascontiguousarray(probs, dtype=np.float32)
    pred = probs.argmax(axis=1)
    conf = probs[np.arange(len(ids)), pred]
    rows = [{"round_id": round_id, "sample_id": int(i), "kind": kind, "predicted": int(p),
             "confidence": float(c), "probs": v.tobytes()}
            for i, p, c, v in zip(ids.tolist(), pred.tolist(), conf.tolist(), probs)]
    for part in _chunks(rows, 20_000):
        s.execute(insert(Prediction), list(part))   # executemany


def _current(s: Session, sample_ids: list[int]) -> dict[int, CurrentDecision]:
    out: dict[int, CurrentDecision] = {}
    for part in _chunks(sample_ids):
        for c in s.scalars(select(CurrentDecision).where(CurrentDecision.sample_id.in_(part))):
            out[c.sample_id] = c
    return out


def _append_decisions(s: Session, entries: Sequence[DecisionIn], reviewer: str) -> str:
    batch = uuid.uuid4().hex
    now = utcnow()
    rows = [{"sample_id": e.sample_id, "round_id": e.round_id, "action": e.action, "label": e.label,
             "predicted": e.predicted_class, "reviewer": reviewer, "note": e.note, "batch": batch,
             "created_at": now, "source": source_of(e.action, reviewer), "card": e.card,
             "confidence": e.confidence} for e in entries]
    ids = list(s.scalars(insert(Decision).returning(Decision.id, sort_by_parameter_order=True), rows))
    sample_ids = [e.sample_id for e in entries]
    for part in _chunks(sample_ids):
        s.execute(delete(CurrentDecision).where(CurrentDecision.sample_id.in_(part)))
    # A batch may name a sample twice: the later entry wins, as in the log.
    latest = {e.sample_id: (did, e) for did, e in zip(ids, entries)}
    s.execute(insert(CurrentDecision), [
        {"sample_id": sid, "decision_id": did, "action": e.action, "label": e.label,
         "predicted": e.predicted_class, "source": source_of(e.action, reviewer)} for sid, (did, e) in latest.items()])
    return batch


def _undo_last(s: Session, reviewer: str) -> list[int]:
    undone = select(Decision.undoes).where(Decision.undoes.is_not(None))
    last = s.scalar(select(Decision.batch).where(
        Decision.reviewer == reviewer, Decision.action != "undo",
        Decision.id.not_in(undone)).order_by(Decision.id.desc()).limit(1))
    if last is None:
        return []
    targets = list(s.scalars(select(Decision).where(Decision.batch == last,
                                                    Decision.id.not_in(undone))))
    batch = uuid.uuid4().hex
    for d in targets:
        s.add(Decision(sample_id=d.sample_id, round_id=d.round_id, action="undo",
                       label=None, predicted=d.predicted, undoes=d.id, reviewer=reviewer, batch=batch))
    s.flush()
    for sid in {d.sample_id for d in targets}:
        _recompute_current(s, sid)
    return sorted({d.sample_id for d in targets})


def _decided_since(s: Session, kept: tuple[tuple, np.ndarray], version: tuple) -> np.ndarray | None:
    """The decided ids from those `kept` at an older version of the log and the log rows
    added since (a decision or an undo of one of a few samples reads those samples only);
    None when a full read is needed: rows committed late below the kept largest id (the
    counts disagree), or too many new rows."""
    (count, top), ids = kept
    if top is None or version[0] - count > _CHUNK:
        return None
    added = s.scalars(select(Decision.sample_id).where(Decision.id > top)).all()
    if len(added) != version[0] - count:
        return None
    touched = np.unique(np.array(added, np.int64))
    now = np.fromiter(s.scalars(select(CurrentDecision.sample_id).where(
        CurrentDecision.sample_id.in_(touched.tolist()))), np.int64)
    return np.union1d(np.setdiff1d(ids, touched, assume_unique=True), now)


def _apply_policy(s: Session, round_id: int, proposal: dict[int, float], everyone: bool) -> list[dict]:
    """Set each proposed class's threshold unless a person owns it (read under the write lock,
    so a value a reviewer set while the round trained is kept); returns per proposed class
    {class_id, old, new, by (who set the value in force now), changed}."""
    out = []
    now = utcnow()
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


def _recompute_current(s: Session, sample_id: int) -> None:
    """Set the sample's decision in force to its latest entry that is neither an undo nor undone."""
    log = list(s.scalars(select(Decision).where(Decision.sample_id == sample_id).order_by(Decision.id.desc())))
    undone = {d.undoes for d in log if d.undoes is not None}
    s.execute(delete(CurrentDecision).where(CurrentDecision.sample_id == sample_id))
    for d in log:
        if d.action != "undo" and d.id not in undone:
            s.add(CurrentDecision(sample_id=sample_id, decision_id=d.id, action=d.action, label=d.label,
                                  predicted=d.predicted, source=d.source))
            break


def as_utc(t: datetime) -> datetime:
    """An aware UTC time: SQLite gives back the UTC wall time written, without a zone."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
