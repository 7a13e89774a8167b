"""The errors a user sees, as opposed to bugs. A leaf module (no imports of ours, nothing
heavy) so that engine/, db/ and ui/ can all derive from `MersemiError`, and the command line
and the app's API translate that one base class into a one-line message and its `Refusal`
code."""

import reprlib
from enum import StrEnum

ECHO_CHARS = 200  # at most this much of a value from outside is repeated in a message


class Refusal(StrEnum):
    """Why the app's API refused a request: the code a client (the page) branches on, beside
    the one-line message a person reads."""
    INVALID = "invalid"        # a bad argument or input
    NO_ROUND = "no_round"      # no finished round yet: train round 0 first
    BUSY = "busy"              # a lock held too long, a round running, the server unreachable: try again
    CLAIMED = "claimed"        # a card on another reviewer's screen
    VOTED = "voted"            # the reviewer voted on the card: no second vote, no adjudication of its tie
    CONFIRM = "confirm"        # accept all: confirm the count first (a question, not an error)
    REFUSED = "refused"        # anything else the project's state refuses
    INTERNAL = "internal"      # a bug: the server's log has the traceback


class MersemiError(Exception):
    """Base of every user-facing error: the message is one line saying what is wrong; `code`
    says what kind of refusal it is."""
    code = Refusal.REFUSED


class InputError(MersemiError, ValueError):
    """Bad input data. The message is one line naming the file, the sample and the problem,
    e.g. ``features/text/clip_007.npy: sample clip_007: expected dimension 768, got 512``."""
    code = Refusal.INVALID


class UsageError(MersemiError, ValueError):
    """A bad argument to a command or an API call, e.g. ``--port: must be ... got '99999'``."""
    code = Refusal.INVALID


def shown(value: object) -> str:
    """The value as a message repeats it: its repr, cut to ECHO_CHARS characters. Computed
    within bounds (reprlib for containers), so a huge or deeply nested input costs nothing."""
    try:
        if isinstance(value, str):
            text = repr(value[:ECHO_CHARS + 1])
        else:
            text = _REPR.repr(value)
    except Exception:  # a value whose repr fails still gets a message
        text = f"<{type(value).__name__}>"
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS - 1] + "…"


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = 10
_REPR.maxstring = _REPR.maxlong = _REPR.maxother = ECHO_CHARS


ERROR_LINE = "mersemi: error: "   # how the command line starts the one line of a refusal


def one_line(message: object) -> str:
    """A message as one line (newlines and runs of spaces become single spaces)."""
    return " ".join(str(message).split())
