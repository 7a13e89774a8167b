"""Errors the application layer raises for the user (as opposed to bugs)."""
from __future__ import annotations

from ..engine.errors import MersemiError


class ProjectError(MersemiError):
    """A user-facing failure: bad input or a request the project's state refuses."""
