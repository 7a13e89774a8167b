"""What a name may be: a sample, a class, a person, a note. One check for every name a person or
a file gives, so that SQLite and PostgreSQL store the same (PostgreSQL refuses NUL and the
reviewer column's width; SQLite stored 120,000 characters), and a name never steers a path.
Each function returns the problem in a few words, or None; callers add where the name came from."""
from __future__ import annotations

import unicodedata

from .vocab import RESERVED_NAMES

MAX_NAME_CHARS = 255   # a sample or class name: the width of the samples table's name column
MAX_PERSON_CHARS = 128  # a reviewer, a login, who set a threshold: the reviewer columns' width
MAX_NOTE_CHARS = 2000  # a decision's note


def _control(value: str, allowed: str = "") -> str | None:
    bad = next((ch for ch in value if ch not in allowed and unicodedata.category(ch) in ("Cc", "Cf")), None)
    return None if bad is None else f"has a control character (U+{ord(bad):04X})"


def name_problem(name: str, max_chars: int = MAX_NAME_CHARS) -> str | None:
    """A sample's, a class's or an export's name: non-empty, at most `max_chars`, printable."""
    if not name:
        return "is empty"
    if len(name) > max_chars:
        return f"is longer than {max_chars} characters ({len(name)})"
    if name != name.strip():
        return "has leading or trailing spaces"
    return _control(name)


def sample_name_problem(name: str) -> str | None:
    """name_problem, and never a path: a sample's name may name its feature or media file."""
    problem = name_problem(name)
    if problem is None and (name in (".", "..") or "/" in name or "\\" in name):
        problem = "is a path; a sample name has no '/' or '\\' and is not '.' or '..'"
    return problem


def person_problem(name: str) -> str | None:
    """A person's name: name_problem within MAX_PERSON_CHARS, and never a name the tool
    records as itself (auto, policy, ...) nor one dressed as it ("suggest (ann)")."""
    problem = name_problem(name, MAX_PERSON_CHARS)
    lowered = name.lower()
    if problem is None and any(lowered == r or lowered.startswith(f"{r} (") for r in RESERVED_NAMES):
        problem = "is reserved (the tool records it itself)"
    return problem


def note_problem(note: str) -> str | None:
    """A free-text note: at most MAX_NOTE_CHARS; line breaks and tabs, no other control character."""
    if len(note) > MAX_NOTE_CHARS:
        return f"is longer than {MAX_NOTE_CHARS} characters ({len(note)})"
    return _control(note, "\n\t")
