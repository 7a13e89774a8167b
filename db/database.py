"""What every query group of the store stands on: `Database` owns the SQLAlchemy engine, opens
the short read sessions and runs the write transaction; `chunks` splits long IN (...) lists.
`Store` (db/store.py) holds one `Database` and the query groups (db/*_queries.py) built on it.

The store's "now" (claims' expiry, heartbeats, every time it writes) is `clock()`: the UTC
wall clock (models.utcnow) unless another is passed in, as tests do to move time on without
waiting for it.

Every write runs in `write`: one transaction that holds the write lock before its first read
(SQLite: BEGIN IMMEDIATE; PostgreSQL: SERIALIZABLE, run again on a serialization failure), so
a read that decides a write sees what the write changes. A write that cannot get the lock
within the busy timeout raises StoreBusy.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from . import connect
from .connect import check_schema, is_busy, is_retryable, make_engine, write_engine
from .errors import StoreBusy
from .migrate import create_schema
from .models import utcnow

T = TypeVar("T")

CHUNK = 900  # stays under SQLite's bound-parameter limit in IN (...) lists


def chunks(seq: Sequence, n: int = CHUNK) -> Iterable[Sequence]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


class Database:
    """The engine, the read sessions and the write transaction (see the module doc)."""

    def __init__(self, url: str | URL, create: bool = False, busy_timeout_s: float | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 populate: Callable[[Session], None] | None = None) -> None:
        """`busy_timeout_s`: how long a write waits for another writer (connect.BUSY_TIMEOUT_S);
        `clock`: the store's now, an aware UTC time (see the module doc); `populate`: with
        `create`, rows written in the schema's own transaction (migrate.create_schema)."""
        self.clock = clock
        self.busy_timeout_s = connect.BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s
        self.engine = make_engine(url, self.busy_timeout_s)
        try:
            if create:
                create_schema(self.engine, populate)
            else:
                check_schema(self.engine)
        except BaseException as e:
            self.engine.dispose()
            if isinstance(e, DBAPIError) and e.statement is None:  # failed to connect at all
                raise connect.unavailable(self.engine, e) from None
            raise
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self._write_session = sessionmaker(write_engine(self.engine), expire_on_commit=False)

    def session(self) -> Session:
        """A session for reads (writes go through `write`)."""
        return self._session()

    def close(self) -> None:
        self.engine.dispose()

    def write(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one write transaction and return its result (see the module doc).
        PostgreSQL may abort a SERIALIZABLE transaction that raced another: it runs again, with
        a short random pause, until the busy timeout has passed."""
        deadline = time.monotonic() + self.busy_timeout_s
        pause = 0.005
        while True:
            try:
                with self._write_session() as s, s.begin():
                    return work(s)
            except DBAPIError as e:
                if is_busy(e):
                    raise StoreBusy() from None
                if not is_retryable(e):
                    raise
                if time.monotonic() > deadline:
                    raise StoreBusy() from None
                time.sleep(pause * random.uniform(0.5, 1.5))
                pause = min(pause * 2, 0.2)
