"""Opening the database: engine creation, SQLite connection set-up, schema version.

This is the only place with SQLite-specific SQL (PRAGMAs); everything else is portable so
that a PostgreSQL URL can serve a team later.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.orm import Session

from ..engine.errors import MersemiError
from .models import SCHEMA_VERSION, Base, Meta

BUSY_TIMEOUT_MS = 30_000


class SchemaError(MersemiError, RuntimeError):
    """The database was written by an incompatible version of the tool."""


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def make_engine(url: str) -> Engine:
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
    return engine


def _sqlite_on_connect(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # busy_timeout first: switching to WAL can itself meet a lock held by another process.
    cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA journal_mode = WAL")       # readers never block the writer
    cur.execute("PRAGMA synchronous = NORMAL")     # durable at checkpoints; safe with WAL
    cur.execute("PRAGMA foreign_keys = ON")
    cur.close()


def create_schema(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    with Session(engine) as s, s.begin():
        s.merge(Meta(key="schema_version", value=str(SCHEMA_VERSION)))


def check_schema(engine: Engine) -> None:
    with Session(engine) as s:
        try:
            found = s.scalar(select(Meta.value).where(Meta.key == "schema_version"))
        except Exception as e:  # no meta table: not one of our databases
            raise SchemaError(f"not a mersemi project database ({e.__class__.__name__})") from None
    if found is None:
        raise SchemaError("not a mersemi project database (no schema version)")
    if int(found) != SCHEMA_VERSION:
        raise SchemaError(f"database schema version {found}, this tool reads version {SCHEMA_VERSION}")
