"""Claims record the server that holds them (schema 6), so that the next server on the same
host releases the cards of one that was killed instead of leaving them held until they expire.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

from mersemi.db.migrate import set_schema_version

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("claims") as batch:
        batch.add_column(sa.Column("server", sa.String(160), nullable=True))  # host:pid; NULL = unknown
    set_schema_version(op, 6)
