import os

# Before anything imports torch: see engine/__init__.py.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


from datetime import UTC, datetime, timedelta  # noqa: E402

import pytest  # noqa: E402

# The one Chromium of the browser tests (tests/browser_fixtures.py).
from browser_fixtures import browser  # noqa: E402,F401
from postgres_server import PostgresServer  # noqa: E402


class ManualClock:
    """A clock that moves only when told: pass it as a store's `clock` and a claim expires, a
    heartbeat ages, without waiting for the wall clock."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


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


def pytest_collection_modifyitems(config, items):
    """The files with slow tests first (a stable sort, the order within a file kept): with a worker
    per core (`make test`), a long file started last would leave the other workers idle at the end."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
