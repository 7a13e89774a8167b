"""The database server may go away (issue 31, point 6): an outage before or during a command or
an app action is one line, "database unreachable at HOST:PORT, nothing written; try again",
never the SQL's parameters (sample names, notes, reviewers) on stderr or in the log; the
store is as it was when the server comes back, and the same objects work again.
MERSEMI_DB_PASSWORD is the password of every command, `init` included. A server of its own
(tests/postgres_server.py), stopped and started again by the tests."""
from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from app_fixtures import make_review_project
from mersemi.db.errors import StoreUnavailable
from mersemi.service.actions import AppActions
from mersemi.service.project import DecisionRequest, Project, ProjectError
from postgres_server import PASSWORD, PASSWORD_USER, PostgresServer
from test_cli import run
from test_cli_errors import one_line_error

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    s = PostgresServer()
    yield s
    s.stop()


@pytest.fixture
def review(server, tmp_path) -> Iterator[Path]:
    root = tmp_path / "p"
    make_review_project(root, db_url=server.url(server.new_database())).close()
    yield root
    server.resume() if not (server.data / "postmaster.pid").exists() else None


def gone(server: PostgresServer) -> str:
    return f"database unreachable at 127.0.0.1:{server.port}, nothing written; try again"


def log_of(root: Path) -> list:
    with Project.open(root) as p:
        return [(d.sample_id, d.action, d.reviewer, d.note) for d in p.store.decisions.log()]


def test_commands_while_the_server_is_down_are_one_line(server, review, tmp_path, capsys):
    decisions = tmp_path / "d.csv"
    with open(decisions, "w", newline="") as f:
        csv.writer(f).writerows([["name", "decision", "label", "note"], ["u00", "accept", "", "secret-note"]])
    before = log_of(review)
    server.halt()
    for args in (["status", review], ["decide", review, "--file", decisions, "--reviewer", "ann"],
                 ["thresholds", review, "--set", "joy=0.7", "--by", "ann"]):
        code, out, err = run(capsys, *args)
        one_line_error(code, err, gone(server))
        assert "secret-note" not in err and "u00" not in err and "INSERT" not in err
    server.resume()
    assert log_of(review) == before


def test_an_outage_in_the_middle_of_a_command_is_one_line_and_writes_nothing(server, review):
    with Project.open(review) as project:   # connected and read: the server goes away between reads and the write
        before = project.store.decisions.log()
        requests = [DecisionRequest(f"u{i:02d}", "reject", note=f"note-{i}") for i in range(60)]
        server.halt()
        with pytest.raises((StoreUnavailable, ProjectError)) as e:
            project.decide(requests, reviewer="ann")
        assert str(e.value) == gone(server)
        server.resume()
        assert project.store.decisions.log() == before   # the same store object works again
        assert project.decide(requests[:1], reviewer="ann")["recorded"] == 1


def test_app_actions_during_an_outage_are_refusals_without_a_traceback(server, review, caplog):
    actions = AppActions(Project.open(review))
    try:
        assert actions.candidate_counts()["ok"] is True
        server.halt()
        with caplog.at_level(logging.DEBUG):
            for out in (actions.decide("u00", "accept", "", "ann"), actions.candidate_counts(), actions.changes(),
                        actions.decisions(sample="u0"), actions.status()):
                assert out == {"ok": False, "error": gone(server), "code": "busy"}, out
        assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
        server.resume()
        assert actions.decide("u00", "accept", "", "ann")["ok"] is True
    finally:
        if not (server.data / "postmaster.pid").exists():
            server.resume()
        actions.shutdown()


def test_init_takes_the_password_from_mersemi_db_password(server, tmp_path, monkeypatch, capsys):
    name = server.new_database(owner=PASSWORD_USER)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    monkeypatch.delenv("MERSEMI_DB_PASSWORD", raising=False)
    url = server.url(name, PASSWORD_USER)   # no password in it
    code, _, err = run(capsys, "init", tmp_path / "refused", "--db", url)
    one_line_error(code, err, "password")
    monkeypatch.setenv("MERSEMI_DB_PASSWORD", PASSWORD)
    code, _, err = run(capsys, "init", tmp_path / "p", "--db", url)
    assert code == 0, err
    assert PASSWORD not in (tmp_path / "p" / "database.url").read_text()
    assert run(capsys, "status", tmp_path / "p")[0] == 0


def test_a_host_name_of_megabytes_is_one_line(server, review, capsys):
    url_file = review / "database.url"
    url_file.write_text(f"postgresql+psycopg://ann@{'h' * 3_000_000}:5432/x\n")
    one_line_error(*run(capsys, "status", review)[::2], "database.url")
    url_file.write_text(f"postgresql+psycopg://ann@{'h' * 300}:5432/x\n")
    one_line_error(*run(capsys, "status", review)[::2], "host name of 300 characters")
    one_line_error(*run(capsys, "init", review.parent / "q", "--db", f"postgresql://a@{'h' * 3_000_000}/x")[::2],
                   "--db")
