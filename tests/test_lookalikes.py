"""One notion of a name (issue 31, point 4): names are compared as they look (engine/names.py:
NFKC, case, accents, spaces, TR39 confusable skeletons), so no lookalike of a name the tool
records as itself is a person's, and no second reviewer whose name only looks like another's
is accepted, from the command line, the API or the logins."""
from __future__ import annotations

from pathlib import Path

import pytest

from app_fixtures import make_review_project
from mersemi.engine.names import lookalike, name_key, person_problem
from mersemi.service.actions import AppActions
from mersemi.service.project import Project
from mersemi.ui.cli_serve import _parse_logins
from mersemi.service.errors import ProjectError
from test_cli import run
from test_cli_errors import one_line_error
from test_hostile_values import decide_file, store_state

# The 13 lookalikes of the probe: full-width, Cyrillic, mathematical, accented, a
# no-break space, full-width brackets, and others the earlier check let through.
LOOKALIKES = ["ａｕｔｏ", "аuto", "𝚊𝚞𝚝𝚘", "autó", "pоlicy", "ｉｎｉｔ", "paper\u00a0preset", "suggest（ann）",
              "AUTO", "Pоlicy", "ɑuto", "aut0", "paper  preset"]


@pytest.mark.parametrize("name", LOOKALIKES)
def test_every_lookalike_of_a_reserved_name_is_reserved(name):
    assert person_problem(name) == "is reserved (the tool records it itself)", name


@pytest.mark.parametrize("name", ["ann", "José", "automaton", "policy maker", "initial", "Bob Smith"])
def test_ordinary_names_stay_names(name):
    assert person_problem(name) is None


def test_names_that_look_alike_share_a_key_and_others_do_not():
    assert name_key("аnn") == name_key("ann") == name_key("ANN") == name_key("ánn")
    assert name_key("ann") != name_key("anna")
    assert lookalike("аnn", ["bob", "ann"]) == "ann"
    assert lookalike("ann", ["ann", "bob"]) is None   # the same name is no lookalike


@pytest.fixture
def review(tmp_path) -> Path:
    make_review_project(tmp_path / "p").close()
    return tmp_path / "p"


@pytest.mark.parametrize("name", LOOKALIKES[:8])
def test_decide_refuses_a_lookalike_reviewer_and_writes_nothing(name, review, tmp_path, capsys):
    before = store_state(review)
    f = decide_file(tmp_path / "d.csv", [["u00", "accept", "", ""]])
    one_line_error(*run(capsys, "decide", review, "--file", f, "--reviewer", name)[::2], "reserved")
    assert store_state(review) == before


def test_a_second_reviewer_who_only_looks_like_the_first_is_refused(review, tmp_path, capsys):
    f = decide_file(tmp_path / "d.csv", [["u00", "accept", "", ""]])
    assert run(capsys, "decide", review, "--file", f, "--reviewer", "ann")[0] == 0
    before = store_state(review)
    g = decide_file(tmp_path / "e.csv", [["u01", "accept", "", ""]])
    one_line_error(*run(capsys, "decide", review, "--file", g, "--reviewer", "аnn")[::2],  # Cyrillic а
                   "looks like 'ann'")
    one_line_error(*run(capsys, "thresholds", review, "--set", "joy=0.7", "--by", "ANN")[::2], "looks like 'ann'")
    actions = AppActions(Project.open(review))
    try:
        out = actions.decide("u01", "accept", "", "ánn")
        assert out["ok"] is False and "looks like 'ann'" in out["error"], out
    finally:
        actions.shutdown()
    assert store_state(review) == before
    assert run(capsys, "decide", review, "--file", g, "--reviewer", "ann")[0] == 0   # the name itself is fine


def test_logins_that_look_alike_are_refused():
    with pytest.raises(ProjectError, match="looks like the user 'ann'"):
        _parse_logins(["ann:pw1", "аnn:pw2"], None)
    assert _parse_logins(["ann:pw1", "bob:pw2"], None) == [("ann", "pw1"), ("bob", "pw2")]


def test_classes_that_look_alike_are_refused_at_init(tmp_path, capsys):
    one_line_error(*run(capsys, "init", tmp_path / "p", "--classes", "calm,joy,jоy")[::2], "read differently")
    assert not (tmp_path / "p" / "project.db").exists()
