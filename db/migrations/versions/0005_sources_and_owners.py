"""Where every label came from and who owns every threshold (schema 5).

- decisions and current_decisions get `source` (gold is imported; verified, relabeled and
  labeled are a person's classes, pseudo the tool's), filled in from the action and, for an
  accept, the reviewer: `auto` accepted pseudo-labels, anyone else verified the prediction.
- decisions get `card` (unknown for earlier decisions) and `confidence` (from the predictions
  of the round they were decided on), which the review's check of the calibration reads.
- thresholds get `policy_may_set`: false where a person set the value last (the tool's own
  names are init and policy), so that the policy after a round leaves it alone; every current
  value opens the new append-only `threshold_changes` history.
- rounds get `progress` and `progress_message`, which every page follows, and the status
  `discarded` (an automatic round whose out-of-fold evidence was worse than the round before).

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

from mersemi.db.migrate import set_schema_version

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SOURCES = ("gold", "verified", "relabeled", "labeled", "pseudo")
SOURCE_OF = ("CASE action WHEN 'accept' THEN (CASE WHEN reviewer = 'auto' THEN 'pseudo' ELSE 'verified' END) "
             "WHEN 'relabel' THEN 'relabeled' WHEN 'label' THEN 'labeled' ELSE NULL END")


def upgrade() -> None:
    quoted = ", ".join(f"'{s}'" for s in SOURCES)
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("source", sa.String(16), nullable=True))
        batch.add_column(sa.Column("card", sa.String(8), nullable=True))
        batch.add_column(sa.Column("confidence", sa.Float, nullable=True))
        batch.create_check_constraint("ck_decisions_source", f"source IN ({quoted})")
        batch.create_check_constraint("ck_decisions_card", "card IN ('label', 'verify')")
    with op.batch_alter_table("current_decisions") as batch:
        batch.add_column(sa.Column("source", sa.String(16), nullable=True))
        batch.create_check_constraint("ck_current_decisions_source", f"source IN ({quoted})")
    op.execute(f"UPDATE decisions SET source = {SOURCE_OF}")
    op.execute("UPDATE decisions SET confidence = (SELECT p.confidence FROM predictions p "
               "WHERE p.round_id = decisions.round_id AND p.sample_id = decisions.sample_id)")
    op.execute("UPDATE current_decisions SET source = (SELECT d.source FROM decisions d "
               "WHERE d.id = current_decisions.decision_id)")
    op.create_index("ix_current_source_label", "current_decisions", ["source", "label"])

    with op.batch_alter_table("thresholds") as batch:
        batch.add_column(sa.Column("policy_may_set", sa.Boolean, nullable=True))
    op.execute("UPDATE thresholds SET policy_may_set = (updated_by IS NULL OR updated_by IN ('init', 'policy'))")
    with op.batch_alter_table("thresholds") as batch:
        batch.alter_column("policy_may_set", existing_type=sa.Boolean, nullable=False)
    op.create_table(
        "threshold_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("class_id", sa.Integer, sa.ForeignKey("classes.id"), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("policy_may_set", sa.Boolean, nullable=False),
        sa.Column("set_by", sa.String(128), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("round_id", sa.Integer, sa.ForeignKey("rounds.id"), nullable=True),
        sa.Column("note", sa.Text, nullable=True))
    op.create_index("ix_threshold_changes_class_id", "threshold_changes", ["class_id"])
    op.execute("INSERT INTO threshold_changes (class_id, value, policy_may_set, set_by, set_at, note) "
               "SELECT class_id, value, policy_may_set, COALESCE(updated_by, 'init'), updated_at, "
               "'in force when the history began' FROM thresholds")

    with op.batch_alter_table("rounds") as batch:
        batch.add_column(sa.Column("progress", sa.Float, nullable=True))
        batch.add_column(sa.Column("progress_message", sa.String(255), nullable=True))
        batch.drop_constraint("ck_rounds_status", type_="check")
        batch.create_check_constraint("ck_rounds_status",
                                      "status IN ('queued', 'running', 'done', 'failed', 'discarded')")
    set_schema_version(op, 5)
