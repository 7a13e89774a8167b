"""Baseline: the schema mersemi wrote before it had migrations (schema version 1).

A database of that version has no alembic_version table; `mersemi migrate` stamps it with
this revision and upgrades from here. Written out in full (not from models.py) so that it
keeps describing version 1 whatever the models become.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False))
    op.create_table(
        "classes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.UniqueConstraint("name"))
    op.create_table(
        "rounds",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("started_at", tz),
        sa.Column("finished_at", tz),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("config_name", sa.String(255), nullable=False),
        sa.Column("thresholds", sa.Text, nullable=False),
        sa.Column("auto_accept", sa.Boolean, nullable=False),
        sa.Column("composition", sa.Text),
        sa.Column("metrics", sa.Text),
        sa.Column("checkpoint", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("pid", sa.Integer),
        sa.Column("host", sa.String(255)))
    op.create_index("ix_rounds_status", "rounds", ["status"])
    op.create_table(
        "samples",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("split", sa.String(16), nullable=False),
        sa.Column("gold_label", sa.Integer, sa.ForeignKey("classes.id")),
        sa.Column("true_label", sa.Integer, sa.ForeignKey("classes.id")),
        sa.Column("text", sa.Text),
        sa.Column("media", sa.Text),
        sa.UniqueConstraint("name"))
    op.create_index("ix_samples_split", "samples", ["split"])
    op.create_table(
        "thresholds",
        sa.Column("class_id", sa.Integer, sa.ForeignKey("classes.id"), primary_key=True,
                  autoincrement=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.Column("updated_by", sa.String(128)))
    op.create_table(
        "predictions",
        sa.Column("round_id", sa.Integer, sa.ForeignKey("rounds.id"), primary_key=True,
                  autoincrement=False),
        sa.Column("sample_id", sa.Integer, sa.ForeignKey("samples.id"), primary_key=True,
                  autoincrement=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("predicted", sa.Integer, sa.ForeignKey("classes.id"), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("probs", sa.LargeBinary, nullable=False))
    op.create_index("ix_pred_conf", "predictions", ["round_id", "kind", "confidence"])
    op.create_index("ix_pred_class_conf", "predictions",
                    ["round_id", "kind", "predicted", "confidence", "sample_id"])
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sample_id", sa.Integer, sa.ForeignKey("samples.id"), nullable=False),
        sa.Column("round_id", sa.Integer, sa.ForeignKey("rounds.id")),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("label", sa.Integer, sa.ForeignKey("classes.id")),
        sa.Column("undoes", sa.Integer, sa.ForeignKey("decisions.id")),
        sa.Column("batch", sa.String(32), nullable=False),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("note", sa.Text))
    op.create_index("ix_decisions_batch", "decisions", ["batch"])
    op.create_index("ix_decisions_sample_id", "decisions", ["sample_id"])
    op.create_table(
        "current_decisions",
        sa.Column("sample_id", sa.Integer, sa.ForeignKey("samples.id"), primary_key=True,
                  autoincrement=False),
        sa.Column("decision_id", sa.Integer, sa.ForeignKey("decisions.id"), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("label", sa.Integer, sa.ForeignKey("classes.id")))
    op.create_index("ix_current_action_label", "current_decisions", ["action", "label"])
    meta = sa.table("meta", sa.column("key"), sa.column("value"))
    op.bulk_insert(meta, [{"key": "schema_version", "value": "1"}])
