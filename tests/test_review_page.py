"""The review page's handlers (ui/app.py) on a real SQLite project, without a browser: what each
shows and what it stores (issue 9, points 1-13). Components are stand-ins: handlers return
dicts keyed by component, so any hashable object will do."""
from __future__ import annotations

import os
import socket
from types import SimpleNamespace

import pytest

from app_fixtures import make_review_project, write_wav
from mersemi.engine.config import load_config
from mersemi.engine.vocab import MEDIA_SUFFIXES, media_kind
from mersemi.ui import app as page
from mersemi.service.actions import AppActions
from mersemi.service.review import auto_accept_preview, wilson_interval


class Part:
    """A component stand-in, named for readable failures."""
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


VERIFY = {"kind": "verify"}   # the page's state on the verify queue (the candidates only)


@pytest.fixture
def app(tmp_path):
    project = make_review_project(tmp_path / "proj")
    yield AppActions(project)
    project.close()


@pytest.fixture
def W(app):
    names = ["tabs", "class_df", "threshold_note", "filter_cls", "filter_conf", "filter_kind",
             "card_md", "transcript", "audio",
             "video", "probs", "review_state", "counts_df", "review_msg", "review_banner", "confirm_group",
             "confirm_md", "pending_count", "train_confirm_group", "train_confirm_md", "progress_html",
             "train_log", "auto_accept", "saved_position"]
    w = SimpleNamespace(**{n: Part(n) for n in names})
    w.sliders = [Part(f"slider-{c}") for c in app.project.classes]
    w.hists = [Part(f"hist-{c}") for c in app.project.classes]
    w.act_btns = [Part(f"btn-{i}") for i in range(len(app.project.classes) + 5)]
    return w


# ---------------------------------------------------------------------- 1. thresholds

@pytest.mark.parametrize("typed", [-0.2, 1.5, None, float("nan")])
def test_a_threshold_out_of_range_is_refused_visibly_and_the_box_shows_the_stored_value(app, W, typed):
    out = page.on_threshold(app, W, 2, typed, "ann")
    assert out[W.sliders[2]] == 0.5                    # the box gets the stored value back
    assert "Not stored" in out[W.threshold_note] and "0.500" in out[W.threshold_note]
    assert app.project.thresholds()["anger"] == 0.5


def test_a_threshold_is_stored_as_the_slider_shows_it(app, W):
    out = page.on_threshold(app, W, 2, 0.70349, "ann")
    assert out[W.sliders[2]] == 0.703 == app.project.thresholds()["anger"]   # rounded: sent back
    assert "0.703 stored" in out[W.threshold_note]


def test_a_minimum_confidence_out_of_range_is_refused_visibly(app, W):
    state = {"offset": 3, "name": "u40", "cls": "all", "min_conf": 0.6}
    out = page.on_move(app, W, "all", 1.5, state, step=None)
    assert out[W.filter_conf] == 0.6 and "Not applied" in out[W.review_msg]
    assert W.card_md not in out                         # the card stays as it was


# ---------------------------------------------------------------------- 2. relabel to predicted

def test_relabel_to_the_predicted_class_is_said_to_be_an_accept(app, W):
    state = page.render_card(app, W, "all", 0.0, 0, VERIFY)[W.review_state]   # u49, predicted joy
    assert state["name"] == "u49"
    out = page.on_decide(app, W, "relabel", "joy", "all", 0.0, state, "ann")
    assert "accepted" in out[W.review_msg] and "recorded as an accept" in out[W.review_msg]
    assert "relabeled" not in out[W.review_msg]
    api = app.decide("u48", "relabel", "calm", "ann")                  # u48 is predicted calm
    assert api["action"] == "accept" and api["relabel_as_accept"] is True and api["label"] is None
    assert [d.action for d in app.project.store.decision_log()] == ["accept", "accept"]


# ---------------------------------------------------------------------- 3. probability bars

def test_probability_bars_are_in_class_order_with_keys_and_one_decimal(app, W):
    out = page.render_card(app, W, "all", 0.0, 0, VERIFY)  # u49: joy 0.50, calm and anger 0.25
    bars = out[W.probs]
    at = [bars.index(f'<span class="cls">{c}</span>') for c in app.project.classes]
    assert at == sorted(at)                                  # calm, joy, anger: the keys' order
    assert [bars.count(f"<kbd>{k}</kbd>") for k in "123"] == [1, 1, 1]
    assert "25.0%" in bars and "50.0%" in bars
    assert 'class="val">0.4%<' in page.probability_bars({"a": 0.996, "b": 0.004}, "a")   # never "0 %"


# ---------------------------------------------------------------------- 4. counts: one meaning

def test_decisions_are_counted_under_the_predicted_class(app, W):
    app.decide("u47", "relabel", "calm", "ann")    # predicted anger, relabeled calm
    app.decide("u48", "reject", "", "ann")         # predicted calm
    app.decide("u49", "accept", "", "ann")         # predicted joy
    frame = page._review_counts(app).set_index("predicted")
    assert frame.loc["anger", "relabeled away"] == 1 and frame.loc["calm", "relabeled away"] == 0
    assert frame.loc["calm", "rejected"] == 1 and frame.loc["joy", "accepted"] == 1
    assert "predicted" in page.COUNTS_LABEL and "relabeled from" in page.COUNTS_LABEL
    table = page._class_frame(app, app.candidate_counts()).set_index("class")
    assert table.loc["anger", "relabeled away"] == 1 and table.loc["calm", "relabeled away"] == 0


# ---------------------------------------------------------------------- 5. thin estimates

def test_precision_shows_its_support_and_an_interval_and_never_a_false_certainty(app):
    table = page._class_frame(app, app.candidate_counts())
    oof = table["OOF precision (hits/n, 95% CI)"].tolist()
    assert all(t.startswith("thin: ") for t in oof)       # 10 gold samples per class
    assert all("(" in t and "–" in t and "/" in t for t in oof)
    lo, hi = wilson_interval(5, 5)
    assert hi == 1.0 and lo < 0.6                          # 5 of 5 is not "1.000"
    assert page._precision_text({"expected_precision": 0.99999988, "support": 3}) == "0.99 (n=3)"


def test_suggest_fills_the_boxes_with_values_a_slider_shows(app):
    out = page.on_suggest(app, 0.6)
    values = out[:len(app.project.classes)]
    assert all(round(v, 3) == v for v in values)


# ---------------------------------------------------------------------- 6. accept all

def test_accept_all_says_the_minimum_confidence_as_given_and_refuses_in_page_words(app, W):
    ask = page.on_accept_all_ask(app, W, "all", 0.999, "ann")
    assert "Nothing to accept" in ask[W.review_msg]                  # nothing at 0.999
    ask = page.on_accept_all_ask(app, W, "all", 0.905, "ann")
    assert "≥ 0.905" in ask[W.confirm_md]
    n = ask[W.pending_count]
    app.decide(page.render_card(app, W, "all", 0.905, 0)[W.review_state]["name"], "accept", "", "bob")
    out = page.on_accept_all_confirm(app, W, "all", 0.905, "ann", n)
    assert "Nothing accepted" in out[W.review_msg] and "expected=" not in out[W.review_msg]
    assert f"not the {n}" in out[W.review_msg]
    assert out[W.confirm_group]["visible"] is False


def test_a_filter_change_hides_the_accept_all_question(app, W):
    out = page.on_move(app, W, "joy", 0.0, {"offset": 0}, step=None)
    assert out[W.confirm_group]["visible"] is False


# ---------------------------------------------------------------------- 7. reload

def test_a_reload_restores_tab_filter_and_card(app, W):
    first = page.render_card(app, W, "joy", 0.0, 3)[W.review_state]
    out = page.on_restore(app, W, "review", first)
    assert out[W.tabs]["selected"] == "review" and out[W.filter_cls] == "joy"
    assert out[W.review_state]["name"] == first["name"]
    app.decide(page.render_card(app, W, "joy", 0.0, 0)[W.review_state]["name"], "accept", "", "bob")
    out = page.on_restore(app, W, "review", first)           # the queue moved: found by name
    assert out[W.review_state]["name"] == first["name"] and out[W.review_state]["offset"] == 2
    bogus = page.on_restore(app, W, "bogus", {"cls": "fear", "min_conf": 7})
    assert bogus[W.filter_cls] == "all" and bogus[W.filter_conf] == 0.0
    assert "selected" not in bogus[W.tabs]                 # the first tab: left alone, not re-selected


# ---------------------------------------------------------------------- 8. a round training

def test_the_review_tab_says_a_round_is_training_and_where_decisions_go(app):
    assert page.training_banner(app, {"running": False}) == ""
    store = app.project.store
    rid = store.create_round(config={}, config_name="fixture", thresholds={}, auto_accept=False,
                             pid=os.getpid(), host=socket.gethostname())
    text = page.training_banner(app, {"running": True, "fraction": 0.4})
    assert f"Round {rid} is training (40%)" in text and "round after it" in text
    assert "round 0's" in text
    store.fail_round(rid, "test over")


# ---------------------------------------------------------------------- 9. auto-accept confirmation

def test_auto_accept_asks_first_with_counts_and_precision_per_class(app, W):
    out = page.on_train_ask(app, W, "default", True)
    assert out[W.train_confirm_group]["visible"] is True
    text = out[W.train_confirm_md]
    assert "accept 50 candidates" in text and "| calm |" in text and "expected precision" in text
    assert "low" in text                                     # joy/anger near 0.5-0.7 are flagged
    assert not app.runner.is_running() and app.project.store.rounds()[-1].id == 0
    preview = auto_accept_preview(app.project, load_config(app.presets["default"]))
    assert sum(r["count"] for r in preview["classes"]) == preview["total"] == 50


def test_auto_accept_confirmed_unticks_the_box(app, W):
    out = page.on_train_confirm(app, W, "default")
    assert out[W.auto_accept] is False and out[W.train_confirm_group]["visible"] is False
    app.runner.wait(60)


# ---------------------------------------------------------------------- 11. media kinds

def test_every_media_kind_the_importer_accepts_gets_a_player(app, W):
    assert {e: media_kind("x" + e) for e in MEDIA_SUFFIXES if media_kind("x" + e) is None} == {}
    media = app.project.media_root
    write_wav(media / "u49.aac")            # the bytes need not be AAC: the kind comes from the name
    (media / "u48.mov").write_bytes(b"\0" * 64)
    with app.project.store.session() as s:
        from sqlalchemy import update

        from mersemi.db.models import Sample
        s.execute(update(Sample).where(Sample.name == "u49").values(media="u49.aac"))
        s.execute(update(Sample).where(Sample.name == "u48").values(media="u48.mov"))
        s.commit()
    cards = [app.next_candidate("all", 0.0, k, "", "verify")["candidate"] for k in (0, 1)]
    assert [(c["name"], c["media_kind"]) for c in cards] == [("u49", "audio"), ("u48", "video")]


# ---------------------------------------------------------------------- 12. empty states

def test_an_empty_filter_says_what_to_do_and_disables_the_buttons(app, W):
    out = page.on_move(app, W, "calm", 0.995, {"offset": 0, "kind": "verify"}, step=None)
    text = out[W.card_md]
    assert "No candidate in this filter" in text and "minimum confidence" in text
    assert "class **all**" in text and "Thresholds" in text and "switch the queue to **label**" in text
    label = page.on_move(app, W, "calm", 0.995, {"offset": 0, "kind": "label"}, step=None)[W.card_md]
    assert "below its threshold" in label and "switch the queue to **verify**" in label
    assert all(out[b]["interactive"] is False for b in W.act_btns)
    back = page.on_move(app, W, "all", 0.0, out[W.review_state], step=None)
    assert all(back[b]["interactive"] is True for b in W.act_btns) and back[W.review_msg] == ""
    again = page.on_move(app, W, "all", 0.0, back[W.review_state], step=1)
    assert not any(b in again for b in W.act_btns)     # unchanged buttons are not sent again


# ---------------------------------------------------------------------- 13. plots

def test_the_round_plots_are_lines_with_points_on_a_fitted_axis():
    rounds = [{"id": i, "status": "done", "cv_waf": w, "test_waf": None, "cv_f1": {"calm": f, "joy": 0.5}}
              for i, (w, f) in enumerate([(0.70, 0.6), (0.71, 0.65)])]
    lo, hi = page.y_range([0.70, 0.71])
    assert 0.6 < lo < 0.70 and 0.71 < hi < 0.8          # a one-point change fills the plot, not 1 %
    svg = page.waf_plot(rounds)
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 2 and "0.710" in svg
    one = page.waf_plot(rounds[:1])
    assert one.count("<circle") == 1                      # one round: still a visible point
    f1 = page.f1_plot(rounds)
    assert f1.count("<polyline") == 2 and "calm 0.650" in f1 and "joy 0.500" in f1
    assert "no finished round" in page.waf_plot([])


# ---------------------------------------------------------------------- queue kinds

def test_the_queue_radio_switches_queues_and_the_card_says_its_kind_and_why(app, W):
    from mersemi.service.review import DEFAULT_QUEUE, queue_page

    first = page.render_card(app, W, "all", 0.0, 0)                   # the default queue
    assert first[W.review_state]["kind"] == DEFAULT_QUEUE == "both"
    assert first[W.review_state]["name"] == queue_page(app.project)[0][0].name   # as `mersemi queue`
    assert "Label this" in first[W.card_md] and "below threshold: top two classes" in first[W.card_md]
    out = page.on_kind(app, W, "verify", "all", 0.0, first[W.review_state])
    assert (out[W.review_state]["kind"], out[W.review_state]["name"]) == ("verify", "u49")
    assert "Verify this" in out[W.card_md] and "at or above threshold" in out[W.card_md]
    after = page.on_decide(app, W, "accept", "", "all", 0.0, out[W.review_state], "ann")
    assert (after[W.review_state]["kind"], after[W.review_state]["name"]) == ("verify", "u48")
    back = page.on_restore(app, W, "review", after[W.review_state])    # a reload keeps the queue
    assert (back[W.review_state]["kind"], back[W.review_state]["name"]) == ("verify", "u48")
    label = page.on_kind(app, W, "label", "all", 0.0, back[W.review_state])
    assert label[W.review_state]["name"] == queue_page(app.project, "label")[0][0].name
    assert page.on_kind(app, W, "bogus", "all", 0.0, {})[W.review_state]["kind"] == DEFAULT_QUEUE


def test_moving_through_the_queue_skips_the_counts_a_decision_refreshes_them(app, W):
    first = page.on_move(app, W, "all", 0.0, {"offset": 0, "kind": "verify"}, step=None)
    assert W.counts_df in first                       # a new filter: counts drawn
    moved = page.on_move(app, W, "all", 0.0, first[W.review_state], step=1)
    assert W.counts_df not in moved and moved[W.review_state]["offset"] == 1
    decided = page.on_decide(app, W, "accept", "", "all", 0.0, moved[W.review_state], "ann")
    assert decided[W.counts_df]["accepted"].sum() == 1
