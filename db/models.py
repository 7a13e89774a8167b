"""The project's tables, all in one place (SQLAlchemy 2.0 declarative style).

Class labels are stored as integer ids into `classes` (position in the project's class
list), so predictions stay compact and every label column has a foreign key.

The schema changes only through a migration in migrations/versions/ (Alembic); a test checks
that a database built by the migrations equals one built from these classes.
"""
from __future__ import annotations

from datetime import datetime, UTC

from typing import Any

from sqlalchemy import (
    JSON, Boolean, false, CheckConstraint, DateTime, Float, ForeignKey, Index, Integer, LargeBinary,
    String, Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ..engine.vocab import LOG_ACTIONS, Action, CardKind, PredictionKind, RoundStatus, Source, Split, VotePurpose

# The version the migrations in migrations/versions/ lead to (the head revision's number);
# the meta table records the version a database is at.
SCHEMA_VERSION = 8



# None is stored as SQL NULL (not the JSON text 'null'), as the Text columns before it did.
JSON_VALUE = JSON(none_as_null=True)


def one_of(column: str, values, name: str) -> CheckConstraint:
    """CHECK constraint `column IN (values)` (the vocabulary of engine/vocab.py); named, so that
    migrations can find it again."""
    quoted = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=name)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(t: datetime) -> datetime:
    """An aware UTC time: SQLite gives back the UTC wall time written, without a zone."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Key/value facts about the project: schema version, feature dtype, media root."""
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ClassLabel(Base):
    __tablename__ = "classes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(64), unique=True)


class Sample(Base):
    __tablename__ = "samples"
    # id is also the sample's row in every feature matrix.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    split: Mapped[str] = mapped_column(String(16), index=True)
    gold_label: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))
    # Hidden truth of pool samples (synthetic data): evaluation only, never training or selection.
    true_label: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))
    text: Mapped[str | None] = mapped_column(Text)
    media: Mapped[str | None] = mapped_column(Text)   # relative to meta media_root

    __table_args__ = (one_of("split", Split, "ck_samples_split"),)


class Round(Base):
    __tablename__ = "rounds"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    config: Mapped[dict[str, Any]] = mapped_column(JSON_VALUE)   # the validated config
    config_name: Mapped[str] = mapped_column(String(255))
    thresholds: Mapped[dict[str, float]] = mapped_column(JSON_VALUE)  # {class: threshold} in force
    auto_accept: Mapped[bool] = mapped_column(Boolean, default=False)
    composition: Mapped[dict[str, Any] | None] = mapped_column(JSON_VALUE)  # training-set make-up
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON_VALUE)   # engine.results.RoundRecord
    checkpoint: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int | None] = mapped_column(Integer)           # process running it, to spot killed rounds
    host: Mapped[str | None] = mapped_column(String(255))
    # Last sign of life of the training process: a round of another host is dead when stale.
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # How far the training process is (0-1) and in which phase: every page follows it, wherever
    # the round was started (schema 5).
    progress: Mapped[float | None] = mapped_column(Float)
    progress_message: Mapped[str | None] = mapped_column(String(255))
    # What the policy did to each class's threshold after the round (writes.PolicyChange; schema 8).
    threshold_changes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON_VALUE)

    __table_args__ = (one_of("status", RoundStatus, "ck_rounds_status"),)


class Prediction(Base):
    __tablename__ = "predictions"
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    predicted: Mapped[int] = mapped_column(ForeignKey("classes.id"))
    confidence: Mapped[float] = mapped_column(Float)
    probs: Mapped[bytes] = mapped_column(LargeBinary)          # float32 vector, one per class

    __table_args__ = (
        # "round r, class c, confidence >= x" as a range scan; sample_id makes it covering
        # so counting candidates never touches the table.
        Index("ix_pred_class_conf", "round_id", "kind", "predicted", "confidence", "sample_id"),
        # The all-classes queue, sorted by confidence.
        Index("ix_pred_conf", "round_id", "kind", "confidence"),
        one_of("kind", PredictionKind, "ck_predictions_kind"),
    )


class Decision(Base):
    """Append-only log of review decisions; the latest effective entry per sample counts."""
    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id"), index=True)
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id"))
    action: Mapped[str] = mapped_column(String(8))
    label: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))
    undoes: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"))  # for action "undo"
    batch: Mapped[str] = mapped_column(String(32), index=True)  # one user action; undo takes back a batch
    reviewer: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)
    # The class the model predicted for the sample in `round_id` (schema 4): what the review
    # page's per-class counts go by, whatever the reviewer answered.
    predicted: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))
    # Schema 5: where the label came from (engine/vocab.Source; none for a reject or an undo),
    # the card it was decided on (verify: at or above the threshold then, label: below), and the
    # model's confidence in its prediction then: what the review's check of the calibration reads.
    source: Mapped[str | None] = mapped_column(String(16))
    card: Mapped[str | None] = mapped_column(String(8))
    confidence: Mapped[float | None] = mapped_column(Float)
    # Schema 7: a vote on a card that takes several (votes): never the decision in force itself,
    # which is the consensus of the card's votes; and on a consensus, the votes behind it.
    vote: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    votes_for: Mapped[int | None] = mapped_column(Integer)
    votes_cast: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (one_of("action", LOG_ACTIONS, "ck_decisions_action"),
                      one_of("source", Source, "ck_decisions_source"),
                      one_of("card", CardKind, "ck_decisions_card"))


class CurrentDecision(Base):
    """The decision in force per sample, kept in step with the log in the same transaction.

    Derivable from `decisions`, but "undecided" must be a cheap anti-join in the hot
    candidate queries; recomputing latest-per-sample there would scan the log per row.
    """
    __tablename__ = "current_decisions"
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id"), primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"))
    action: Mapped[str] = mapped_column(String(8))
    label: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))
    predicted: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))
    source: Mapped[str | None] = mapped_column(String(16))      # as the decision's (schema 5)

    # Per-class decision counts (every threshold change, every decision shows them) read an
    # index alone.
    __table_args__ = (Index("ix_current_action_label", "action", "label"),
                      Index("ix_current_action_predicted", "action", "predicted"),
                      Index("ix_current_source_label", "source", "label"),
                      one_of("action", Action, "ck_current_decisions_action"),
                      one_of("source", Source, "ck_current_decisions_source"))


class Threshold(Base):
    """A class's threshold in force and its owner: the person (or tool) who set it last. The
    policy after a round sets it only while `policy_may_set` (schema 5): a person's value is
    theirs until they let the policy set it again."""
    __tablename__ = "thresholds"
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(128))
    policy_may_set: Mapped[bool] = mapped_column(Boolean, default=True)


class ThresholdChange(Base):
    """Append-only history of every threshold change (schema 5): value, owner, who and when;
    `round_id` names the round whose policy step made it."""
    __tablename__ = "threshold_changes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"), index=True)
    value: Mapped[float] = mapped_column(Float)
    policy_may_set: Mapped[bool] = mapped_column(Boolean)
    set_by: Mapped[str] = mapped_column(String(128))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id"))
    note: Mapped[str | None] = mapped_column(Text)


class Claim(Base):
    """A reviewer's hold on a sample's card, so that reviewers working at once get different
    cards. A claim past `expires_at` is void; one row per sample."""
    __tablename__ = "claims"
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id"), primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    server: Mapped[str | None] = mapped_column(String(160))  # "host:pid" of the server holding it

    # "claimed by others, not expired" reads this index alone.
    __table_args__ = (Index("ix_claims_expires", "expires_at", "reviewer", "sample_id"),)


class VoteCard(Base):
    """A sample that takes votes rather than one decision (schema 7): a pool card of the overlap
    share (`votes_needed` votes, the majority is its label), a gold probe (every reviewer may
    vote once; each vote scores its reviewer) or a gold label under audit (`votes_needed` votes
    may change it). `round_id`: the round it was picked in."""
    __tablename__ = "vote_cards"
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id"), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(8))
    votes_needed: Mapped[int] = mapped_column(Integer)
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (one_of("purpose", VotePurpose, "ck_vote_cards_purpose"),)


class Vote(Base):
    """Each reviewer's vote in force on a card (schema 7), kept in step with the decision log
    (an undo takes it back): one per reviewer and sample."""
    __tablename__ = "votes"
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id"), primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(128), primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"))
    action: Mapped[str] = mapped_column(String(8))
    label: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))   # the class named (reject: the rejected one)

    __table_args__ = (Index("ix_votes_reviewer", "reviewer", "sample_id"),
                      one_of("action", Action, "ck_votes_action"))


class GoldChange(Base):
    """A gold label changed by the consensus of an audit card's votes (schema 7), with the label
    it had: append-only, exported with the labels."""
    __tablename__ = "gold_changes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id"), index=True)
    old_label: Mapped[int] = mapped_column(ForeignKey("classes.id"))
    new_label: Mapped[int] = mapped_column(ForeignKey("classes.id"))
    votes_for: Mapped[int] = mapped_column(Integer)
    votes_cast: Mapped[int] = mapped_column(Integer)
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id"))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)
