"""Opening the database: engine creation, per-backend connection set-up, write transactions,
the errors that mean "busy", the failures a user can act on (a full disk, a server gone, a
damaged file: `failure`), and the schema version check.

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

from ..engine.disk import free_bytes
from .errors import (
    SchemaError, SchemaOutOfDate, SchemaTooNew, StoreDamaged, StoreError, StoreFull, StoreUnavailable,
)
from .models import SCHEMA_VERSION, Meta

# How long a write waits for another writer's lock before it gives up with StoreBusy.
BUSY_TIMEOUT_S = 30.0
# Execution option that marks a connection as one that writes (see `write_engine`).
_WRITE = "mersemi_write"

_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
_SQLITE_ERROR, _SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 1, 10, 11, 13, 26
_SQLITE_IOERR_SHORT_READ = 522   # a page that ends early: a truncated file
_PG_LOCK_NOT_AVAILABLE = "55P03"
_PG_RETRY = {"40001", "40P01"}   # serialization failure, deadlock detected: run it again


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def make_engine(url: str | URL, busy_timeout_s: float = BUSY_TIMEOUT_S) -> Engine:
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        # hide_parameters: an error's text (a log, a traceback) never carries sample names, notes, reviewers
        engine = create_engine(url, json_serializer=dumps_json, json_deserializer=loads_json, hide_parameters=True)
        ms = int(busy_timeout_s * 1000)
        event.listen(engine, "connect", lambda conn, _rec: _sqlite_on_connect(conn, ms))
        event.listen(engine, "begin", _sqlite_begin)
    elif url.get_backend_name() == "postgresql":
        # lock_timeout: a write waiting on a row lock gives up like SQLite's busy timeout.
        engine = create_engine(url, json_serializer=dumps_json, json_deserializer=loads_json, hide_parameters=True,
                               pool_pre_ping=True,
                               connect_args={"options": f"-c lock_timeout={int(busy_timeout_s * 1000)}"})
    else:
        raise StoreUnavailable(f"unsupported database URL {masked(url)}: use sqlite:/// or "
                               "postgresql+psycopg://")
    # Every statement, read or write, raises the one-line error of a failure the user can act
    # on instead of SQLAlchemy's, whose text carries the SQL and its parameters (sample names,
    # notes, reviewers).
    event.listen(engine, "handle_error", lambda ctx: _raise_failure(ctx, url))
    return engine


def _raise_failure(ctx, url: URL) -> None:
    found = failure(ctx.original_exception, url, disconnect=ctx.is_disconnect)   # ctx.engine: None at pre-ping
    if found is not None:
        raise found


def failure(e: BaseException, url: URL | None, disconnect: bool = False) -> StoreError | None:
    """The one-line error for a database failure a user can act on, or None for anything else
    (busy and serialization failures included: the write path retries or reports them)."""
    orig = getattr(e, "orig", None) or e
    code = getattr(orig, "sqlite_errorcode", None)
    text = _first_line(orig)
    if code is not None:
        where = _place(url)
        if code & 0xFF == _SQLITE_FULL or code & 0xFF == _SQLITE_IOERR and _no_room(url):
            return StoreFull(f"{where}: the disk is full; nothing was written (free some space there and try again)")
        if code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or code == _SQLITE_IOERR_SHORT_READ:
            return StoreDamaged(f"{where} is damaged ({text}); nothing was written. "
                                "`mersemi check DIR` says what, and the way out", reason=f"SQLite: {text}")
        if code & 0xFF == _SQLITE_ERROR and text.startswith(("no such table", "no such column")):
            return StoreDamaged(f"{where}: {text}: the store lacks part of its schema. "
                                "`mersemi check DIR` says what, and the way out")
        return None
    state = getattr(orig, "sqlstate", None)
    if state == "53100":
        return StoreFull(f"{_place(url)}: the server's disk is full; nothing was written (try again once it has space)")
    if state in ("42P01", "42703"):   # undefined table, column
        return StoreDamaged(f"{_place(url)}: {text}: the store lacks part of its schema. "
                            "`mersemi check DIR` says what, and the way out")
    refused_login = any(w in text.lower() for w in ("password", "authentication", "does not exist", "role "))
    gone = disconnect or (state or "")[:2] == "08" or state in ("57P01", "57P02", "57P03") or (
        state is None and type(orig).__name__ == "OperationalError" and not refused_login
        and url is not None and url.get_backend_name() == "postgresql")
    if gone:
        return StoreUnavailable(f"database unreachable at {_place(url)}, nothing written; try again")
    return None


def _no_room(url: URL | None) -> bool:
    """Whether a SQLite file's folder is (nearly) full: an I/O error opening a WAL database
    there is its shared-memory file that could not be made."""
    if url is None or not url.database:
        return False
    return free_bytes(Path(url.database).parent) < 256 * 1024


def _place(url: URL | None) -> str:
    """The store as a message names it: the SQLite file, or the server's HOST:PORT."""
    if url is None:
        return "the database"
    if url.get_backend_name() == "sqlite":
        return url.database or "the SQLite database"
    return f"{(url.host or 'localhost')[:100]}:{url.port or 5432}"


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


def loads_json(text: str) -> Any:
    """A JSON column as read: text that is not JSON is a damaged store, said in one line."""
    try:
        return json.loads(text)
    except ValueError:
        raise StoreDamaged(f"a JSON column holds text that is not JSON ({text[:40]!r}...); `mersemi check DIR` "
                           "says which record, and the way out") from None


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
    from .models import Base

    with engine.connect() as conn:   # one catalogue read: a dropped table is damage, said at open
        missing = sorted(set(Base.metadata.tables) - set(inspect(conn).get_table_names()))
    if missing:
        raise StoreDamaged(f"{_place(engine.url)}: table {', '.join(missing)} is missing; `mersemi check DIR` says "
                           "what else, and the way out")


def unavailable(engine: Engine, e: DBAPIError) -> StoreUnavailable:
    """The one-line error for a database that cannot be opened (server down, login refused,
    not a database file)."""
    return StoreUnavailable(f"cannot open the database at {masked(engine.url)}: {_first_line(e.orig or e)}")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else e.__class__.__name__


def quick_problems(engine: Engine) -> list[str]:
    """SQLite's quick_check (every page and record, not the indexes' contents): what a command
    about to write much (a round) runs first, so that it never writes into a broken file.
    Empty when sound, and on PostgreSQL, whose server keeps its pages whole itself."""
    if engine.dialect.name != "sqlite":
        return []
    with engine.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql("PRAGMA quick_check(5)") if r[0] != "ok"]


def integrity_problems(engine: Engine) -> list[str]:
    """What the database itself finds wrong: SQLite's integrity_check (every page, index and
    constraint), PostgreSQL's catalogue (each table of models.py and its columns present; the
    server keeps its pages whole itself). Empty when sound."""
    from .models import Base

    problems = []
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            found = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check(20)")]
            problems += [f"SQLite integrity check: {p}" for p in found if p != "ok"]
        tables = set(inspect(conn).get_table_names())
        for t in Base.metadata.sorted_tables:
            if t.name not in tables:
                problems.append(f"table {t.name} is missing")
                continue
            have = {c["name"] for c in inspect(conn).get_columns(t.name)}
            missing = [c.name for c in t.columns if c.name not in have]
            if missing:
                problems.append(f"table {t.name} lacks columns {', '.join(missing)}")
    return problems
