"""Where a project's store is: DIR/project.db, or a PostgreSQL server that DIR/database.url
names (never with its password), and the URL forms `init --db` accepts.

The command line's help names PASSWORD_ENV before it parses anything: SQLAlchemy (a third of
a second) is imported by the functions that read URLs, not by this module."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ProjectError

if TYPE_CHECKING:
    from sqlalchemy import URL

# A project whose store is on a server keeps its URL here (never its password).
SERVER_URL_FILE = "database.url"
PASSWORD_ENV = "MERSEMI_DB_PASSWORD"


def store_url(root: Path) -> str | URL:
    """DIR's store: DIR/project.db, or the server URL that DIR/database.url records. That file
    holds no password: it comes from the environment variable MERSEMI_DB_PASSWORD, or else the
    driver (libpq) finds it in ~/.pgpass (or PGPASSFILE, PGPASSWORD) by itself."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    from ..db.connect import sqlite_url

    if (root / "project.db").is_file():
        return sqlite_url(root / "project.db")
    if (root / SERVER_URL_FILE).is_file():
        text = (root / SERVER_URL_FILE).read_text().strip()
        try:
            url = make_url(text)
        except ArgumentError:
            raise ProjectError(f"{root / SERVER_URL_FILE}: not a database URL: {text[:200]!r}") from None
        password = os.environ.get(PASSWORD_ENV)
        return url.set(password=password) if password and url.password is None else url
    raise ProjectError(f"{root}: not a project (no project.db or {SERVER_URL_FILE}; "
                       f"run 'mersemi init {root}')")


def server_url(text: str) -> URL:
    """A PostgreSQL URL for --db; plain postgresql:// means the psycopg (v3) driver."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    from ..db.connect import masked

    try:
        url = make_url(text.strip())
    except ArgumentError:
        url = None
    if url is None or url.get_backend_name() != "postgresql" or not url.database:
        raise ProjectError(f"--db: expected postgresql+psycopg://USER@HOST:PORT/DATABASE, got "
                           f"{masked(text) if url is not None else text[:200]!r}")
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def without_password(url: URL) -> str:
    """The URL as text without its password."""
    # URL.set(password=None) would keep the password: None there means "unchanged".
    return url.create(url.drivername, url.username, None, url.host, url.port, url.database,
                      url.query).render_as_string(hide_password=False)


def store_label(root: Path, url: str | URL) -> str:
    """The store as a message names it: the SQLite file, or the server URL without its password."""
    from ..db.connect import masked

    return str(root / "project.db") if str(url).startswith("sqlite") else masked(url)
