"""Votes, not overwrites (issue 27): on a card of the overlap share each reviewer's decision is a
vote; the majority of K votes is the label in force (source consensus, with its vote count), a
tie waits for a reviewer who did not vote (source adjudicated) and stays out of training until
then; claims never hand a card to one who voted on it; an undo takes back one's own vote only;
the bad inputs are one line that writes nothing. Through the API's actions (AppActions) on a real
project, on SQLite and on PostgreSQL."""
from __future__ import annotations

import pytest

from app_fixtures import CLASSES, N_LABELED, N_POOL, make_review_project
from mersemi.engine.config_schema import VotesConfig
from mersemi.service.actions import AppActions
from mersemi.service.review import queue_page
from mersemi.service.votes import training_labels


@pytest.fixture
def app(tmp_path, db_url):
    project = make_review_project(tmp_path / "proj", db_url=db_url)
    yield AppActions(project)
    project.close()


def snapshot(app) -> tuple:
    """Everything a refused request must leave as it was."""
    s = app.project.store
    return ([(d.id, d.action, d.label, d.reviewer, d.vote) for d in s.decisions.log()],
            sorted((c.sample_id, c.decision_id) for c in s.decisions.in_force().values()),
            [(b.sample_id, b.reviewer, b.label) for b in s.votes.ballots()],
            sorted(s.votes.cards()), s.samples.split_arrays("labeled")[1].tolist(),
            [(k, s.meta.get(k)) for k in ("overlap_votes", "overlap_share", "probe_share")])


def in_force(app, name: str):
    sid = app.project.store.samples.by_name([name])[name][0]
    current = app.project.store.decisions.in_force([sid]).get(sid)
    return None if current is None else app.project.store.decisions.get(current.decision_id)


def trained(app, **votes) -> dict[str, str]:
    """name -> source of the pool labels a round would train on."""
    ids, _, sources, _ = training_labels(app.project, VotesConfig(**({"disagreement": "hold_out",
                                                                    "weights": "equal"} | votes)))
    names = app.project.store.samples.names(ids.tolist())
    return {names[i]: s for i, s in zip(ids.tolist(), sources)}


def test_two_votes_that_agree_are_the_consensus_and_a_voter_never_gets_the_card_again(app):
    out = app.votes.set_overlap(2, 1.0)
    assert out["ok"] and out["overlap_cards"] == N_POOL and out["votes"] == 2
    card = app.next_candidate(reviewer="ann")["candidate"]["name"]
    first = app.decide(card, "accept", "", "ann")
    assert first["ok"] and first["vote"] == {"purpose": "overlap", "votes": 1, "needed": 2, "state": "open"}
    assert in_force(app, card) is None and card not in trained(app)       # one vote is no label

    # ann never sees it again: not as her next card, nowhere in her queue
    cards, total = queue_page(app.project, limit=N_POOL, reviewer="ann")
    assert card not in {c.name for c in cards} and total == N_POOL - 1
    assert app.next_candidate(reviewer="ann")["candidate"]["name"] != card
    sid = app.project.store.samples.by_name([card])[card][0]      # nor from a queue read before her vote
    assert app.project.store.claims.take_first([sid], "ann", 60) is None
    # bob gets it (ann's claim went with her vote) and agrees: the consensus is in force
    assert app.next_candidate(reviewer="bob")["candidate"]["name"] == card
    second = app.decide(card, "accept", "", "bob")
    assert second["vote"]["state"] == "consensus"
    d = in_force(app, card)
    assert (d.reviewer, d.source, d.votes_for, d.votes_cast, d.action) == ("consensus", "consensus", 2, 2, "accept")
    assert trained(app)[card] == "consensus"
    # a card with its K votes takes no third, and a voter no second
    before = snapshot(app)
    for who in ("cara", "ann"):
        refused = app.decide(card, "reject", "", who)
        assert refused["ok"] is False and len(refused["error"].splitlines()) == 1
        assert card in refused["error"]
    third = app.decide(card, "reject", "", "cara")
    assert "has its 2 votes" in third["error"] and third["code"] == "refused"
    second_vote = app.decide(card, "reject", "", "ann")
    assert "voted on it already" in second_vote["error"] and second_vote["code"] == "voted"   # the page branches on it
    assert snapshot(app) == before
    assert card not in {c.name for c in queue_page(app.project, limit=N_POOL, reviewer="cara")[0]}


def test_a_tie_waits_for_a_reviewer_who_did_not_vote_and_stays_out_of_training(app):
    app.votes.set_overlap(2, 1.0)
    name = "u05"
    assert app.decide(name, "label", "calm", "ann")["ok"]
    assert app.decide(name, "label", "joy", "bob")["vote"]["state"] == "tie"
    assert in_force(app, name) is None and name not in trained(app)
    assert name not in {c.name for c in queue_page(app.project, limit=N_POOL)[0]}   # out of the pool queues

    cards, total = queue_page(app.project, "adjudicate", limit=10)
    assert total == 1 and cards[0].name == name and cards[0].kind == "adjudicate"
    assert [(v["reviewer"], v["label"]) for v in cards[0].votes] == [("ann", "calm"), ("bob", "joy")]
    # the voters do not see it, nor decide it
    assert app.next_candidate(kind="adjudicate", reviewer="ann")["candidate"] is None
    before = snapshot(app)
    refused = app.decide(name, "label", "calm", "ann")
    assert refused["ok"] is False and "reviewer who did not vote" in refused["error"] and refused["code"] == "voted"
    assert snapshot(app) == before
    shown = app.next_candidate(kind="adjudicate", reviewer="cara")["candidate"]
    assert shown["name"] == name and shown["probs"] and [v["reviewer"] for v in shown["votes"]] == ["ann", "bob"]

    decided = app.decide(name, "label", "anger", "cara")
    assert decided["ok"] and decided["vote"]["state"] == "adjudicated"
    d = in_force(app, name)
    assert (d.reviewer, d.source, CLASSES[d.label]) == ("cara", "adjudicated", "anger")
    assert trained(app)[name] == "adjudicated"
    assert queue_page(app.project, "adjudicate")[1] == 0
    assert app.undo("cara")["undone"] == [name]                  # back to the tie
    assert in_force(app, name) is None and queue_page(app.project, "adjudicate")[1] == 1


def test_undo_takes_back_only_ones_own_vote_and_the_consensus_it_made(app):
    app.votes.set_overlap(2, 1.0)
    app.decide("u07", "accept", "", "ann")
    app.decide("u07", "accept", "", "bob")
    assert in_force(app, "u07").source == "consensus"
    assert app.undo("ann")["undone"] == ["u07"]
    assert in_force(app, "u07") is None                          # one vote left: no consensus
    assert [b.reviewer for b in app.project.store.votes.on([N_LABELED + 7])[N_LABELED + 7]] == ["bob"]
    assert app.undo("ann")["undone"] == []                       # nothing of ann's left
    # ann may vote again; a different answer now ties
    assert app.decide("u07", "reject", "", "ann")["vote"]["state"] == "tie"
    log = [(d.reviewer, d.action) for d in app.project.store.decisions.log() if d.sample_id == N_LABELED + 7]
    assert log == [("ann", "accept"), ("bob", "accept"), ("consensus", "accept"), ("ann", "undo"),
                   ("consensus", "undo"), ("ann", "reject")]


def test_outside_the_share_a_second_opinion_is_refused_once_votes_are_asked_for(app):
    assert app.decide("u02", "accept", "", "ann")["ok"]
    assert app.decide("u02", "reject", "", "bob")["ok"]          # K = 1: today's behaviour, bob's replaces
    app.votes.set_overlap(2, 0.25)
    outside = next(f"u{i:02d}" for i in range(N_POOL)
                   if app.project.store.samples.by_name([f"u{i:02d}"])[f"u{i:02d}"][0]
                   not in app.project.store.votes.cards() and i != 2)
    assert app.decide(outside, "accept", "", "ann")["ok"]
    before = snapshot(app)
    refused = app.decide(outside, "reject", "", "bob")
    assert refused["ok"] is False and "not in the overlap share" in refused["error"] and refused["code"] == "refused"
    assert snapshot(app) == before
    assert app.decide(outside, "reject", "", "ann")["ok"]        # the holder changes her own


@pytest.mark.parametrize("args, words", [
    ((0, 0.5), "votes: must lie in [1, 100]"), (("two", 0.5), "votes: expected a number"),
    ((1.5, 0.5), "votes: must be a whole number"), ((2, 1.5), "share: must lie in [0, 1]"),
    ((2, -0.1), "share: must lie in [0, 1]"), ((2, float("nan")), "share: must be a finite number"),
    ((2, 0.5, 2.0), "probes: must lie in [0, 1]"), ((2, "0.5"), "share: expected a number"),
    ((True, 0.5), "votes: not a number"), ((None, 0.5), "votes: missing")])
def test_bad_overlap_settings_are_one_line_and_write_nothing(app, args, words):
    app.votes.set_overlap(2, 0.5)
    before = snapshot(app)
    out = app.votes.set_overlap(*args)
    assert out["ok"] is False and words in out["error"] and len(out["error"].splitlines()) == 1
    assert snapshot(app) == before


def test_the_overlap_share_is_stratified_by_class_and_card_kind_and_keeps_voted_cards(app):
    app.set_thresholds({c: 0.8 for c in CLASSES}, reviewer="ann")
    out = app.votes.set_overlap(3, 0.5)
    cards = app.project.store.votes.cards()
    assert out["overlap_cards"] == len(cards) == N_POOL // 2
    view = queue_page(app.project, limit=N_POOL)[0]
    kind = {c.name: c.kind for c in view}
    names = app.project.store.samples.names(list(cards))
    for cls in range(3):   # every (class, card kind) stratum gives half of its cards
        for k in ("label", "verify"):
            stratum = [n for n, kk in kind.items() if kk == k and int(n[1:]) % 3 == cls]
            assert sum(n in names.values() for n in stratum) == round(len(stratum) / 2), (cls, k)
    voted = min(cards)
    app.decide(names[voted], "accept", "", "ann")
    again = app.votes.set_overlap(2, 0.1)
    kept = app.project.store.votes.cards()
    assert voted in kept and kept[voted].votes_needed == 3 and again["overlap_cards"] == len(kept)
    assert all(c.votes_needed == 2 for sid, c in kept.items() if sid != voted)
    assert app.votes.set_overlap(1, 0.0)["overlap_cards"] == 1      # only the voted card stays


def test_training_reads_the_votes_as_the_config_says(app):
    app.votes.set_overlap(3, 1.0, 0.5)
    for who, label in (("ann", "calm"), ("bob", "calm"), ("cara", "joy")):   # u10: 2 calm, 1 joy
        app.decide("u10", "label", label, who)
    for who, label in (("ann", "calm"), ("bob", "joy"), ("cara", "anger")):  # u11: no majority
        app.decide("u11", "label", label, who)
    hold = trained(app)
    assert hold.get("u10") == "consensus" and "u11" not in hold
    ids, labels, _, targets = training_labels(app.project, VotesConfig(disagreement="soft", weights="equal"))
    at = {int(i): k for k, i in enumerate(ids)}
    u10, u11 = N_LABELED + 10, N_LABELED + 11
    assert targets[at[u10]] == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert targets[at[u11]] == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    assert labels[at[u10]] == 0 and targets.sum(1) == pytest.approx(1.0)
    # probes: ann right on every probe she answers, cara wrong on every one; cara's vote then counts for
    # little, and u11's tie goes to ann's class
    gold = dict(zip(*[a.tolist() for a in app.project.store.samples.split_arrays("labeled")[:2]]))
    names = app.project.store.samples.names(list(gold))
    for sid in app.project.store.votes.cards("probe"):
        app.decide(names[sid], "label", CLASSES[gold[sid]], "ann")
        app.decide(names[sid], "label", CLASSES[(gold[sid] + 1) % 3], "cara")
        app.decide(names[sid], "label", CLASSES[gold[sid]] if sid % 2 else CLASSES[(gold[sid] + 2) % 3], "bob")
    weighted = trained(app, weights="probes")
    ids, labels, _, _ = training_labels(app.project, VotesConfig(disagreement="hold_out", weights="probes"))
    assert weighted["u11"] == "consensus" and CLASSES[labels[list(ids).index(u11)]] == "calm"
    assert not set(gold) & set(ids.tolist())                       # probes never train as pool labels
    assert app.project.store.samples.split_arrays("labeled")[1].tolist() == [gold[i] for i in sorted(gold)]
