"""Names and values from people and files, aimed where they should not be (issue 21): one check
for every name (engine/names.py), the same on SQLite and PostgreSQL, so that a refusal is one
line and the store is unchanged, and nothing reaches PostgreSQL that it would refuse with a
traceback (NUL, a reviewer wider than its column). A Hypothesis fuzz test drives the command
line and the API with generated names on both databases."""
from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app_fixtures import CLASSES, make_review_project
from mersemi.engine.synthetic import make_synthetic
from mersemi.service.actions import AppActions
from mersemi.service.project import Project
from test_cli import run, snapshot
from test_cli_errors import one_line_error

NASTY = ["", " ", "auto", "AUTO", "policy", "suggest (ann)", "paper preset (alice)", "ann\nbob", "a\x00b",
         "\x1b[31mred", "tab\there", "x" * 129, "zero\u200bwidth", "rtl\u202eevil"]


@contextmanager
def served(root: Path) -> Iterator[AppActions]:
    """The app's actions on `root`, as a server holds them (without the HTTP layer)."""
    actions = AppActions(Project.open(root))
    try:
        yield actions
    finally:
        actions.shutdown()


@pytest.fixture
def review(tmp_path, db_url) -> Path:
    make_review_project(tmp_path / "p", db_url=db_url).close()
    return tmp_path / "p"


def store_state(root: Path) -> dict:
    """What a refusal must leave as it was: the decisions, thresholds and their history."""
    with Project.open(root) as p:
        return {"decisions": [(d.action, d.reviewer, d.note) for d in p.store.decisions.log()],
                "thresholds": p.store.thresholds.values(), "history": p.threshold_history(100)}


def decide_file(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "decision", "label", "note"])
        w.writerows(rows)
    return path


@pytest.mark.parametrize("name", NASTY)
def test_a_bad_person_name_is_refused_everywhere(name, review, tmp_path, capsys):
    before = store_state(review)
    if name.strip():  # the empty name is "missing"
        one_line_error(*run(capsys, "thresholds", review, "--set", "joy=0.7", "--by", name)[::2], "--by")
        f = decide_file(tmp_path / "d.csv", [["u00", "accept", "", ""]])
        one_line_error(*run(capsys, "decide", review, "--file", f, "--reviewer", name)[::2], "reviewer")
    with served(review) as actions:
        for out in (actions.decide("u00", "accept", "", name), actions.set_thresholds({"joy": 0.7}, name)):
            assert out["ok"] is False and "\n" not in out["error"], out
    assert store_state(review) == before


@pytest.mark.parametrize("rows, needle", [
    ([["u00", "accept", "", ""], ["u00", "reject", "", ""]], "decided twice (requests 1 and 2)"),
    ([["u00", "accept", "", "bell\x07"]], "the note has a control character (U+0007)"),
    ([["u00", "accept", "", "n" * 2001]], "the note is longer than 2000 characters"),
    ([["u0\x1b0", "accept", "", ""]], "has a control character (U+001B)"),
])
def test_bad_decision_rows_change_nothing(rows, needle, review, tmp_path, capsys):
    before = store_state(review)
    f = decide_file(tmp_path / "d.csv", rows)
    one_line_error(*run(capsys, "decide", review, "--file", f, "--reviewer", "ann")[::2], needle)
    assert store_state(review) == before


def test_a_nul_byte_in_a_decisions_file_is_refused(review, tmp_path, capsys):
    f = tmp_path / "d.csv"
    f.write_bytes(b"name,decision,label,note\nu00,accept,,a\x00b\n")
    before = store_state(review)
    one_line_error(*run(capsys, "decide", review, "--file", f, "--reviewer", "ann")[::2], "a NUL byte at offset")
    assert store_state(review) == before


def test_numbers_sent_as_strings_are_refused_by_the_api(review):
    before = store_state(review)
    with served(review) as actions:
        for out in (actions.set_thresholds({"joy": "0.5"}, "ann"), actions.next_candidate("all", "0.5", 0),
                    actions.next_candidate("all", 0.5, "0")):
            assert out["ok"] is False and ("string" in out["error"] or "not a number" in out["error"]), out
        assert store_state(review) == before


@pytest.mark.parametrize("classes, needle", [
    ("calm,jo\ny,anger", "has a control character (U+000A)"),
    ("calm,auto\x00,anger", "has a control character (U+0000)"),
    ("calm," + "j" * 256 + ",anger", "is longer than 255 characters"),
])
def test_bad_class_names_are_refused_at_init(classes, needle, tmp_path, capsys):
    one_line_error(*run(capsys, "init", tmp_path / "p", "--classes", classes)[::2], needle)
    assert not (tmp_path / "p").exists()


# ---------------------------------------------------------------------- imports

@pytest.fixture(scope="module")
def native(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("native") / "data"
    make_synthetic(out, scale=0.02, seed=1)
    return out


def edited_copy(native: Path, dst: Path, edit=None) -> Path:
    shutil.copytree(native, dst)
    if edit is not None:
        df = pd.read_csv(dst / "samples.csv", dtype=str, keep_default_na=False)
        edit(df)
        df.to_csv(dst / "samples.csv", index=False)
    return dst


def _first_name(df):
    df.loc[0, "name"] = "../../etc/passwd"


def _all_test(df):
    df["split"], df["label"] = "test", df["label"].where(df["label"] != "", "happy")


def _one_sad(df):
    sad = df.index[(df["split"] == "labeled") & (df["label"] == "sad")]
    df.loc[sad[1:], "split"], df.loc[sad[1:], "label"] = "unlabeled", ""


@pytest.mark.parametrize("edit, needle", [
    (_first_name, "is a path"),
    (_all_test, "has no labeled sample"),
    (_one_sad, "class 'sad' has 1 labeled sample; every class needs at least 2"),
])
def test_imports_no_round_could_use_are_refused(edit, needle, native, tmp_path, capsys):
    data = edited_copy(native, tmp_path / "d", edit)
    assert run(capsys, "init", tmp_path / "p")[0] == 0
    before = snapshot(tmp_path / "p")
    one_line_error(*run(capsys, "import", tmp_path / "p", "--native", data)[::2], needle)
    assert snapshot(tmp_path / "p") == before
    data2 = edited_copy(native, tmp_path / "d2")
    assert run(capsys, "import", tmp_path / "p", "--native", data2)[0] == 0  # the project is still new


def test_a_nul_in_samples_csv_and_odd_matrices_are_refused(native, tmp_path, capsys):
    assert run(capsys, "init", tmp_path / "p")[0] == 0
    before = snapshot(tmp_path / "p")
    nul = edited_copy(native, tmp_path / "nul")
    raw = (nul / "samples.csv").read_bytes()
    (nul / "samples.csv").write_bytes(raw.replace(b"\n", b"\x00\n", 3))
    one_line_error(*run(capsys, "import", tmp_path / "p", "--native", nul)[::2], "a NUL byte")
    folder = edited_copy(native, tmp_path / "folder")
    (folder / "extra.npy").mkdir()
    one_line_error(*run(capsys, "import", tmp_path / "p", "--native", folder)[::2], "extra.npy: not a regular file")
    link = edited_copy(native, tmp_path / "link")
    (link / "extra.npy").symlink_to("/dev/zero")  # a link we made; it is never opened
    one_line_error(*run(capsys, "import", tmp_path / "p", "--native", link)[::2], "extra.npy: not a regular file")
    assert snapshot(tmp_path / "p") == before


def test_a_modality_folder_outside_the_features_root_is_refused(tmp_path, capsys):
    from fixtures import build_mertools

    layout = build_mertools(tmp_path / "m")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    assert run(capsys, "init", tmp_path / "p")[0] == 0
    for mapping in (f"audio={outside}", "audio=../elsewhere"):
        one_line_error(*run(capsys, "import", tmp_path / "p", "--mertools", "--labels", layout.labels,
                            "--features", layout.features, "--modality", mapping)[::2], "must lie under --features")


def test_a_config_threshold_for_a_class_the_project_lacks_is_refused(review, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"extends: {Path(__file__).parent / 'fast.yaml'}\nself_training:\n"
                   "  thresholds: {joy: 0.9, ecstatic: 0.5}\n")
    before = store_state(review)
    one_line_error(*run(capsys, "train", review, "--config", cfg)[::2], "'ecstatic' is not a class of this project")
    assert store_state(review) == before


# ---------------------------------------------------------------------- fuzz

names = st.text(st.characters(codec="utf-8"), max_size=300) | st.sampled_from(NASTY)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reviewer=names, sample=names, note=names, cls=names)
def test_fuzzed_names_get_a_line_or_a_decision_never_a_traceback(reviewer, sample, note, cls, review, tmp_path,
                                                                 capsys):
    before = store_state(review)
    f = tmp_path / "fuzz.csv"
    decide_file(f, [[sample, "relabel", cls, note]])
    code, _, err = run(capsys, "decide", review, "--file", f, "--reviewer", reviewer)
    assert "Traceback" not in err
    if code == 0:
        return  # a valid decision (a real pool sample and class): nothing more to check
    one_line_error(code, err)
    with served(review) as actions:
        out = actions.decide(sample, "relabel", cls, reviewer)
        assert out["ok"] is False and "\n" not in out["error"], out
        out = actions.set_thresholds({cls: 0.7}, reviewer)
        if not out["ok"]:
            assert "\n" not in out["error"]
    after = store_state(review)
    if after != before:  # only a valid threshold change may have landed
        assert after["decisions"] == before["decisions"] and cls in CLASSES and reviewer.strip()
    assert np.isfinite(np.asarray(after["thresholds"], float)).all()
    os.sync()
