"""What a name may be: a sample, a class, a person, a note. One check for every name a person or
a file gives, so that SQLite and PostgreSQL store the same (PostgreSQL refuses NUL and the
reviewer column's width; SQLite stored 120,000 characters), and a name never steers a path.
Each function returns the problem in a few words, or None; callers add where the name came from.

Two names are the same name when they look the same: `name_key` folds a name (Unicode NFKC,
case, accents, spaces, and TR39 confusable skeletons from engine/confusables.tsv), so that
`ａｕｔｏ`, `аuto` (Cyrillic а) and `autó` are all `auto`, and a second reviewer `аnn` is `ann`."""
from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable
from pathlib import Path

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
    records as itself (auto, policy, ...) nor one dressed as it ("suggest (ann)"), nor one
    that only looks like those (see name_key)."""
    problem = name_problem(name, MAX_PERSON_CHARS)
    key = name_key(name)
    if problem is None and any(key == r or key.startswith(f"{r}(") for r in map(name_key, RESERVED_NAMES)):
        problem = "is reserved (the tool records it itself)"
    return problem


def lookalike(name: str, others: Iterable[str]) -> str | None:
    """Another name among `others` that is not `name` but looks like it (same name_key), or None."""
    key = name_key(name)
    return next((o for o in others if o != name and name_key(o) == key), None)


def name_key(name: str) -> str:
    """What a name looks like: NFKC (full-width, mathematical and other compatibility forms to
    plain ones), no accents or other combining marks, no spaces, case folded, and every
    character replaced by its TR39 confusable prototype (Cyrillic а by Latin a, 0 by O, ...).
    Two names with the same key read the same to a person."""
    text = unicodedata.normalize("NFKC", name)
    for _ in range(2):  # the prototypes of the case-folded letters too (I, l and 1 meet at l)
        text = _skeleton(text).casefold()
    return "".join(text.split())


def _skeleton(text: str) -> str:
    table = _prototypes()
    mapped = "".join(table.get(ch, ch) for ch in _bare(text))
    return _bare(mapped)


def _bare(text: str) -> str:
    """NFD without combining marks (Mn): 'autó' is 'auto'."""
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")


@functools.cache
def _prototypes() -> dict[str, str]:
    """engine/confusables.tsv (written by bench/make_confusables.py from ICU's data)."""
    table = {}
    for line in (Path(__file__).with_name("confusables.tsv")).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            source, _, target = line.partition("\t")
            table[chr(int(source, 16))] = "".join(chr(int(cp, 16)) for cp in target.split())
    return table


def note_problem(note: str) -> str | None:
    """A free-text note: at most MAX_NOTE_CHARS; line breaks and tabs, no other control character."""
    if len(note) > MAX_NOTE_CHARS:
        return f"is longer than {MAX_NOTE_CHARS} characters ({len(note)})"
    return _control(note, "\n\t")
