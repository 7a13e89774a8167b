"""The page's parts of votes (issue 27) through their handlers on a real project, on SQLite and on
PostgreSQL, without a browser: the Decisions tab's agreement panel and overlap setting, and the
Review tab's adjudicate and audit cards. Components are stand-ins (handlers return dicts keyed by
component). The browser's view of the same is tests/test_votes_browser.py."""
from __future__ import annotations

import pandas as pd
import pytest

from app_fixtures import make_review_project
from mersemi.engine.vocab import VotePurpose
from mersemi.service.actions import AppActions
from mersemi.ui import agreement_panel, tab_review
from test_review_page import stand_ins


@pytest.fixture
def app(tmp_path, db_url):
    project = make_review_project(tmp_path / "proj", db_url=db_url)
    yield AppActions(project)
    project.close()


@pytest.fixture
def AG(app):
    return stand_ins(agreement_panel.AgreementPanel, app.project.classes)


@pytest.fixture
def RV(app):
    return stand_ins(tab_review.ReviewTab, app.project.classes)


def unescaped(text: str) -> str:
    """Markdown as read (ui/charts.md escapes data)."""
    return text.replace("\\", "")


def setting(app) -> list:
    return [app.project.store.meta.get(k) for k in ("overlap_votes", "overlap_share", "probe_share")]


def test_without_overlap_votes_the_panel_is_one_line_saying_how_to_turn_them_on(app, AG):
    out = agreement_panel.render(app, AG)
    assert "No card has two votes yet" in out[AG.summary_md] and "votes per card" in out[AG.summary_md]
    assert out[AG.per_class] == "" and out[AG.pairs_df]["visible"] is False
    assert out[AG.reviewers_df]["visible"] is False


def test_the_panel_draws_alpha_with_its_interval_per_class_the_matrix_and_each_reviewer(app, AG):
    assert app.votes.set_overlap(2, 1.0, 0.5)["ok"]
    votes = {"u03": ("calm", "calm"), "u04": ("joy", "anger"), "u05": ("anger", "anger"), "u06": ("calm", "calm"),
             "u07": ("joy", "joy"), "u08": ("calm", "joy")}
    for name, (a, b) in votes.items():
        assert app.decide(name, "label", a, "ann")["ok"] and app.decide(name, "label", b, "bob")["ok"]
    probe = sorted(app.project.store.votes.cards(VotePurpose.PROBE))[0]
    sid_name = app.project.store.samples.names([probe])[probe]
    gold = app.project.classes[int(app.project.store.samples.by_id([probe])[probe].gold_label)]
    assert app.decide(sid_name, "label", gold, "ann")["ok"]                  # ann: one probe, right

    served = app.votes.agreement()
    out = agreement_panel.render(app, AG)
    low, high = served["alpha_interval"]
    assert f"**{served['alpha']:.3f}** (95 % interval {low:.3f} – {high:.3f})" in out[AG.summary_md]
    assert f"percent agreement **{100 * served['percent_agreement']:.1f} %**" in out[AG.summary_md]
    assert "on 6 cards with two votes or more, 12 votes" in out[AG.summary_md]
    for cls, a in served["per_class"].items():   # a bar per class, labelled with its alpha and interval
        assert f'<span class="cls">{cls}</span>' in out[AG.per_class]
        assert (f"{a['alpha']:.2f} [{a['low']:.2f}, {a['high']:.2f}] · {a['items']}" in out[AG.per_class]
                if a["alpha"] is not None else "n/a" in out[AG.per_class])
    pairs = out[AG.pairs_df]["value"]
    assert pairs.columns.tolist() == ["reviewer", "ann", "bob"] and out[AG.pairs_df]["visible"] is True
    assert pairs.set_index("reviewer").loc["ann", "bob"] == "0.67 (6)"       # 4 of 6 cards agree
    people = out[AG.reviewers_df]["value"].set_index("reviewer")
    assert people.loc["ann", "votes"] == 6 and people.loc["ann", "with the consensus"] == "100 % of 4 cards"
    assert people.loc["ann", "gold probes right (95% CI)"].startswith("1/1 = 1.00 (")
    assert people.loc["bob", "gold probes right (95% CI)"] == "no probe yet"


@pytest.mark.parametrize("votes, share, probes, words", [
    (0, 0.5, 0, "votes: must lie in [1, 100]"), (1.5, 0.5, 0, "votes: must be a whole number"),
    (2, 1.5, 0, "share: must lie in [0, 1]"), (None, 0.5, 0, "votes: missing"), (2, 0.5, -1, "probes: must lie")])
def test_a_bad_overlap_setting_is_one_line_writes_nothing_and_puts_the_setting_back(app, AG, votes, share, probes,
                                                                                    words):
    assert app.votes.set_overlap(2, 0.25)["ok"]
    before = setting(app), sorted(app.project.store.votes.cards())
    out = agreement_panel.on_set(app, AG, votes, share, probes)
    assert out[AG.overlap_msg].startswith("**Not set:** ") and words in unescaped(out[AG.overlap_msg])
    assert len(out[AG.overlap_msg].splitlines()) == 1
    assert (out[AG.votes], out[AG.share], out[AG.probes]) == (2, 0.25, 0.0)
    assert (setting(app), sorted(app.project.store.votes.cards())) == before


def test_the_overlap_setting_from_the_page_is_the_one_mersemi_overlap_sets(app, AG):
    out = agreement_panel.on_set(app, AG, 3, 0.5, 0.2)
    assert out[AG.overlap_msg].startswith("Set: 3 vote(s) per card on 50 % of the pool cards")
    assert setting(app) == ["3", "0.5", "0.2"]
    assert "Now: 3 vote(s) per card on 50 % of the pool cards" in out[AG.summary_md]


def tie(app, name: str = "u05") -> None:
    assert app.votes.set_overlap(2, 1.0)["ok"]
    assert app.decide(name, "label", "calm", "ann")["ok"]
    assert app.decide(name, "label", "joy", "bob")["vote"]["state"] == "tie"


def test_an_adjudicate_card_shows_every_vote_and_the_model_a_voter_is_refused_a_third_decides(app, RV):
    tie(app)
    state = {"kind": "adjudicate", "enabled": None}
    shown = tab_review.render_card(app, RV, "all", 0.0, 0, state, "")   # no name yet: every tie, none held
    title = shown[RV.card_md]
    assert title.startswith("### u05 — predicted") and "Adjudicate this tie" in title
    assert "Votes: ann: **calm** · bob: **joy**" in title
    assert 'class="pbars"' in shown[RV.probs] and shown[RV.class_label].startswith("Decide the class")
    assert all(shown[b]["variant"] == "primary" for b in RV.class_btns)        # the class keys lead

    # bob voted: the page says so near the card, from the refusal's code, and nothing is written
    before = [(d.id, d.reviewer) for d in app.project.store.decisions.log()]
    refused = tab_review.on_decide(app, RV, "class", "joy", "all", 0.0, shown[RV.review_state], "bob")
    assert refused[RV.review_msg].startswith("**Not recorded: you voted on u05**")
    assert refused[RV.review_state]["name"] is None                           # his queue has no tie for him
    assert [(d.id, d.reviewer) for d in app.project.store.decisions.log()] == before

    decided = tab_review.on_decide(app, RV, "class", "joy", "all", 0.0, shown[RV.review_state], "cara")
    assert decided[RV.review_msg].startswith("Saved:") and "adjudicated" in decided[RV.review_msg]
    row = app.decisions("u05", "", "all", "", True, 10, 0)["rows"][0]
    assert (row["reviewer"], row["source"], row["label"]) == ("cara", "adjudicated", "joy")


def test_an_audit_card_shows_the_gold_label_the_out_of_fold_view_and_the_votes_so_far(app, RV):
    assert app.votes.set_overlap(2, 0.0)["ok"]
    state = {"kind": "audit", "enabled": None}
    first = tab_review.render_card(app, RV, "all", 0.0, 0, state, "ann")
    title = first[RV.card_md]
    assert "Audit this gold label" in title and "Gold label **calm**" in title and "votes so far: none yet" in title
    assert "out-of-fold" in title and 'class="pbars"' in first[RV.probs]
    name = first[RV.review_state]["name"]
    assert tab_review.on_decide(app, RV, "class", "joy", "all", 0.0, first[RV.review_state], "ann")[
        RV.review_msg].startswith("Saved:")
    again = tab_review.render_card(app, RV, "all", 0.0, 0, state, "bob")
    assert again[RV.review_state]["name"] == name and "votes so far: ann: **joy**" in again[RV.card_md]


def test_an_empty_adjudicate_queue_says_why_and_where_ties_come_from(app, RV):
    out = tab_review.render_card(app, RV, "all", 0.0, 0, {"kind": "adjudicate"}, "ann")
    assert out[RV.card_md].startswith("### No adjudicate card") and "**Decisions** tab" in out[RV.card_md]


def test_the_review_tab_offers_the_voted_queues(app):
    assert {"adjudicate", "audit"} <= set(tab_review.QUEUE_KINDS)
    assert isinstance(agreement_panel.pairs_frame({"reviewers": [], "items": [], "agreement": []}), pd.DataFrame)


def test_a_store_change_follows_the_queue_chosen_since_its_state_was_read(app, RV):
    """Gradio reads the card's state when an event arrives, before it waits for its turn: a store
    change that waited behind a new queue's draw must follow the new queue, not draw the old
    queue's card under the new queue's boxes."""
    both = tab_review.render_card(app, RV, "all", 0.0, 0, {"kind": "both"}, "ann")[RV.review_state]
    assert both["name"] is not None
    chosen = tab_review.on_kind(app, RV, "adjudicate", "all", 0.0, both, "ann")[RV.review_state]
    assert chosen["kind"] == "adjudicate" and chosen["name"] is None and chosen["page"] == both["page"]
    assert app.decide("u30", "label", "calm", "bob")["ok"]            # the store changes
    followed = tab_review.on_store_changed(app, RV, "all", 0.0, both, "ann")   # with the state read before
    assert followed.get(RV.review_state, chosen).get("kind", chosen["kind"]) == "adjudicate"
    assert RV.card_md not in followed or followed[RV.card_md].startswith("### No adjudicate card")
