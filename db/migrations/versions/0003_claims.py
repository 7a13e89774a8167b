"""Claims: a reviewer's hold on a sample's card until it expires.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

from mersemi.db.migrate import set_schema_version

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("sample_id", sa.Integer, sa.ForeignKey("samples.id"), primary_key=True,
                  autoincrement=False),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False))
    op.create_index("ix_claims_expires", "claims", ["expires_at", "reviewer", "sample_id"])
    set_schema_version(op, 3)
