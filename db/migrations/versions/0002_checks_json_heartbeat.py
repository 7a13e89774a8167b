"""CHECK constraints on every status/kind/action/split column (with the new decision action
`label`), JSON columns for the rounds' config, thresholds, composition and metrics, and a
heartbeat on rounds.

On SQLite each table is rebuilt (Alembic's batch mode) and the JSON text is copied as it is;
on PostgreSQL the text is cast to json. The allowed values are written out as they were at
this version: later changes to models.py need a migration of their own.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

from mersemi.db.migrate import set_schema_version

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CHECKS = {
    # table: (constraint name, column, allowed values)
    "samples": ("ck_samples_split", "split", ("labeled", "unlabeled", "test")),
    "rounds": ("ck_rounds_status", "status", ("queued", "running", "done", "failed")),
    "predictions": ("ck_predictions_kind", "kind", ("pool", "test", "oof")),
    "decisions": ("ck_decisions_action", "action",
                  ("accept", "reject", "relabel", "label", "undo")),
    "current_decisions": ("ck_current_decisions_action", "action",
                          ("accept", "reject", "relabel", "label")),
}
JSON_COLUMNS = {"config": False, "thresholds": False, "composition": True, "metrics": True}


def upgrade() -> None:
    for table, (name, column, values) in CHECKS.items():
        with op.batch_alter_table(table) as batch:
            if table == "rounds":
                for col, nullable in JSON_COLUMNS.items():
                    batch.alter_column(col, type_=sa.JSON(none_as_null=True), existing_type=sa.Text(),
                                       existing_nullable=nullable, postgresql_using=f"{col}::json")
                batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True)))
            quoted = ", ".join(f"'{v}'" for v in values)
            batch.create_check_constraint(name, f"{column} IN ({quoted})")
    set_schema_version(op, 2)
