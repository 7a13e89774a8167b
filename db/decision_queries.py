"""The store's decisions: the append-only log (an undo is appended too), the decision in force
per sample kept beside it, and the reads over both. Appending a batch is `writes.append_decisions`,
which a round's automatic decisions share."""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ..engine.vocab import POOL_SOURCES, UNDO, Action, CardKind, Tool
from .database import CHUNK, Database, chunks
from . import vote_writes
from .errors import CardClaimed
from .models import Claim, CurrentDecision, Decision, Sample, VoteCard, as_utc
from .writes import DecisionIn, append_decisions, decisions_in_force, recompute_current


class DecisionQueries:
    """The queries on decisions (`store.decisions`, db/store.py)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._decided: tuple[tuple, np.ndarray] | None = None   # see decided_ids

    def record(self, entries: Sequence[DecisionIn], reviewer: str, respect_claims: bool = False,
               single_holder: bool = False,
               new_cards: Sequence[VoteCard] = ()) -> tuple[str, dict[int, Decision]]:
        """Append decisions (one batch); return the batch id and, per sample that had one,
        the decision in force that they replace (another reviewer's, perhaps). With
        `respect_claims`, a sample held by another reviewer's claim refuses the batch
        (CardClaimed), and the reviewer's own claims on the samples are dropped: decided.

        An entry on a card that takes votes (db/vote_writes.py) is a vote, or the adjudication of
        a tie; `new_cards` become such cards first (an audit card on its first vote), and the
        votes settle their cards. `single_holder` (an overlap of K >= 2 is set): no overwrite of
        another reviewer's decision outside the overlap share. The rules refuse the whole batch
        (VoteRefused)."""
        def work(s: Session) -> tuple[str, dict[int, Decision]]:
            sample_ids = [e.sample_id for e in entries]
            now = self.db.clock()
            if respect_claims:
                held: list[int] = []
                for part in chunks(sample_ids):
                    held += [c.sample_id for c in s.scalars(select(Claim).where(
                        Claim.sample_id.in_(part), Claim.reviewer != reviewer))
                        if as_utc(c.expires_at) > now]
                if held:
                    raise CardClaimed(held)
                for part in chunks(sample_ids):
                    s.execute(delete(Claim).where(Claim.reviewer == reviewer, Claim.sample_id.in_(part)))
            for card in new_cards:   # unless another transaction made it first
                if s.get(VoteCard, card.sample_id) is None:
                    s.add(VoteCard(sample_id=card.sample_id, purpose=card.purpose, votes_needed=card.votes_needed,
                                   round_id=card.round_id, created_at=now))
            s.flush()
            plain, votes = vote_writes.route(s, entries, reviewer, single_holder)
            before = decisions_in_force(s, [e.sample_id for e in plain])
            replaced = {sid: d for sid, c in before.items()
                        if (d := s.get(Decision, c.decision_id)) is not None}
            batch = append_decisions(s, plain, reviewer, now)
            if votes:
                vote_writes.cast(s, votes, reviewer, now, batch)
                vote_writes.settle(s, [e.sample_id for e in votes], now)
            return batch, replaced
        return self.db.write(work)

    def undo_last(self, reviewer: str) -> list[int]:
        """Undo the reviewer's latest batch that is not undone yet; return its sample ids."""
        return self.db.write(lambda s: _undo_last(s, reviewer, self.db.clock()))

    def in_force(self, sample_ids: Sequence[int] | None = None) -> dict[int, CurrentDecision]:
        with self.db.session() as s:
            if sample_ids is None:
                return {c.sample_id: c for c in s.scalars(select(CurrentDecision))}
            return decisions_in_force(s, list(sample_ids))

    def decided_ids(self) -> np.ndarray:
        """Sample ids with a decision in force (any action, any reviewer), read-only.

        Every request of the review page needs them (20,000 ids: ~25 ms) while most requests
        change nothing: they are kept until the decision log changes. Every change of the
        decisions in force appends to the log (undo too) and nothing deletes from it, so its
        row count and largest id tell whether the kept ids are still the ones in force (the
        count also catches a transaction that committed an older id late)."""
        with self.db.session() as s:
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

    def counts(self, by: str = "label") -> dict[str, dict[int, int]]:  # not vocab: a column
        """Decisions in force: action -> {class: count}, by "label" (the class the decision
        names; reject: the rejected class) or by "predicted" (the class the model predicted
        in the round decided on; one meaning for every action, a relabel counts under the
        class it was relabeled from). Decisions without a prediction are left out."""
        column = {"label": CurrentDecision.label, "predicted": CurrentDecision.predicted}[by]
        out: dict[str, dict[int, int]] = {a.value: {} for a in Action}
        with self.db.session() as s:
            q = select(CurrentDecision.action, column, func.count()).group_by(CurrentDecision.action, column)
            for action, cls, n in s.execute(q):
                if cls is not None:
                    out[action][cls] = n
        return out

    def training_labels(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Labels of pool samples in force: sample ids, classes, sources (verified, relabeled,
        labeled: a person's; pseudo: the tool's)."""
        with self.db.session() as s:
            rows = s.execute(select(CurrentDecision.sample_id, CurrentDecision.label, CurrentDecision.source)
                             .where(CurrentDecision.source.is_not(None))
                             .order_by(CurrentDecision.sample_id)).all()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        labels = np.array([r[1] for r in rows], dtype=np.int64)
        return ids, labels, [str(r[2]) for r in rows]

    def source_counts(self) -> dict[str, dict[int, int]]:
        """Labels in force of pool samples: source -> {class: count} (every source but gold)."""
        out: dict[str, dict[int, int]] = {src.value: {} for src in POOL_SOURCES}
        with self.db.session() as s:
            q = (select(CurrentDecision.source, CurrentDecision.label, func.count())
                 .where(CurrentDecision.source.is_not(None))
                 .group_by(CurrentDecision.source, CurrentDecision.label))
            for source, cls, n in s.execute(q):
                out[str(source)][cast(int, cls)] = n
        return out

    def log(self) -> list[Decision]:
        with self.db.session() as s:
            return list(s.scalars(select(Decision).order_by(Decision.id)))

    def get(self, decision_id: int) -> Decision | None:
        with self.db.session() as s:
            return s.get(Decision, decision_id)

    def find(self, *, sample: str = "", reviewer: str = "", label: int | None = None, action: str = "",
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
        with self.db.session() as s:
            total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
            rows = s.execute(q.order_by(Decision.id.desc()).limit(limit).offset(offset)).all()
        return [(d, name) for d, name in rows], total

    def reviewer_counts(self) -> list[dict[str, Any]]:
        """Per reviewer: the decisions they made (log entries, undos excluded), how many of those
        are in force by action, and when they last decided."""
        with self.db.session() as s:
            made = s.execute(select(Decision.reviewer, func.count(), func.max(Decision.created_at))
                             .where(Decision.action != UNDO).group_by(Decision.reviewer)).all()
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
             .where(Decision.card == CardKind.VERIFY, Decision.reviewer != Tool.AUTO,
                    Decision.confidence.is_not(None), Decision.predicted.is_not(None)))
        with self.db.session() as s:
            return [(int(cast(int, p)), a != Action.REJECT and label == p, float(cast(float, c)))
                    for p, a, label, c in s.execute(q)]


def _undo_last(s: Session, reviewer: str, now: datetime) -> list[int]:
    undone = select(Decision.undoes).where(Decision.undoes.is_not(None))
    last = s.scalar(select(Decision.batch).where(
        Decision.reviewer == reviewer, Decision.action != UNDO,
        Decision.id.not_in(undone)).order_by(Decision.id.desc()).limit(1))
    if last is None:
        return []
    targets = list(s.scalars(select(Decision).where(Decision.batch == last,
                                                    Decision.id.not_in(undone))))
    batch = uuid.uuid4().hex
    for d in targets:
        s.add(Decision(sample_id=d.sample_id, round_id=d.round_id, action=UNDO,
                       label=None, predicted=d.predicted, undoes=d.id, reviewer=reviewer, batch=batch,
                       created_at=now, vote=False))
    s.flush()
    voted = sorted({d.sample_id for d in targets if d.vote})
    for sid in voted:   # a vote taken back: the reviewer's vote in force, then the card's outcome
        vote_writes.restore_vote(s, sid, reviewer)
    vote_writes.settle(s, voted, now)
    for sid in {d.sample_id for d in targets if not d.vote}:
        recompute_current(s, sid)
    return sorted({d.sample_id for d in targets})


def _decided_since(s: Session, kept: tuple[tuple, np.ndarray], version: tuple) -> np.ndarray | None:
    """The decided ids from those `kept` at an older version of the log and the log rows
    added since (a decision or an undo of one of a few samples reads those samples only);
    None when a full read is needed: rows committed late below the kept largest id (the
    counts disagree), or too many new rows."""
    (count, top), ids = kept
    if top is None or version[0] - count > CHUNK:
        return None
    added = s.scalars(select(Decision.sample_id).where(Decision.id > top)).all()
    if len(added) != version[0] - count:
        return None
    touched = np.unique(np.array(added, np.int64))
    now = np.fromiter(s.scalars(select(CurrentDecision.sample_id).where(
        CurrentDecision.sample_id.in_(touched.tolist()))), np.int64)
    return np.union1d(np.setdiff1d(ids, touched, assume_unique=True), now)
