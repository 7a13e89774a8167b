"""Votes, consensus, adjudication and audit (schema 7).

- decisions get `vote` (false by default, and for every earlier decision: each was the one
  decision on its sample), `votes_for` and `votes_cast` (the votes behind a consensus).
- the label sources `consensus` (the majority of a card's votes) and `adjudicated` (a tie
  decided by a reviewer who did not vote) join the CHECK constraints.
- new tables: `vote_cards` (the samples that take votes: the overlap share, gold probes, gold
  labels under audit), `votes` (each reviewer's vote in force on one) and `gold_changes` (a gold
  label changed by an audit's consensus, with the label it had).

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

from mersemi.db.migrate import set_schema_version

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SOURCES = ("gold", "verified", "relabeled", "labeled", "pseudo", "consensus", "adjudicated")
ACTIONS = ("accept", "reject", "relabel", "label")
PURPOSES = ("overlap", "probe", "audit")


def _in(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


def upgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("vote", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("votes_for", sa.Integer, nullable=True))
        batch.add_column(sa.Column("votes_cast", sa.Integer, nullable=True))
        batch.drop_constraint("ck_decisions_source", type_="check")
        batch.create_check_constraint("ck_decisions_source", f"source IN ({_in(SOURCES)})")
    with op.batch_alter_table("current_decisions") as batch:
        batch.drop_constraint("ck_current_decisions_source", type_="check")
        batch.create_check_constraint("ck_current_decisions_source", f"source IN ({_in(SOURCES)})")

    op.create_table(
        "vote_cards",
        sa.Column("sample_id", sa.Integer, sa.ForeignKey("samples.id"), primary_key=True, autoincrement=False),
        sa.Column("purpose", sa.String(8), nullable=False),
        sa.Column("votes_needed", sa.Integer, nullable=False),
        sa.Column("round_id", sa.Integer, sa.ForeignKey("rounds.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"purpose IN ({_in(PURPOSES)})", name="ck_vote_cards_purpose"))
    op.create_table(
        "votes",
        sa.Column("sample_id", sa.Integer, sa.ForeignKey("samples.id"), primary_key=True, autoincrement=False),
        sa.Column("reviewer", sa.String(128), primary_key=True),
        sa.Column("decision_id", sa.Integer, sa.ForeignKey("decisions.id"), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("label", sa.Integer, sa.ForeignKey("classes.id"), nullable=True),
        sa.CheckConstraint(f"action IN ({_in(ACTIONS)})", name="ck_votes_action"))
    op.create_index("ix_votes_reviewer", "votes", ["reviewer", "sample_id"])
    op.create_table(
        "gold_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sample_id", sa.Integer, sa.ForeignKey("samples.id"), nullable=False),
        sa.Column("old_label", sa.Integer, sa.ForeignKey("classes.id"), nullable=False),
        sa.Column("new_label", sa.Integer, sa.ForeignKey("classes.id"), nullable=False),
        sa.Column("votes_for", sa.Integer, nullable=False),
        sa.Column("votes_cast", sa.Integer, nullable=False),
        sa.Column("round_id", sa.Integer, sa.ForeignKey("rounds.id"), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text, nullable=True))
    op.create_index("ix_gold_changes_sample_id", "gold_changes", ["sample_id"])
    set_schema_version(op, 7)
