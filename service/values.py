"""Values from outside: the arguments of API calls (JSON) and of the command line (strings).

One function per kind of value checks it and refuses it with a one-line `UsageError` that
names the argument and echoes at most 200 characters of what was sent. JSON types are taken
strictly: a flag must be a JSON boolean (the string "false" is true in Python: it once
started an auto-accept round); a number a JSON number (the command line's text with
text=True), never NaN or infinite (Python's JSON parser reads Infinity and NaN).
"""
from __future__ import annotations

import math

from ..engine.errors import UsageError, shown
from ..engine.names import MAX_NAME_CHARS, MAX_PERSON_CHARS, person_problem
from ..engine.vocab import RESERVED_NAMES

MAX_TEXT = MAX_NAME_CHARS  # a sample, class, preset, action or export name
MAX_REVIEWER = MAX_PERSON_CHARS
MAX_WHOLE = 2**31 - 1   # counts, offsets, limits: what both databases take as an integer
__all__ = ["MAX_REVIEWER", "MAX_TEXT", "RESERVED_NAMES", "flag", "mapping", "number", "person", "text"]


def number(value: object, what: str, low: float = -math.inf, high: float = math.inf,
           integer: bool = False, text: bool = False) -> float:
    """A finite number in [low, high], from a JSON number, or with text=True from the command
    line's text; with integer=True a whole one, returned as int. An API call sending "0.5"
    is refused: a client that sends strings sends other things unchecked too. A whole number is
    at most MAX_WHOLE unless `high` says otherwise (an offset of 1e30 is no row a database has)."""
    implied = integer and high == math.inf   # the database's bound: said only when it is the one passed
    if implied:
        high = MAX_WHOLE
    echo = shown(value)
    if isinstance(value, str) and not text:
        raise UsageError(f"{what}: expected a number, got the string {echo}")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise UsageError(f"{what}: not a number: {echo}") from None
    if value is None:
        raise UsageError(f"{what}: missing (give a number)")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{what}: not a number: {echo}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{what}: must be a finite number, got {echo}")
    if integer and value != int(value):
        raise UsageError(f"{what}: must be a whole number, got {echo}")
    if not low <= value <= high:
        shown_high = math.inf if implied and value < low else high
        raise UsageError(f"{what}: must {_bounds(low, shown_high)}, got {echo}")
    if integer:
        return int(value)
    try:
        return float(value)
    except OverflowError:  # an int past float's range
        raise UsageError(f"{what}: must be a finite number, got {echo}") from None


def flag(value: object, what: str) -> bool:
    """A JSON boolean, nothing else: "false", 0 and null are refused."""
    if not isinstance(value, bool):
        raise UsageError(f"{what}: must be true or false (a JSON boolean), got {shown(value)}")
    return value


def text(value: object, what: str, required: bool = True, max_chars: int = MAX_TEXT) -> str:
    """A string, stripped, of at most `max_chars` characters; "" when optional and absent."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise UsageError(f"{what}: expected a string, got {shown(value)}")
    value = value.strip()
    if required and not value:
        raise UsageError(f"{what}: missing")
    if len(value) > max_chars:
        raise UsageError(f"{what}: longer than {max_chars} characters ({len(value)}): {shown(value)}")
    return value


def person(value: object, what: str = "reviewer", required: bool = True) -> str:
    """A person's name as the store records it (a reviewer, a login, who set a threshold); see
    engine.names.person_problem. "" when optional and absent."""
    name_ = text(value, what, required=required, max_chars=MAX_REVIEWER)
    problem = person_problem(name_) if name_ else None
    if problem:
        raise UsageError(f"{what} {shown(name_)} {problem}")
    return name_


def mapping(value: object, what: str) -> dict[str, object]:
    """A non-empty JSON object with string keys."""
    if not isinstance(value, dict) or not value:
        raise UsageError(f"{what}: give an object mapping names to values, got {shown(value)}")
    for key in value:
        text(key, f"{what} key")
    return value


def _bounds(low: float, high: float) -> str:
    if math.isinf(high):
        return f"be >= {_plain(low)}"
    if math.isinf(low):
        return f"be <= {_plain(high)}"
    return f"lie in [{_plain(low)}, {_plain(high)}]"


def _plain(x: float) -> str:
    """A bound as people write it: 2147483647, not 2.14748e+09."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"
