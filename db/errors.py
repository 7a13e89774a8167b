"""Errors the store raises for conditions a user can act on (as opposed to bugs).

Each message is one line; the command line prints it as `mersemi: error: <message>`.
"""
from __future__ import annotations

from ..engine.errors import MersemiError, Refusal


class StoreError(MersemiError):
    """A store condition the user can act on: busy, unreachable, wrong schema version."""


class StoreBusy(StoreError):
    """A write waited on another writer's lock for longer than the busy timeout."""
    code = Refusal.BUSY

    def __init__(self) -> None:
        super().__init__("database busy, try again")


class StoreUnavailable(StoreError):
    """The database server cannot be reached or refuses the login."""
    code = Refusal.BUSY   # the server may be back in a moment: try again


class StoreNotEmpty(StoreError):
    """A new store was asked for in a database that already holds tables."""


class StoreFull(StoreError):
    """The disk holding the store (or the server's) is full: the write was rolled back."""


class StoreDamaged(StoreError):
    """The store's file or tables are damaged: `mersemi check DIR` says what and the way out.
    `reason`: what the database said, for check's own report."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class SchemaError(StoreError):
    """The database is not a mersemi store, or one with an unreadable schema version."""


class SchemaOutOfDate(SchemaError):
    """Written by an older version: `mersemi migrate DIR` upgrades it."""

    def __init__(self, found: int, expected: int) -> None:
        super().__init__(f"schema version {found} is older than this tool's version {expected}")
        self.found, self.expected = found, expected


class SchemaTooNew(SchemaError):
    """Written by a newer version of the tool: this one must not touch it."""

    def __init__(self, found: int, expected: int) -> None:
        super().__init__(f"schema version {found} is newer than this tool's version {expected}; "
                         "upgrade mersemi to open it")
        self.found, self.expected = found, expected


class CardClaimed(StoreError):
    """A decision on a card that another reviewer holds (it is on their screen)."""
    code = Refusal.CLAIMED

    def __init__(self, sample_ids: list[int]) -> None:
        super().__init__(f"{len(sample_ids)} sample(s) held by another reviewer")
        self.sample_ids = sample_ids


class VoteRefused(StoreError):
    """Votes the rules of voted cards refuse (service/votes.py words them): per sample id, why;
    `voted`: the samples refused because the reviewer voted on them (a second vote, or the
    adjudication of a tie they voted in)."""

    def __init__(self, problems: dict[int, str], voted: frozenset[int] = frozenset()) -> None:
        super().__init__(f"{len(problems)} vote(s) refused")
        self.problems = problems
        self.voted = voted


class RoundBusy(StoreError, RuntimeError):
    code = Refusal.BUSY

    def __init__(self, round_id: int) -> None:
        super().__init__(f"round {round_id} is still running")
        self.round_id = round_id
