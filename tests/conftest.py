import os

# Before anything imports torch: see engine/__init__.py.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


import pytest  # noqa: E402

from postgres_server import PostgresServer  # noqa: E402


@pytest.fixture(scope="session")
def pg_server():
    """One real PostgreSQL server for the whole session (tests marked `postgres`)."""
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server):
    """The URL of a fresh, empty database on the session's server, dropped afterwards."""
    name = pg_server.new_database()
    yield pg_server.url(name)
    pg_server.drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """An empty store URL on each backend: a SQLite file, a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'project.db'}"
    return request.getfixturevalue("pg_url")
