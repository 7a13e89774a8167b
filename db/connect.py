"""Opening the database: engine creation, per-backend connection set-up, write transactions,
the errors that mean "busy", and the schema version check.

This is the only place with backend-specific SQL (SQLite PRAGMAs and BEGIN IMMEDIATE,
PostgreSQL session settings); everything else is portable, so that a PostgreSQL URL serves a
team with the same models and queries.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, inspect, make_url, select
from sqlalchemy.exc import DBAPIError

from .errors import SchemaError, SchemaOutOfDate, SchemaTooNew, StoreUnavailable
from .models import SCHEMA_VERSION, Meta

# How long a write waits for another writer's lock before it gives up with StoreBusy.
BUSY_TIMEOUT_S = 30.0
# Execution option that marks a connection as one that writes (see `write_engine`).
_WRITE = "mersemi_write"

_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
_PG_LOCK_NOT_AVAILABLE = "55P03"
_PG_RETRY = {"40001", "40P01"}   # serialization failure, deadlock detected: run it again


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def make_engine(url: str | URL, busy_timeout_s: float = BUSY_TIMEOUT_S) -> Engine:
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, json_serializer=dumps_json)
        ms = int(busy_timeout_s * 1000)
        event.listen(engine, "connect", lambda conn, _rec: _sqlite_on_connect(conn, ms))
        event.listen(engine, "begin", _sqlite_begin)
    elif url.get_backend_name() == "postgresql":
        # lock_timeout: a write waiting on a row lock gives up like SQLite's busy timeout.
        engine = create_engine(url, json_serializer=dumps_json, pool_pre_ping=True,
                               connect_args={"options": f"-c lock_timeout={int(busy_timeout_s * 1000)}"})
    else:
        raise StoreUnavailable(f"unsupported database URL {masked(url)}: use sqlite:/// or "
                               "postgresql+psycopg://")
    return engine


def write_engine(engine: Engine) -> Engine:
    """The engine's twin for transactions that write: on SQLite they begin with BEGIN
    IMMEDIATE (the write lock is taken before the reads that decide the write), on PostgreSQL
    they run SERIALIZABLE (the caller retries on a serialization failure, see `is_retryable`)."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="SERIALIZABLE", **{_WRITE: True})
    return engine.execution_options(**{_WRITE: True})


def _sqlite_on_connect(dbapi_conn, busy_timeout_ms: int) -> None:
    # sqlite3 would BEGIN by itself only before DML, after the reads; SQLAlchemy's `begin`
    # event below emits BEGIN instead (SQLAlchemy's documented recipe for pysqlite).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # busy_timeout first: switching to WAL can itself meet a lock held by another process.
    cur.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    cur.execute("PRAGMA journal_mode = WAL")       # readers never block the writer
    cur.execute("PRAGMA synchronous = NORMAL")     # durable at checkpoints; safe with WAL
    cur.execute("PRAGMA foreign_keys = ON")
    cur.close()


def _sqlite_begin(conn) -> None:
    # IMMEDIATE takes the write lock at BEGIN (waiting up to busy_timeout): no other writer
    # can change what this transaction reads before it writes. Readers begin DEFERRED.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


def set_sqlite_foreign_keys(conn, on: bool) -> None:
    """Migrations rebuild tables, which enforced foreign keys forbid. SQLite ignores this
    PRAGMA inside a transaction, so it goes to the driver's connection directly (which runs
    it at once: see _sqlite_on_connect); call it while `conn` has no transaction."""
    if conn.dialect.name == "sqlite":
        conn.connection.driver_connection.execute(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")


def sqlite_foreign_key_violations(conn) -> list:
    """Rows whose foreign key points nowhere (checked after a migration rebuilt tables)."""
    return list(conn.exec_driver_sql("PRAGMA foreign_key_check")) if conn.dialect.name == "sqlite" else []


def is_busy(e: DBAPIError) -> bool:
    """The statement gave up waiting for another transaction's lock."""
    code = getattr(e.orig, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return getattr(e.orig, "sqlstate", None) == _PG_LOCK_NOT_AVAILABLE


def is_retryable(e: DBAPIError) -> bool:
    """A concurrent transaction made this one fail; running it again is correct."""
    return getattr(e.orig, "sqlstate", None) in _PG_RETRY


def masked(url: str | URL) -> str:
    return make_url(url).render_as_string(hide_password=True)


def dumps_json(value: Any) -> str:
    """JSON columns as both backends accept them: NaN and infinities become null
    (PostgreSQL's json type refuses them)."""
    return json.dumps(_finite(value))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def schema_version(engine: Engine) -> int | None:
    """The version recorded in the meta table; None for a database without our tables."""
    try:
        conn = engine.connect()
    except DBAPIError as e:
        raise unavailable(engine, e) from None
    with conn:
        if not inspect(conn).has_table("meta"):
            return None
        found = conn.execute(select(Meta.value).where(Meta.key == "schema_version")).scalar()
    if found is None:
        raise SchemaError("not a mersemi project database (no schema version in its meta table)")
    try:
        return int(found)
    except ValueError:
        raise SchemaError(f"corrupt schema version {str(found)[:40]!r} in the meta table "
                          "(expected a whole number)") from None


def check_schema(engine: Engine) -> None:
    """Refuse a database this version of the tool cannot read, naming why."""
    found = schema_version(engine)
    if found is None:
        raise SchemaError("not a mersemi project database (no meta table)")
    if found < SCHEMA_VERSION:
        raise SchemaOutOfDate(found, SCHEMA_VERSION)
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(found, SCHEMA_VERSION)


def unavailable(engine: Engine, e: DBAPIError) -> StoreUnavailable:
    """The one-line error for a database that cannot be opened (server down, login refused,
    not a database file)."""
    return StoreUnavailable(f"cannot open the database at {masked(engine.url)}: {_first_line(e.orig or e)}")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else e.__class__.__name__
