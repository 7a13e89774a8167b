"""Errors the application layer raises for the user (as opposed to bugs)."""
from __future__ import annotations

from ..engine.errors import MersemiError, Refusal


class ProjectError(MersemiError):
    """A user-facing failure: bad input or a request the project's state refuses."""


class NoRound(ProjectError):
    """What needs a finished round asked for before round 0 finished."""
    code = Refusal.NO_ROUND


class Claimed(ProjectError):
    """A decision on a card another reviewer holds (it is on their screen)."""
    code = Refusal.CLAIMED


class Voted(ProjectError):
    """A vote or an adjudication from a reviewer who voted on the card already."""
    code = Refusal.VOTED
