"""The page's handlers (ui/tab_*.py) on a real SQLite project, without a browser: what each
shows and what it stores. Components are stand-ins: handlers return dicts keyed by component,
so any hashable object will do."""
from __future__ import annotations

import dataclasses
import os
import socket
import pytest

from app_fixtures import make_review_project, write_wav
from mersemi.engine.config import load_config
from mersemi.engine.results import RoundMetrics, RoundRecord, SplitMetrics
from mersemi.engine.vocab import MEDIA_SUFFIXES, RoundStatus, media_kind
from mersemi.ui import charts, tab_review, tab_thresholds, tab_train
from mersemi.service.actions import AppActions
from mersemi.service.review import auto_accept_preview, wilson_interval
from mersemi.service.round_summary import RoundSummary


class Part:
    """A component stand-in, named for readable failures."""
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


VERIFY = {"kind": "verify"}   # the page's state on the verify queue (the candidates only)
TABS = ("thresholds", "review", "train", "decisions", "export")


@pytest.fixture
def app(tmp_path):
    project = make_review_project(tmp_path / "proj")
    yield AppActions(project)
    project.close()


def stand_ins(tab, classes: list[str]):
    """A tab's parts (ui/tab_*.py) with a named stand-in for every component: one per class
    where the tab has a list of them."""
    given = {}
    for f in dataclasses.fields(tab):
        if f.init:
            many = str(f.type).startswith("list")
            given[f.name] = [Part(f"{f.name}-{c}") for c in classes] if many else Part(f.name)
    return tab(**given)


@pytest.fixture
def TH(app):
    return stand_ins(tab_thresholds.ThresholdsTab, app.project.classes)


@pytest.fixture
def RV(app):
    return stand_ins(tab_review.ReviewTab, app.project.classes)


@pytest.fixture
def TR(app):
    return stand_ins(tab_train.TrainTab, app.project.classes)


TABS_PART = Part("tabs")


# ---------------------------------------------------------------------- 1. thresholds

SHOWN = {"calm": 0.5, "joy": 0.5, "anger": 0.5}   # what the page's boxes were last given


@pytest.mark.parametrize("typed", [-0.2, 1.5, None, float("nan")])
def test_a_threshold_out_of_range_is_refused_beside_its_box_and_the_box_shows_the_stored_value(app, TH, typed):
    out = tab_thresholds.on_threshold(app, TH, 2, typed, SHOWN, "ann")
    assert out[TH.sliders[2]]["value"] == 0.5                   # the box gets the stored value back
    assert "Not stored" in out[TH.sliders[2]]["info"] and "0.500" in out[TH.sliders[2]]["info"]   # beside it
    got = "no number" if typed is None else f"{typed:g}"
    assert f"got {got}" in out[TH.sliders[2]]["info"]
    assert app.project.thresholds()["anger"] == 0.5 and len(app.project.threshold_history()) == 6   # init, fixture


def test_a_threshold_is_stored_as_the_slider_shows_it_and_is_the_reviewers(app, TH):
    out = tab_thresholds.on_threshold(app, TH, 2, 0.70349, SHOWN, "ann")
    assert out[TH.sliders[2]]["value"] == 0.704 == app.project.thresholds()["anger"]   # rounded up: sent back
    assert "0.704 stored as ann's" in out[TH.sliders[2]]["info"]
    assert out[TH.shown]["anger"] == 0.704                      # what the box now shows
    assert TH.sliders[0] not in out and TH.sliders[1] not in out   # a box being typed in is left alone
    assert "anger" not in out[TH.policy]                        # hers: the policy leaves it alone
    assert out[TH.class_df].set_index("class").loc["anger", "set by"] == "ann (kept)"
    assert out[TH.history_df].iloc[0][["class", "threshold", "set by"]].tolist() == ["anger", "0.704", "ann"]
    refused = tab_thresholds.on_threshold(app, TH, 2, 0.8, out[TH.shown], "")
    assert "reviewer name" in refused[TH.sliders[2]]["info"] and app.project.thresholds()["anger"] == 0.704


def test_a_value_the_box_was_given_stores_nothing(app, TH):
    for value in (0.5, 0.5 + 1e-9):                             # a click into the box and out, Enter on it
        out = tab_thresholds.on_threshold(app, TH, 2, value, SHOWN, "ann")
        assert list(out) == [TH.sliders[2]]                     # nothing redrawn, nothing said
    app.project.set_thresholds({"anger": 0.7}, by="bob")        # another writer, not yet on this page
    tab_thresholds.on_threshold(app, TH, 2, 0.5, SHOWN, "ann")  # the box still shows 0.5: no one's change
    assert app.project.threshold_owners()["anger"]["set_by"] == "bob"
    follow = tab_thresholds.follow(app, TH, SHOWN)              # the page's poll brings bob's value ...
    assert follow[TH.sliders[2]]["value"] == 0.7 and follow[TH.shown]["anger"] == 0.7
    assert TH.sliders[0] not in follow and TH.threshold_note not in follow   # ... and leaves the rest alone


def test_ticking_a_class_lets_the_policy_set_it_and_unticking_keeps_it(app, TH, RV, TR):
    tab_thresholds.on_threshold(app, TH, 0, 0.6, SHOWN, "ann")
    assert sorted(tab_thresholds.on_policy(app, TH, ["calm", "joy", "anger"], "bob")[TH.policy]) == \
        ["anger", "calm", "joy"]                                    # every class released
    out = tab_thresholds.on_policy(app, TH, ["calm"], "bob")        # joy and anger unticked: bob's now
    assert sorted(out[TH.policy]) == ["calm"]
    owners = app.threshold_history()["owners"]
    assert owners["calm"]["policy_may_set"] and owners["joy"]["set_by"] == "bob"
    assert not owners["joy"]["policy_may_set"] and app.project.thresholds()["calm"] == 0.6


def test_a_minimum_confidence_out_of_range_is_refused_visibly(app, TH, RV, TR):
    state = {"offset": 3, "name": "u40", "cls": "all", "min_conf": 0.6}
    out = tab_review.on_move(app, RV, "all", 1.5, state, step=None)
    assert out[RV.filter_conf] == 0.6 and "Not applied" in out[RV.review_msg]
    assert RV.card_md not in out                         # the card stays as it was


# ---------------------------------------------------------------------- 2. relabel to predicted

def test_relabel_to_the_predicted_class_is_said_to_be_an_accept(app, TH, RV, TR):
    state = tab_review.render_card(app, RV, "all", 0.0, 0, VERIFY)[RV.review_state]   # u49, predicted joy
    assert state["name"] == "u49"
    out = tab_review.on_decide(app, RV, "class", "joy", "all", 0.0, state | {"card": "verify"}, "ann")
    assert "accepted" in out[RV.review_msg] and "recorded as an accept" in out[RV.review_msg]
    assert "relabeled" not in out[RV.review_msg]
    api = app.decide("u48", "relabel", "calm", "ann")                  # u48 is predicted calm
    assert api["action"] == "accept" and api["relabel_as_accept"] is True and api["label"] is None
    assert [d.action for d in app.project.store.decisions.log()] == ["accept", "accept"]


# ---------------------------------------------------------------------- 3. probability bars

def test_probability_bars_are_in_class_order_with_keys_and_one_decimal(app, TH, RV, TR):
    out = tab_review.render_card(app, RV, "all", 0.0, 0, VERIFY)  # u49: joy 0.50, calm and anger 0.25
    bars = out[RV.probs]
    at = [bars.index(f'<span class="cls">{c}</span>') for c in app.project.classes]
    assert at == sorted(at)                                  # calm, joy, anger: the keys' order
    assert [bars.count(f"<kbd>{k}</kbd>") for k in "123"] == [1, 1, 1]
    assert "25.0%" in bars and "50.0%" in bars
    assert 'class="val">0.4%<' in charts.probability_bars({"a": 0.996, "b": 0.004}, "a")   # never "0 %"


# ---------------------------------------------------------------------- 4. counts: one meaning

def test_labels_are_counted_by_source_under_the_class_they_give(app, TH, RV, TR):
    app.decide("u47", "relabel", "calm", "ann")    # predicted anger, relabeled calm
    app.decide("u48", "reject", "", "ann")         # predicted calm
    app.decide("u49", "accept", "", "ann")         # predicted joy
    app.decide("u01", "label", "anger", "ann")     # any pool sample, given a class
    frame = tab_review.counts_frame(app).set_index("class")
    assert frame.loc["calm", "relabeled"] == 1 and frame.loc["anger", "relabeled"] == 0
    assert frame.loc["calm", "rejected"] == 1 and frame.loc["joy", "verified"] == 1
    assert frame.loc["anger", "labeled"] == 1 and frame["pseudo"].sum() == 0
    table = tab_thresholds.class_frame(app.candidate_counts(), {}).set_index("class")
    assert (table.loc["calm", "relabeled"], table.loc["joy", "verified"], table.loc["anger", "labeled"]) == (1, 1, 1)


def test_a_class_key_labels_a_label_card_and_relabels_a_verify_card(app, TH, RV, TR):
    label_card = tab_review.render_card(app, RV, "all", 0.0, 0, {"kind": "label"})
    assert label_card[RV.class_label].startswith("Label as") and label_card[RV.review_state]["card"] == "label"
    name = label_card[RV.review_state]["name"]
    out = tab_review.on_decide(app, RV, "class", "calm", "all", 0.0, label_card[RV.review_state], "ann")
    assert "labeled calm" in out[RV.review_msg]
    verify_card = tab_review.render_card(app, RV, "all", 0.0, 0, VERIFY)
    assert verify_card[RV.class_label] == "Relabel as:"
    tab_review.on_decide(app, RV, "class", "calm", "all", 0.0, verify_card[RV.review_state], "ann")   # u49 is joy
    log = [(d.action, d.source, d.card) for d in app.project.store.decisions.log()]
    assert log == [("label", "labeled", "label"), ("relabel", "relabeled", "verify")]
    assert name != "u49"


def test_on_a_label_card_the_class_keys_lead_and_accept_asks_its_question(app, RV):
    label = tab_review.render_card(app, RV, "all", 0.0, 0, {"kind": "label"})
    guess = app.sample_card(label[RV.review_state]["name"])["candidate"]["predicted"]
    assert "below its threshold" in label[RV.class_label]
    assert all(label[b]["variant"] == "primary" for b in RV.class_btns)
    assert label[RV.accept_btn]["value"] == f"Is it {guess}? Yes (a)" and label[RV.accept_btn]["variant"] == "secondary"
    assert label[RV.reject_btn]["variant"] == "secondary"
    verify = tab_review.render_card(app, RV, "all", 0.0, 0, label[RV.review_state] | {"kind": "verify"})
    assert verify[RV.accept_btn]["value"] == "Accept (a)" and verify[RV.accept_btn]["variant"] == "primary"
    assert all(verify[b]["variant"] == "secondary" for b in RV.class_btns)
    again = tab_review.render_card(app, RV, "all", 0.0, 1, verify[RV.review_state])
    assert RV.accept_btn not in again                             # a verify card after one: nothing to change


# ---------------------------------------------------------------------- 5. thin estimates

def test_precision_shows_its_support_and_an_interval_and_never_a_false_certainty(app):
    table = tab_thresholds.class_frame(app.candidate_counts(), {})
    oof = table["OOF precision (hits/n, 95% CI)"].tolist()
    assert all(t.startswith("thin: ") for t in oof)       # 10 gold samples per class
    assert all("(" in t and "–" in t and "/" in t for t in oof)
    lo, hi = wilson_interval(5, 5)
    assert hi == 1.0 and lo < 0.6                          # 5 of 5 is not "1.000"
    assert tab_thresholds.precision_text({"expected_precision": 0.99999988, "support": 3}) == "0.99 (n=3)"


def test_suggest_fills_the_boxes_with_values_a_slider_shows(app, TH, RV, TR):
    out = tab_thresholds.on_suggest(app, TH, 0.6, "ann")
    values = [out[s]["value"] for s in TH.sliders]
    assert all(round(v, 3) == v for v in values)
    assert "to reach precision 0.6" in out[TH.threshold_note]


# ---------------------------------------------------------------------- 6. accept all

def test_accept_all_says_the_minimum_confidence_as_given_and_refuses_in_page_words(app, TH, RV, TR):
    ask = tab_review.on_accept_all_ask(app, RV, "all", 0.999, "ann")
    assert "Nothing to accept" in ask[RV.review_msg]                  # nothing at 0.999
    ask = tab_review.on_accept_all_ask(app, RV, "all", 0.905, "ann")
    assert "≥ 0.905" in ask[RV.confirm_md]
    n = ask[RV.pending_count]
    app.decide(tab_review.render_card(app, RV, "all", 0.905, 0)[RV.review_state]["name"], "accept", "", "bob")
    out = tab_review.on_accept_all_confirm(app, RV, "all", 0.905, "ann", n)
    assert "Nothing accepted" in out[RV.review_msg] and "expected=" not in out[RV.review_msg]
    assert f"not the {n}" in out[RV.review_msg]
    assert out[RV.confirm_group]["visible"] is False


def test_a_filter_change_hides_the_accept_all_question(app, TH, RV, TR):
    out = tab_review.on_move(app, RV, "joy", 0.0, {"offset": 0}, step=None)
    assert out[RV.confirm_group]["visible"] is False


# ---------------------------------------------------------------------- 7. reload

def test_a_reload_restores_tab_filter_and_card(app, TH, RV, TR):
    first = tab_review.render_card(app, RV, "joy", 0.0, 3)[RV.review_state]
    out = tab_review.on_restore(app, RV, TABS_PART, TABS, "review", first)
    assert out[TABS_PART]["selected"] == "review" and out[RV.filter_cls] == "joy"
    assert out[RV.review_state]["name"] == first["name"]
    app.decide(tab_review.render_card(app, RV, "joy", 0.0, 0)[RV.review_state]["name"], "accept", "", "bob")
    out = tab_review.on_restore(app, RV, TABS_PART, TABS, "review", first)           # the queue moved: found by name
    assert out[RV.review_state]["name"] == first["name"] and out[RV.review_state]["offset"] == 2
    bogus = tab_review.on_restore(app, RV, TABS_PART, TABS, "bogus", {"cls": "fear", "min_conf": 7})
    assert bogus[RV.filter_cls] == "all" and bogus[RV.filter_conf] == 0.0
    assert "selected" not in bogus[TABS_PART]                 # the first tab: left alone, not re-selected


# ---------------------------------------------------------------------- 8. a round training

def test_the_review_tab_says_a_round_is_training_wherever_it_was_started(app):
    history = app.training.rounds()
    assert tab_review.training_banner(app.training.training_status(), history) == ""
    store = app.project.store
    # a round started by another process (the command line): the page follows its progress
    rid = store.rounds.create(config={}, config_name="fixture", thresholds={}, auto_accept=False,
                              pid=os.getpid(), host=socket.gethostname())
    store.rounds.heartbeat(rid, 0.4, "fold 2/5: epoch 3")
    snap = app.training.training_status()
    assert snap["running"] and snap["where"] == "elsewhere" and snap["fraction"] == 0.4
    assert "fold 2/5: epoch 3" in snap["message"] and "fold 2/5" in snap["log"][-1]
    text = tab_review.training_banner(snap, history)
    assert f"Round {rid} is training (40%)" in text and "round after it" in text
    assert "round 0's" in text
    store.rounds.fail(rid, "test over")


# ---------------------------------------------------------------------- 9. auto-accept confirmation

def test_auto_accept_asks_first_with_counts_and_precision_per_class(app, TH, RV, TR):
    out = tab_train.on_train_ask(app, TR, "default", True)
    assert out[TR.train_confirm_group]["visible"] is True
    text = out[TR.train_confirm_md]
    preview = auto_accept_preview(app.project, load_config(app.training.presets["default"]))
    total = preview["total"]
    assert sum(r["count"] for r in preview["classes"]) == total and 0 < total <= preview["candidates"] == 50
    # the default preset's class balance (quota) keeps fewer than the candidates: the page says so
    assert f"accept {total} of the 50 candidates" in text and f"holds {50 - total} back" in text
    assert "| calm |" in text and "expected precision" in text
    assert "low" in text                                     # joy/anger near 0.5-0.7 are flagged
    assert not app.training.runner.is_running() and app.project.store.rounds.all()[-1].id == 0


def test_auto_accept_that_takes_nothing_says_the_class_balance_held_the_candidates_back():
    # quota with a class that has no candidate: candidates exist, the step takes none, and says why
    preview = {"total": 0, "candidates": 7, "balance": "quota", "note": "",
               "classes": [{"class": "calm", "candidates": 7, "count": 0, "expected_precision": None},
                           {"class": "joy", "candidates": 0, "count": 0, "expected_precision": None}]}
    text = tab_train.auto_accept_text(preview)
    assert "accept **nothing** of the 7 candidates" in text and "holds 7 back" in text
    assert "joy has no candidate" in text
    assert "| joy | 0 | 0 |" in text                          # the classes, so the reviewer sees which
    capped = tab_train.auto_accept_text(preview | {"total": 5, "balance": "cap", "classes": [
        {"class": "calm", "candidates": 7, "count": 5, "expected_precision": 0.95}]})
    assert "accept 5 of the 7 candidates" in capped and "The class balance (cap) holds 2 back." in capped


def test_auto_accept_says_how_many_candidates_the_fold_models_disagree_on():
    preview = {"total": 4, "candidates": 9, "disagreed": 3, "balance": "quota", "gate": "folds", "note": "",
               "classes": [{"class": "calm", "candidates": 6, "disagreed": 0, "count": 4, "expected_precision": 0.97},
                           {"class": "joy", "candidates": 3, "disagreed": 3, "count": 0, "expected_precision": None}]}
    text = tab_train.auto_accept_text(preview)
    assert "accept 4 of the 9 candidates" in text
    assert "The fold models disagree on 3 of them. The class balance holds 2 back" in text
    assert "joy has no candidate the fold models agree on" in text
    assert "| fold models disagree |" in text and "| joy | 3 | 3 | 0 |" in text


def test_auto_accept_confirmed_unticks_the_box(app, TH, RV, TR):
    out = tab_train.on_train_confirm(app, TR, "default")
    assert out[TR.auto_accept] is False and out[TR.train_confirm_group]["visible"] is False
    app.training.runner.wait(60)


# ---------------------------------------------------------------------- 11. media kinds

def test_every_media_kind_the_importer_accepts_gets_a_player(app, TH, RV, TR):
    assert {e: media_kind("x" + e) for e in MEDIA_SUFFIXES if media_kind("x" + e) is None} == {}
    media = app.project.media_root
    write_wav(media / "u49.aac")            # the bytes need not be AAC: the kind comes from the name
    (media / "u48.mov").write_bytes(b"\0" * 64)
    with app.project.store.db.session() as s:
        from sqlalchemy import update

        from mersemi.db.models import Sample
        s.execute(update(Sample).where(Sample.name == "u49").values(media="u49.aac"))
        s.execute(update(Sample).where(Sample.name == "u48").values(media="u48.mov"))
        s.commit()
    cards = [app.next_candidate("all", 0.0, k, "", "verify")["candidate"] for k in (0, 1)]
    assert [(c["name"], c["media_kind"]) for c in cards] == [("u49", "audio"), ("u48", "video")]


# ---------------------------------------------------------------------- 12. empty states

def test_an_empty_filter_says_what_to_do_and_disables_the_buttons(app, TH, RV, TR):
    out = tab_review.on_move(app, RV, "calm", 0.995, {"offset": 0, "kind": "verify"}, step=None)
    text = out[RV.card_md]
    assert "No candidate in this filter" in text and "minimum confidence" in text
    assert "class **all**" in text and "Thresholds" in text and "switch the queue to **label**" in text
    label = tab_review.on_move(app, RV, "calm", 0.995, {"offset": 0, "kind": "label"}, step=None)[RV.card_md]
    assert "below its threshold" in label and "switch the queue to **verify**" in label
    assert all(out[b]["interactive"] is False for b in RV.act_btns)
    back = tab_review.on_move(app, RV, "all", 0.0, out[RV.review_state], step=None)
    assert all(back[b]["interactive"] is True for b in RV.act_btns) and back[RV.review_msg] == ""
    again = tab_review.on_move(app, RV, "all", 0.0, back[RV.review_state], step=1)
    assert not any(b in again for b in RV.act_btns)     # unchanged buttons are not sent again


# ---------------------------------------------------------------------- 13. plots

def test_the_round_plots_are_lines_with_points_on_a_fitted_axis():
    rounds = [RoundSummary(id=i, status=RoundStatus.DONE, config="c", auto_accept=False, started_at=None, wall_s=None,
                           thresholds={}, classes=["calm", "joy"],
                           record=RoundRecord(metrics=RoundMetrics(cv=SplitMetrics(waf=w, f1=[f, 0.5]))))
              for i, (w, f) in enumerate([(0.70, 0.6), (0.71, 0.65)])]
    lo, hi = charts.y_range([0.70, 0.71])
    assert 0.6 < lo < 0.70 and 0.71 < hi < 0.8          # a one-point change fills the plot, not 1 %
    svg = charts.waf_plot(rounds)
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 2 and "0.710" in svg
    one = charts.waf_plot(rounds[:1])
    assert one.count("<circle") == 1                      # one round: still a visible point
    f1 = charts.f1_plot(rounds)
    assert f1.count("<polyline") == 2 and "calm 0.650" in f1 and "joy 0.500" in f1
    assert "no finished round" in charts.waf_plot([])


# ---------------------------------------------------------------------- queue kinds

def test_the_queue_radio_switches_queues_and_the_card_says_its_kind_and_why(app, TH, RV, TR):
    from mersemi.service.review import DEFAULT_QUEUE, queue_page

    first = tab_review.render_card(app, RV, "all", 0.0, 0)                   # the default queue
    assert first[RV.review_state]["kind"] == DEFAULT_QUEUE == "both"
    assert first[RV.review_state]["name"] == queue_page(app.project)[0][0].name   # as `mersemi queue`
    assert "Label this" in first[RV.card_md] and "below threshold: top two classes" in first[RV.card_md]
    out = tab_review.on_kind(app, RV, "verify", "all", 0.0, first[RV.review_state])
    assert (out[RV.review_state]["kind"], out[RV.review_state]["name"]) == ("verify", "u49")
    assert "Verify this" in out[RV.card_md] and "at or above threshold" in out[RV.card_md]
    after = tab_review.on_decide(app, RV, "accept", "", "all", 0.0, out[RV.review_state], "ann")
    assert (after[RV.review_state]["kind"], after[RV.review_state]["name"]) == ("verify", "u48")
    back = tab_review.on_restore(app, RV, TABS_PART, TABS, "review", after[RV.review_state])   # a reload: same queue
    assert (back[RV.review_state]["kind"], back[RV.review_state]["name"]) == ("verify", "u48")
    label = tab_review.on_kind(app, RV, "label", "all", 0.0, back[RV.review_state])
    assert label[RV.review_state]["name"] == queue_page(app.project, "label")[0][0].name
    assert tab_review.on_kind(app, RV, "bogus", "all", 0.0, {})[RV.review_state]["kind"] == DEFAULT_QUEUE


def test_moving_through_the_queue_skips_the_counts_a_decision_refreshes_them(app, TH, RV, TR):
    first = tab_review.on_move(app, RV, "all", 0.0, {"offset": 0, "kind": "verify"}, step=None)
    assert RV.counts_df in first                       # a new filter: counts drawn
    moved = tab_review.on_move(app, RV, "all", 0.0, first[RV.review_state], step=1)
    assert RV.counts_df not in moved and moved[RV.review_state]["offset"] == 1
    decided = tab_review.on_decide(app, RV, "accept", "", "all", 0.0, moved[RV.review_state], "ann")
    assert decided[RV.counts_df]["verified"].sum() == 1


def test_the_page_branches_on_a_refusals_code_never_on_its_words(app, RV, monkeypatch):
    no_round = {"ok": False, "code": "no_round", "error": "any words at all"}
    assert "train round 0 on the **Train** tab" in tab_review.empty_state(app, "all", 0.0, no_round)
    worded = {"ok": False, "code": "refused", "error": "no finished round yet, in other words"}
    assert "**Train** tab" not in tab_review.empty_state(app, "all", 0.0, worded)
    # a refusal that happens to carry a count is no question to ask
    monkeypatch.setattr(app, "accept_all", lambda *a, **k: {"ok": False, "code": "busy", "count": 3,
                                                            "error": "database busy, try again"})
    out = tab_review.on_accept_all_ask(app, RV, "all", 0.0, "ann")
    assert out[RV.confirm_group]["visible"] is False and "database busy" in out[RV.review_msg]


def test_a_store_change_follows_the_name_the_card_was_drawn_for_not_the_one_read_before(app, RV):
    """The poll's event reads the name box when it fires; when it waited behind the draw for a
    new name (the name box left), it must follow that name's card, not draw the old name's and
    show the new name another's claim (browser run 9 of 10: bob was shown alice's card)."""
    alice = tab_review.render_card(app, RV, "all", 0.0, 0, None, "alice")[RV.review_state]
    bob = tab_review.on_move(app, RV, "all", 0.0, alice, "bob", step=0)[RV.review_state]
    assert bob["name"] != alice["name"] and bob["page"] == alice["page"]    # alice's claim holds
    assert app.decide("u30", "label", app.project.classes[0], "carol")["ok"]  # the store changes
    followed = tab_review.on_store_changed(app, RV, "all", 0.0, alice, "alice")   # with the name read before
    assert followed.get(RV.review_state, bob)["name"] == bob["name"]
    # a reload draws with no name; the name box (restored) is the reviewer the card follows
    restored = tab_review.on_restore(app, RV, None, ("review",), "review", alice)[RV.review_state]
    assert restored["name"] == alice["name"] and not restored["reviewer"]
    assert app.decide("u31", "label", app.project.classes[0], "carol")["ok"]
    kept = tab_review.on_store_changed(app, RV, "all", 0.0, restored, "alice")
    assert kept.get(RV.review_state, restored)["name"] == alice["name"]
