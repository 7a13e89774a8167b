"""Where a project's store is: DIR/project.db, or a PostgreSQL server that DIR/database.url
names (never with its password), and the URL forms `init --db` accepts; what a killed `init`
leaves behind, recognised and cleared by the next one.

The command line's help names PASSWORD_ENV before it parses anything: SQLAlchemy (a third of
a second) is imported by the functions that read URLs, not by this module."""
from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.errors import UsageError
from ..engine.processes import pid_alive
from ..engine.safe_files import read_text
from ..engine.vocab import Tool

from .errors import ProjectError

if TYPE_CHECKING:
    from sqlalchemy import URL

    from ..db.store import Store

# A project whose store is on a server keeps its URL here (never its password).
SERVER_URL_FILE = "database.url"
PASSWORD_ENV = "MERSEMI_DB_PASSWORD"
# Set to 1 to open a project whose project.db is a symbolic link (to a store kept elsewhere).
ALLOW_LINK_ENV = "MERSEMI_ALLOW_DB_LINK"
MAX_URL_CHARS = 2000   # a database URL; a host name has at most 253


def store_url(root: Path) -> str | URL:
    """DIR's store: DIR/project.db, or the server URL that DIR/database.url records. That file
    holds no password: it comes from the environment variable MERSEMI_DB_PASSWORD, or else the
    driver (libpq) finds it in ~/.pgpass (or PGPASSFILE, PGPASSWORD) by itself."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    from ..db.connect import sqlite_url

    db = root / "project.db"
    if db.is_symlink() and os.environ.get(ALLOW_LINK_ENV) != "1":
        raise ProjectError(f"{db}: a symbolic link (to {os.readlink(db)[:200]}); a project's store is its own "
                           f"file, and a link may lead into another project. Copy the store in, or set "
                           f"{ALLOW_LINK_ENV}=1 to use it where it is")
    if db.is_file():
        return sqlite_url(db)
    if (root / SERVER_URL_FILE).is_file():
        try:
            text = read_text(root / SERVER_URL_FILE, "", limit=MAX_URL_CHARS).strip()
        except UsageError as e:
            raise ProjectError(f"{e}: not a database URL") from None
        try:
            url = make_url(text)
        except ArgumentError:
            raise ProjectError(f"{root / SERVER_URL_FILE}: not a database URL: {text[:200]!r}") from None
        _check_host(url, str(root / SERVER_URL_FILE))
        return with_password(url)
    raise ProjectError(f"{root}: not a project (no project.db or {SERVER_URL_FILE}; "
                       f"run 'mersemi init {root}')")


def server_url(text: str) -> URL:
    """A PostgreSQL URL for --db; plain postgresql:// means the psycopg (v3) driver."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    from ..db.connect import masked

    if len(text) > MAX_URL_CHARS:
        raise ProjectError(f"--db: a URL of {len(text):,} characters; a database URL has at most {MAX_URL_CHARS}")
    try:
        url = make_url(text.strip())
    except ArgumentError:
        url = None
    if url is None or url.get_backend_name() != "postgresql" or not url.database:
        raise ProjectError(f"--db: expected postgresql+psycopg://USER@HOST:PORT/DATABASE, got "
                           f"{masked(text) if url is not None else text[:200]!r}")
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    _check_host(url, "--db")
    return with_password(url)


def with_password(url: URL) -> URL:
    """`url` with the password of MERSEMI_DB_PASSWORD when it names none (else libpq looks in
    ~/.pgpass, PGPASSFILE, PGPASSWORD by itself)."""
    password = os.environ.get(PASSWORD_ENV)
    return url.set(password=password) if password and url.password is None else url


def _check_host(url: URL, where: str) -> None:
    host = url.host or ""
    if len(host) > 253 or any(len(label) > 63 for label in host.split(".")):
        raise ProjectError(f"{where}: host name of {len(host):,} characters is not a host name "
                           "(at most 253, 63 between dots)")


def without_password(url: URL) -> str:
    """The URL as text without its password."""
    # URL.set(password=None) would keep the password: None there means "unchanged".
    return url.create(url.drivername, url.username, None, url.host, url.port, url.database,
                      url.query).render_as_string(hide_password=False)


def store_label(root: Path, url: str | URL) -> str:
    """The store as a message names it: the SQLite file, or the server URL without its password."""
    from ..db.connect import masked

    return str(root / "project.db") if str(url).startswith("sqlite") else masked(url)


# ---------------------------------------------------------------------- what a killed init leaves

def init_temp_name(final: str = "project.db") -> str:
    """The name `init` writes DIR/`final` under before renaming it into place."""
    return f".{final}.init-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def remove_sqlite_files(db: Path) -> None:
    """A SQLite file and its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def clear_killed_init(root: Path) -> tuple[list[str], set[str]]:
    """Remove what a killed `init` left in DIR: this version's temporary store or URL note (its
    process gone), or an older version's project.db without tables or without classes (a store
    no command could use). Returns notes for the user, and the server URLs that killed inits
    had begun to make a store at (a store found there unused is theirs to finish)."""
    notes, pending = [], set()
    if root.is_dir():
        for final in ("project.db", SERVER_URL_FILE):
            prefix = f".{final}.init-"
            for temp in root.glob(f"{prefix}*"):
                pid = temp.name[len(prefix):].split("-")[0]
                if temp.name.endswith(("-wal", "-shm", "-journal")) or not pid.isdigit() or pid_alive(int(pid)):
                    continue   # a -wal/-shm file goes with its store; a live init is left alone
                if final == SERVER_URL_FILE:
                    pending.add(temp.read_text(errors="replace").strip())
                    temp.unlink(missing_ok=True)
                else:
                    remove_sqlite_files(temp)
                notes.append(f"removed {temp.name}, left by an init that was interrupted")
    db = root / "project.db"
    if half_made(db):
        lacks = "tables" if _tables(db) == set() else "classes"
        remove_sqlite_files(db)
        notes.append(f"removed {db}: a store without {lacks}, left by an init that was interrupted")
    return notes, pending


def half_made(db: Path) -> bool:
    """A project.db that an interrupted init left: empty, without tables, or with the schema
    but no classes (older versions wrote the classes in a second transaction)."""
    if db.is_symlink() or not db.is_file():
        return False
    tables = _tables(db)
    if tables is None:
        return False
    if not tables:
        return True
    return {"classes", "samples", "rounds"} <= tables and _count(db, "classes") == 0 and \
        _count(db, "samples") == 0 and _count(db, "rounds") == 0


def _tables(db: Path) -> set[str] | None:
    """The tables of a SQLite file; None when it is not one (or cannot be read)."""
    if db.stat().st_size == 0 and not Path(f"{db}-wal").is_file():
        return set()
    try:
        con = sqlite3.connect(db)   # only init reads it: the file is deleted when half-made
        try:
            return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except sqlite3.Error:
        return None


def _count(db: Path, table: str) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])   # noqa: S608 (our table names)
    finally:
        con.close()


def adopt_empty_store(server: URL, first: tuple[list[str], list[float]], refused: Exception, ours: bool) -> Store:
    """The store on `server`, when a killed init left it: one without classes (an older
    version's init, which wrote them in a second transaction; no project can use it), or, when
    this folder noted the URL (`ours`), a complete store with these classes that nothing has
    used since. Anything else refuses, as `refused` said."""
    from ..db.errors import StoreError
    from ..db.store import Store

    try:
        store = Store(server)
    except StoreError:
        raise ProjectError(f"--db: {refused}") from None
    try:
        names = store.classes.names()
        unused = store.samples.count() == 0 and not store.rounds.all() and not store.people() - {Tool.INIT}
        if unused and not names:
            store.classes.create(*first)
            return store
        if unused and ours and names == list(first[0]):
            return store
    except BaseException:
        store.close()
        raise
    store.close()
    raise ProjectError(f"--db: {refused}")


def write_text_atomically(path: Path, text: str) -> None:
    """`text` in a new file at `path`, whole or not at all (a temporary file renamed)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
