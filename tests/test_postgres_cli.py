"""A team's project: `init DIR --db URL` keeps the store on a (real) PostgreSQL server and
features, checkpoints and exports in DIR; DIR records the URL without the password, which
later commands take from MERSEMI_DB_PASSWORD or a pgpass file; a full round through the
command line (init, import, train, status) against the server."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mersemi.engine.synthetic import make_synthetic
from mersemi.ui.cli import main
from postgres_server import PASSWORD, PASSWORD_USER

pytestmark = pytest.mark.postgres
FAST = Path(__file__).parent / "fast.yaml"


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def team_db(pg_server, monkeypatch, tmp_path):
    """An empty database of the password-protected role; no password in the environment."""
    monkeypatch.delenv("MERSEMI_DB_PASSWORD", raising=False)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    name = pg_server.new_database(owner=PASSWORD_USER)
    yield name
    pg_server.drop_database(name)


@pytest.mark.slow
def test_a_round_through_the_command_line_with_the_store_on_postgresql(
        pg_server, team_db, tmp_path, capsys, monkeypatch):
    root, data = tmp_path / "proj", tmp_path / "data"
    make_synthetic(data, scale=0.05, seed=1)
    url = pg_server.url(team_db, PASSWORD_USER, PASSWORD)

    code, out, err = run(capsys, "init", root, "--db", url)
    assert code == 0, err
    recorded = (root / "database.url").read_text().strip()
    assert recorded == pg_server.url(team_db, PASSWORD_USER)       # the URL, less the password
    assert PASSWORD not in out + recorded
    assert sorted(p.name for p in root.iterdir()) == ["checkpoints", "database.url", "exports", "features"]

    # No password anywhere: one line that says where it comes from.
    code, out, err = run(capsys, "status", root)
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "no password supplied" in err and "MERSEMI_DB_PASSWORD" in err

    monkeypatch.setenv("MERSEMI_DB_PASSWORD", PASSWORD)
    code, _, err = run(capsys, "import", root, "--native", data)
    assert code == 0, err
    code, out, err = run(capsys, "train", root, "--config", FAST, "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "done"
    assert (root / "checkpoints" / "round-0.pt").is_file()
    assert sorted(p.name for p in (root / "features").glob("*.npy")) == ["audio.npy", "text.npy", "video.npy"]

    # A teammate with a pgpass file instead of the variable sees the same project.
    monkeypatch.delenv("MERSEMI_DB_PASSWORD")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{pg_server.port}:{team_db}:{PASSWORD_USER}:{PASSWORD}\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    code, out, err = run(capsys, "status", root, "--json")
    assert code == 0, err
    status = json.loads(out)
    assert [r["status"] for r in status["rounds"]] == ["done"] and status["rounds"][0]["cv_waf"] > 0
    assert status["samples"]["total"] > 0
    code, out, err = run(capsys, "migrate", root)
    assert code == 0 and "already at schema version" in out


def test_init_db_refuses_bad_urls_and_taken_databases_writing_nothing(pg_server, team_db, tmp_path, capsys):
    root = tmp_path / "proj"
    for bad, says in [("mysql://u@h/db", "expected postgresql+psycopg://"),
                      ("not a url", "expected postgresql+psycopg://"),
                      (pg_server.url(team_db).replace(str(pg_server.port), str(pg_server.port + 1)),
                       "database unreachable at 127.0.0.1"),
                      (pg_server.url(team_db, PASSWORD_USER, "wrong-password"), "password authentication failed")]:
        code, out, err = run(capsys, "init", root, "--db", bad)
        assert code == 1 and out == "" and len(err.strip().splitlines()) == 1, err
        assert says in err and "wrong-password" not in err
        assert not root.exists()

    assert run(capsys, "init", tmp_path / "first", "--db", pg_server.url(team_db))[0] == 0
    code, out, err = run(capsys, "init", root, "--db", pg_server.url(team_db))
    assert code == 1 and "already holds tables" in err and not root.exists()
    code, out, err = run(capsys, "init", tmp_path / "first", "--db", pg_server.url(team_db))
    assert code == 1 and "already a project (database.url exists)" in err
