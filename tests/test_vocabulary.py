"""The vocabulary (engine/vocab.py) is used once: no module of engine/, db/, service/ or ui/
writes one of its values as a string literal where it means the value; it names the member.

A literal counts where it is used as a value: compared, passed, assigned, returned, an element
of a tuple, list or set, a default. A dict key, a subscript and the first argument of `.get()`
name a field of a record (a JSON field, a CSV column) as often as a member, and are left out;
so are docstrings. Where a value-position literal is genuinely not the vocabulary, ALLOWED says
why for its file, or the line says `# not vocab: <why>`."""
from __future__ import annotations

import ast
from enum import StrEnum
from pathlib import Path

from mersemi.engine import vocab

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("engine", "db", "service", "ui")
VOCAB_FILE = REPO / "engine" / "vocab.py"
MARK = "# not vocab:"

# (file or folder, value) -> why a literal equal to the value is not the vocabulary there.
ALLOWED = {
    ("db/migrations/versions", "*"): "a migration freezes the values of its time, whatever vocab.py says now",
    ("engine/config_schema.py", "auto"): "a config choice (finetune.select, propagation.knn, device)",
    ("engine/loops.py", "auto"): "finetune.select's choice",
    ("engine/propagation.py", "auto"): "propagation.knn's choice",
    ("engine/importers.py", "label"): "the label column of samples.csv",
    ("engine/synthetic.py", "label"): "the label column of samples.csv",
    ("db/models.py", "label"): "the label column, in an index",
    ("service/exports.py", "label"): "the label column of an export",
    ("ui/tab_decisions.py", "label"): "the label column of the log's table",
    ("ui/app.py", "suggest"): "an endpoint's name",
    ("ui/app.py", "undo"): "an endpoint's name",
    ("ui/cli.py", "init"): "the command's name",
    ("ui/cli.py", "overlap"): "the command's name",
}


def vocabulary() -> dict[str, str]:
    """Every value of the vocabulary -> the member(s) that hold it."""
    out: dict[str, str] = {}
    for name, obj in vars(vocab).items():
        if isinstance(obj, type) and issubclass(obj, StrEnum) and obj is not StrEnum:
            for member in obj:
                out[member.value] = " or ".join(filter(None, (out.get(member.value), f"{name}.{member.name}")))
    out[vocab.UNDO] = "UNDO"
    return out


def names_not_values(tree: ast.AST) -> set[int]:
    """ids of the constants that are docstrings, dict keys, subscripts or `.get()` keys."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
        elif isinstance(node, ast.Dict):
            out |= {id(k) for k in node.keys if k is not None}
        elif isinstance(node, ast.DictComp):
            out.add(id(node.key))
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            out.add(id(node.slice))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and node.args):
            out.add(id(node.args[0]))
    return out


def allowed(path: str, value: str) -> bool:
    return any(v in (value, "*") and (path == where or path.startswith(where + "/")) for where, v in ALLOWED)


def vocabulary_literals(source: str, path: str, values: dict[str, str]) -> list[str]:
    tree = ast.parse(source)
    lines = source.splitlines()
    skip = names_not_values(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in values):
            continue
        line = lines[node.lineno - 1]
        marked = MARK in line and line.split(MARK, 1)[1].strip()
        if id(node) in skip or marked or allowed(path, node.value):
            continue
        found.append((node.lineno, node.col_offset, f"{path}:{node.lineno}: {node.value!r} (use {values[node.value]})"))
    return [text for *_, text in sorted(found)]


def test_no_vocabulary_literal_outside_vocab_py():
    values = vocabulary()
    found = []
    for layer in LAYERS:
        for file in sorted((REPO / layer).rglob("*.py")):
            if file != VOCAB_FILE:
                path = str(file.relative_to(REPO))
                found += vocabulary_literals(file.read_text(), path, values)
    assert found == []


def test_the_check_sees_a_literal_in_every_value_position_and_only_there():
    """What the walk counts (a literal where the vocabulary is meant) and what it leaves alone."""
    values = vocabulary()
    source = '''
"""done"""
def f(r, x="verify"):
    """accept"""
    a = r.status == "done"
    b = r.status in ("queued", "running")
    store.decide(DecisionIn(1, "accept", 2))
    c = {"label": 1, "policy": "pseudo"}
    d = r["gold"] + r.get("pseudo", 0)
    e = "label"  # not vocab: a column
    g = "label"  # not vocab:
    return "undo"
'''
    found = vocabulary_literals(source, "service/x.py", values)
    assert [f.split(": ", 1)[1].split(" (")[0] for f in found] == \
        ["'verify'", "'done'", "'queued'", "'running'", "'accept'", "'pseudo'", "'label'", "'undo'"]
    assert vocabulary_literals(source, "db/migrations/versions/0009_x.py", values) == []
    assert "RoundStatus.DONE" in vocabulary_literals('x = "done"', "db/y.py", values)[0]
