"""How an action fails: a user-facing error becomes its one-line refusal, anything else is
logged as the bug it is and refused too (`refusals`, the decorator of every app action).
Type hints are real (no `from __future__ import annotations`): `gr.api` reads them."""
import functools
import logging
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError

from ..db.connect import is_busy
from ..db.errors import StoreBusy
from ..engine.errors import MersemiError, Refusal, one_line

_log = logging.getLogger("mersemi.app")


def refusals(fn: Callable) -> Callable:
    """Turn a user-facing error (MersemiError) raised by an action into its {"ok": False,
    "error": ..., "code": ...} result: the message for people, the `Refusal` code for the page
    to branch on. Any other exception is a bug: logged with its traceback, and still answered
    with a refusal, so that a client never gets Gradio's bare {"error": null}."""
    @functools.wraps(fn)  # keeps the signature and type hints that gr.api reads
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MersemiError as e:
            return refused(one_line(e), e.code)
        except DBAPIError as e:
            if is_busy(e):  # a read that met a lock (SQLite WAL recovery, say): a busy database
                return refused(str(StoreBusy()), Refusal.BUSY)
            _log.exception("%s failed", fn.__name__)
            return internal(fn.__name__, e)
        except Exception as e:
            _log.exception("%s failed", fn.__name__)
            return internal(fn.__name__, e)
    return wrapped


def refused(message: str, code: Refusal) -> dict:
    return {"ok": False, "error": message, "code": str(code)}


def internal(name: str, e: Exception) -> dict:
    return refused(f"internal error in {name} ({e.__class__.__name__}); the server's log has the details",
                   Refusal.INTERNAL)
