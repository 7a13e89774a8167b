"""Schema migrations (Alembic, as MLflow's tracking store uses them), run from code.

The revisions live in migrations/versions/; revision "000N" leads to schema version N and
records N in the meta table, which is what opening a project checks. A new store is built
from models.py and stamped with the head revision (a test checks that this equals the
migrations' result). A database from before migrations existed has schema version 1 and no
alembic_version table: it is stamped with the baseline revision, which describes exactly that
schema, and upgraded from there.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, column, insert, inspect, table, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from .connect import (
    check_schema, masked, schema_version, set_sqlite_foreign_keys, sqlite_foreign_key_violations,
)
from .errors import SchemaError, SchemaTooNew, StoreError, StoreNotEmpty
from .models import SCHEMA_VERSION, Base, Meta

MIGRATIONS = Path(__file__).parent / "migrations"
BASELINE = "0001"   # schema version 1, the last one without an alembic_version table


def set_schema_version(op, version: int) -> None:
    """Record the version a migration leads to (called at the end of each upgrade())."""
    meta = table("meta", column("key"), column("value"))
    op.execute(update(meta).where(meta.c.key == "schema_version").values(value=str(version)))


def create_schema(engine: Engine, populate: Callable[[Session], None] | None = None) -> None:
    """A new store at the current version, and what `populate` adds (a project's classes), in
    one transaction: a kill leaves the database empty or complete. Refuses a non-empty database."""
    with engine.begin() as conn:
        tables = inspect(conn).get_table_names()
        if tables:
            raise StoreNotEmpty(f"{masked(engine.url)} already holds tables ({', '.join(sorted(tables)[:5])}); "
                             "give an empty database")
        Base.metadata.create_all(conn)
        _stamp(conn, "head")
        conn.execute(insert(Meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
        if populate is not None:
            with Session(bind=conn) as s:   # joins this transaction: committed with the schema
                populate(s)
                s.flush()


def upgrade(engine: Engine) -> tuple[int, int]:
    """Upgrade the store to the current version in one transaction (both backends roll DDL
    back: a failed upgrade leaves the database as it was); return (from, to) versions. The
    backup copy (`backup_sqlite`) is for a migration that succeeds and turns out wrong."""
    found = schema_version(engine)
    if found is None:
        raise SchemaError("not a mersemi project database (no meta table)")
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(found, SCHEMA_VERSION)
    if found == SCHEMA_VERSION:
        return found, found
    with engine.connect() as conn:
        set_sqlite_foreign_keys(conn, False)
        try:
            with conn.begin():
                if not inspect(conn).has_table("alembic_version"):
                    if found != 1:
                        raise SchemaError(f"schema version {found} without an alembic_version table: "
                                          "not a database this tool wrote")
                    _stamp(conn, BASELINE)
                command.upgrade(alembic_config(conn), "head")
                broken = sqlite_foreign_key_violations(conn)
                if broken:  # rolls the whole upgrade back
                    raise SchemaError(f"the upgrade would break {len(broken)} foreign keys, "
                                      f"e.g. in table {broken[0][0]}")
        finally:
            set_sqlite_foreign_keys(conn, True)
    check_schema(engine)
    return found, SCHEMA_VERSION


def backup_sqlite(db_file: Path, version: int) -> Path:
    """A consistent copy of a SQLite database (WAL included) beside it; returns its path."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    target = db_file.with_name(f"{db_file.name}.v{version}-backup-{stamp}")
    src = sqlite3.connect(db_file)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    except BaseException as e:
        target.unlink(missing_ok=True)   # a part copy is no backup (a full disk, say)
        if isinstance(e, sqlite3.Error):
            raise StoreError(f"cannot write the backup copy {target.name} ({e}); nothing was changed") from None
        raise
    finally:
        src.close()
    return target


def _stamp(conn: Connection, revision: str) -> None:
    """Record `revision` as the database's state without running it."""
    MigrationContext.configure(conn).stamp(ScriptDirectory.from_config(alembic_config(conn)), revision)


def alembic_config(conn: Connection) -> Config:
    """Alembic's configuration for running the shipped migrations on `conn`."""
    cfg = Config()   # no alembic.ini: everything it would hold is set here
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg
