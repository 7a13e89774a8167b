"""Alembic environment. mersemi.db.migrate runs it with an open connection in
`config.attributes["connection"]`, inside that connection's transaction.

A new schema change is a new file in versions/: revision "000N" (N the next schema version),
down_revision the previous one, an upgrade() that ends with set_schema_version(N), and
models.SCHEMA_VERSION raised to N. tests/test_migrations.py checks that the migrations and
models.py describe the same schema on SQLite and on PostgreSQL.
"""
from alembic import context

from mersemi.db.models import Base

connection = context.config.attributes["connection"]
# render_as_batch: SQLite alters a table by rebuilding it; Alembic's batch mode does that.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
