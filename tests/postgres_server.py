"""A real PostgreSQL server for the tests marked `postgres`: Debian's initdb and pg_ctl, a
data folder in a fresh temporary directory, a free port on 127.0.0.1, started once per
session and stopped at its end. Root may not run the server, so as root it runs as the
`postgres` system user (which Debian's package creates).

Two roles: `mersemi` (the superuser, trusted from 127.0.0.1) and `teammate`, who must give
a password (to test that a project keeps no password and finds it at open).
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

PASSWORD_USER, PASSWORD = "teammate", "s3cret-pw"


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0)
    return candidates[-1] if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self) -> None:
        initdb, self.pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not initdb or not self.pg_ctl:
            pytest.fail("PostgreSQL's initdb/pg_ctl not found: run the tests with 'make test', "
                        "which installs Debian's postgresql package", pytrace=False)
        self.root = Path(tempfile.mkdtemp(prefix="mersemi-pg-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run([initdb, "-D", str(self.data), "-U", "mersemi", "-A", "trust", "-E", "UTF8",
                   "--no-sync", "--no-instructions"])
        # First match wins: the teammate logs in with a password, everyone else is trusted.
        (self.data / "pg_hba.conf").write_text(
            f"host all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
            "local all all trust\n")
        self.opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                     "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self.resume()
        self.admin(f"CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{PASSWORD}' CREATEDB")

    def halt(self) -> None:
        """Stop the server now, its clients cut off as in an outage (fast mode: the commits the
        server acknowledged stay, which an immediate stop with this server's synchronous_commit=off
        would not promise)."""
        self._run([self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def resume(self) -> None:
        """Start the server (again, after `halt`), on the same port and data."""
        self._run([self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", self.opts, "-w", "start"])

    def _run(self, cmd: list[str]) -> None:
        out = subprocess.run(self.as_user + cmd, capture_output=True, text=True)
        if out.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()} {log}")

    def url(self, db: str = "postgres", user: str = "mersemi", password: str | None = None) -> str:
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql+psycopg://{auth}@127.0.0.1:{self.port}/{db}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="mersemi", dbname="postgres",
                             autocommit=True) as c:
            c.execute(sql)

    def new_database(self, owner: str = "mersemi") -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.admin(f"CREATE DATABASE {name} OWNER {owner}")
        return name

    def drop_database(self, name: str) -> None:
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        try:
            self._run([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
