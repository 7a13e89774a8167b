"""Where a project's store is: DIR/project.db, or a PostgreSQL server that DIR/database.url
names (never with its password), and the URL forms `init --db` accepts."""
from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import URL, make_url
from sqlalchemy.exc import ArgumentError

from ..db.connect import masked, sqlite_url

from .errors import ProjectError

# A project whose store is on a server keeps its URL here (never its password).
SERVER_URL_FILE = "database.url"
PASSWORD_ENV = "MERSEMI_DB_PASSWORD"


def store_url(root: Path) -> str | URL:
    """DIR's store: DIR/project.db, or the server URL that DIR/database.url records. That file
    holds no password: it comes from the environment variable MERSEMI_DB_PASSWORD, or else the
    driver (libpq) finds it in ~/.pgpass (or PGPASSFILE, PGPASSWORD) by itself."""
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
    # URL.set(password=None) would keep the password: None there means "unchanged".
    return URL.create(url.drivername, url.username, None, url.host, url.port, url.database,
                      url.query).render_as_string(hide_password=False)


def store_label(root: Path, url: str | URL) -> str:
    """The store as a message names it: the SQLite file, or the server URL without its password."""
    return str(root / "project.db") if str(url).startswith("sqlite") else masked(url)
