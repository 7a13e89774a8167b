"""The class the model predicted, kept with each decision (decisions and current_decisions),
so that the review page's per-class counts are one indexed GROUP BY instead of a join of the
decisions in force with the predictions of their rounds on every key press. Existing rows
get it from the predictions of the round they were decided on.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

from mersemi.db.migrate import set_schema_version

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("decisions", "current_decisions"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("predicted", sa.Integer, nullable=True))
            batch.create_foreign_key(f"fk_{table}_predicted", "classes", ["predicted"], ["id"])
    op.execute("UPDATE decisions SET predicted = (SELECT p.predicted FROM predictions p "
               "WHERE p.round_id = decisions.round_id AND p.sample_id = decisions.sample_id)")
    op.execute("UPDATE current_decisions SET predicted = (SELECT d.predicted FROM decisions d "
               "WHERE d.id = current_decisions.decision_id)")
    op.create_index("ix_current_action_predicted", "current_decisions", ["action", "predicted"])
    set_schema_version(op, 4)
