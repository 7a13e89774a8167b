"""`init` is atomic (issue 31, point 2): killed at any step it leaves a project or none, and what
a killed init left (of this version, or an older one: a project.db of 0 bytes, without tables,
or without classes) is recognised by `status` and cleared by the next `init`, on SQLite and
PostgreSQL. Real `mersemi init` processes, killed by themselves at named points
(MERSEMI_CRASH_AT)."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from mersemi.db.store import Store
from test_import_kill import mersemi

pytestmark = pytest.mark.slow  # real processes, killed
POINTS = ["init:built", "init:renamed"]


def init_args(root: Path, url: str | None) -> list:
    return ["init", root] + (["--db", url] if url else [])


def usable(root: Path) -> dict:
    """The project's status: it opens, with its six classes, and takes a threshold."""
    assert mersemi("thresholds", root, "--set", "happy=0.7", "--by", "ann").returncode == 0
    out = mersemi("status", root, "--json")
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert len(status["classes"]) == 6 and status["thresholds"]["happy"] == 0.7
    return status


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server_url(request) -> str | None:
    return None if request.param == "sqlite" else request.getfixturevalue("pg_url")


@pytest.mark.parametrize("point", POINTS)
def test_a_killed_init_leaves_a_project_or_none_and_the_next_init_finishes(point, server_url, tmp_path):
    root = tmp_path / "p"
    (tmp_path / "p").mkdir()
    (root / "notes.txt").write_text("mine")   # a user's file in the folder stays
    killed = mersemi(*init_args(root, server_url), crash_at=point)
    assert killed.returncode == -9, killed.stderr[-2000:]
    opened = mersemi("status", root)
    if opened.returncode == 0:   # killed after the commit point: a whole project
        usable(root)
        return
    assert opened.stderr.startswith("mersemi: error: ") and opened.stderr.count("\n") == 1, opened.stderr
    again = mersemi(*init_args(root, server_url))
    assert again.returncode == 0, again.stderr
    assert "interrupted" in again.stderr   # it says what it cleared
    usable(root)
    assert (root / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in root.iterdir()) == sorted(
        ["notes.txt", "features", "checkpoints", "exports", "project.db" if server_url is None else "database.url"])


@pytest.mark.postgres
def test_a_store_left_by_a_killed_init_is_taken_only_by_that_folder(pg_url, tmp_path):
    killed = mersemi("init", tmp_path / "p", "--db", pg_url, crash_at="init:built")
    assert killed.returncode == -9
    other = mersemi("init", tmp_path / "q", "--db", pg_url)   # no note of it in q: not q's to take
    assert other.returncode == 1 and "already holds tables" in other.stderr and not (tmp_path / "q").exists()
    assert mersemi("init", tmp_path / "p", "--db", pg_url).returncode == 0
    usable(tmp_path / "p")


def old_half_made(kind: str, db: Path) -> None:
    """What older versions' init left when killed: a file of 0 bytes, a database without tables,
    the schema committed but not the classes (they came in a second transaction)."""
    db.parent.mkdir(parents=True)
    for sub in ("features", "checkpoints", "exports"):
        (db.parent / sub).mkdir()
    if kind == "empty":
        db.write_bytes(b"")
    elif kind == "no tables":   # a header page, no table: 4096 bytes
        con = sqlite3.connect(db)
        con.execute("PRAGMA user_version = 1")
        con.commit()
        con.close()
    else:
        Store(f"sqlite:///{db}", create=True).close()


@pytest.mark.parametrize("kind", ["empty", "no tables", "no classes"])
def test_an_older_versions_half_made_project_is_recognised_and_repaired(kind, tmp_path):
    root = tmp_path / "p"
    old_half_made(kind, root / "project.db")
    out = mersemi("status", root)
    assert out.returncode == 1 and "its init was interrupted" in out.stderr and "mersemi init" in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1
    again = mersemi("init", root)
    assert again.returncode == 0, again.stderr
    assert "left by an init that was interrupted" in again.stderr
    usable(root)


def test_a_project_with_classes_is_never_taken_for_half_made(tmp_path):
    root = tmp_path / "p"
    assert mersemi("init", root).returncode == 0
    out = mersemi("init", root)
    assert out.returncode == 1 and "already a project" in out.stderr
    usable(root)
