"""The Decisions tab's endpoints on the fixture project (app_fixtures): the log searched, the
per-reviewer counts, a past decision's card reopened and changed, and the review's check of the
model's confidence (accepted share of verify cards against the claimed precision)."""
from __future__ import annotations

import pytest

from app_fixtures import make_review_project, pool_confidences
from mersemi.service.actions import AppActions
from mersemi.service.review import wilson_interval
from mersemi.ui import tab_decisions


@pytest.fixture
def app(tmp_path):
    project = make_review_project(tmp_path / "proj")
    yield AppActions(project)
    project.close()


def test_the_log_is_searched_newest_first_and_names_sources(app):
    app.decide("u49", "accept", "", "ann")              # a verify card: joy at 0.50
    app.decide("u46", "reject", "", "bob")
    app.decide("u02", "label", "calm", "ann")            # below nothing: threshold 0.5, conf .97 -> verify
    app.decide("u49", "relabel", "calm", "bob")          # bob changes ann's accept
    everything = app.decisions()
    assert everything["total"] == 4
    assert [(r["name"], r["action"], r["source"], r["in_force"]) for r in everything["rows"]] == [
        ("u49", "relabel", "relabeled", True), ("u02", "label", "labeled", True), ("u46", "reject", None, True),
        ("u49", "accept", "verified", False)]
    assert [r["name"] for r in app.decisions(sample="u4")["rows"]] == ["u49", "u46", "u49"]
    assert [r["action"] for r in app.decisions(reviewer="ann")["rows"]] == ["label", "accept"]
    assert [r["action"] for r in app.decisions(cls="calm")["rows"]] == ["relabel", "label"]   # named calm
    assert [r["action"] for r in app.decisions(action="accept")["rows"]] == ["accept"]
    assert app.decisions(in_force=True)["total"] == 3
    assert [r["name"] for r in app.decisions(limit=1, offset=1)["rows"]] == ["u02"]
    # wildcards in a search are plain characters
    assert app.decisions(sample="%")["total"] == 0 and app.decisions(sample="_")["total"] == 0
    who = {r["reviewer"]: r for r in everything["reviewers"]}
    assert who["ann"]["decisions"] == 2 and who["ann"]["in_force"] == {"label": 1}
    assert who["bob"]["in_force"] == {"reject": 1, "relabel": 1}
    for bad in ({"cls": "fear"}, {"action": "approve"}, {"limit": 0}, {"in_force": "yes"}, {"offset": -1}):
        assert app.decisions(**bad)["ok"] is False, bad


def test_a_past_decisions_card_opens_and_a_new_decision_replaces_it(app):
    app.decide("u49", "accept", "", "ann")
    card = app.sample_card("u49")
    assert card["ok"] and card["candidate"]["name"] == "u49" and card["candidate"]["kind"] == "verify"
    assert (card["decision"]["action"], card["decision"]["reviewer"], card["decision"]["source"]) == \
        ("accept", "ann", "verified")
    out = app.decide("u49", "reject", "", "bob")
    assert out["replaced"][0]["reviewer"] == "ann"
    assert app.sample_card("u49")["decision"]["action"] == "reject"
    assert app.sample_card("u10")["decision"] is None
    for bad, why in (("l01", "not in the pool"), ("nobody", "unknown sample"), ("", "name")):
        out = app.sample_card(bad)
        assert out["ok"] is False and why in out["error"]


def test_the_review_checks_the_claimed_precision_per_class(app):
    conf = pool_confidences()
    # joy's verify cards u49, u46, u43, u40 (class i % 3 == 1): ann accepts two, rejects one,
    # relabels one; a label decision and the tool's accept do not count
    app.decide("u49", "accept", "", "ann")
    app.decide("u46", "accept", "", "ann")
    app.decide("u43", "reject", "", "ann")
    app.decide("u40", "relabel", "calm", "ann")
    app.decide("u01", "label", "joy", "ann")             # u01: joy at .98 (a verify card), labeled joy: right
    app.decide("u04", "label", "anger", "ann")           # u04: joy at .96, labeled anger: wrong
    check = {r["class"]: r for r in app.review_check()["classes"]}
    joy = check["joy"]
    cards = [49, 46, 43, 40, 1, 4]
    assert joy["cards"] == 6 and joy["accepted"] == 3
    assert joy["claimed_precision"] == pytest.approx(sum(conf[i] for i in cards) / 6, abs=1e-6)
    lo, hi = wilson_interval(3, 6)
    assert joy["interval"] == [round(lo, 4), round(hi, 4)]
    assert joy["verdict"] == ("overconfident" if joy["claimed_precision"] > hi else "consistent")
    assert check["calm"]["cards"] == 0 and check["calm"]["verdict"] is None
    assert joy["thin"] and not check["calm"]["thin"]      # 6 cards are few (under 30); no card, no share
    table = tab_decisions.check_frame(list(check.values())).set_index("class")
    assert table.loc["joy", "accepted (95% CI)"].startswith("thin: 3/6")
    assert table.loc["joy", "verdict"] == f"thin: {joy['verdict']} so far"
    assert table.loc["calm", "verdict"] == "no verify card decided"
    # a label card is no check of the claim (the model claimed less than the threshold)
    app.decide("u59", "accept", "", "ann")               # u59: anger at .40, below 0.5
    assert {r["class"]: r for r in app.review_check()["classes"]}["anger"]["cards"] == 0


def test_changes_move_with_every_write_the_page_shows(app):
    first = app.changes()
    assert first["ok"] and first["rounds"] == [0, "done", 1.0]
    app.decide("u49", "accept", "", "ann")
    second = app.changes()
    assert second["decisions"] != first["decisions"] and second["thresholds"] == first["thresholds"]
    app.set_thresholds({"joy": 0.7}, "ann")
    assert app.changes()["thresholds"] != second["thresholds"]


def test_histograms_split_each_class_at_its_threshold(app):
    out = app.histograms()
    conf = pool_confidences()
    for c, h in enumerate(out["classes"]):
        mine = [conf[i] for i in range(len(conf)) if i % 3 == c]
        assert sum(h["candidates"]) == sum(x >= h["threshold"] for x in mine)   # nothing decided yet
        assert sum(h["below"]) + sum(h["candidates"]) == len(mine) and sum(h["decided"]) == 0
        assert len(h["edges"]) == len(h["below"]) + 1
