"""The gold audit and the gold probes (issue 27, items 2 and 5), through the API's actions and the
command line on a real project, on SQLite and on PostgreSQL: the gold labels the round's
out-of-fold probabilities flag form the audit queue; a gold label changes only by a consensus of
K votes, logged with the old label and exported; probes are shown as ordinary cards and score
each reviewer without ever training or changing a gold label. And `mersemi agreement`,
`overlap`, `queue --kind adjudicate|audit` and `status --json` from the command line."""
from __future__ import annotations

import csv
import json

import krippendorff
import numpy as np
import pytest

from app_fixtures import CLASSES, N_LABELED, N_POOL, make_review_project
from mersemi.service.actions import AppActions
from mersemi.service.review import queue_page
from mersemi.ui.cli import main

# make_review_project's out-of-fold predictions are wrong for every fifth gold sample, with
# confidence 0.9 - 0.01 i: confident learning flags those, the least likely right first
FLAGGED = [f"l{i:02d}" for i in range(N_LABELED) if i % 5 == 0]


@pytest.fixture
def app(tmp_path, db_url):
    project = make_review_project(tmp_path / "proj", db_url=db_url)
    yield AppActions(project)
    project.close()


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def gold_of(app, name: str) -> str:
    sid = app.project.store.samples.by_name([name])[name][0]
    return CLASSES[app.project.store.samples.by_id([sid])[sid].gold_label]


def test_a_gold_label_changes_only_by_a_consensus_of_k_votes_logged_and_exported(app, tmp_path, capsys):
    root = app.project.root
    app.votes.set_overlap(2, 0.0)
    cards, total = queue_page(app.project, "audit", limit=50)
    assert [c.name for c in cards] == FLAGGED and total == len(FLAGGED)
    top = cards[0]
    assert top.kind == "audit" and CLASSES[top.gold] == gold_of(app, "l00") == "calm"
    code, out, err = run(capsys, "queue", root, "--kind", "audit", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["name"] for r in rows] == FLAGGED and rows[0]["gold"] == "calm" and rows[0]["predicted"] == "joy"

    # one vote does not change it; a non-flagged gold label takes no vote; an audit takes a class
    assert app.decide("l00", "accept", "", "ann")["vote"]["state"] == "open"   # accept: the model's class, joy
    assert gold_of(app, "l00") == "calm"
    refused = app.decide("l01", "label", "joy", "ann")
    assert refused["ok"] is False and "not in the pool (it is a labeled sample)" in refused["error"]
    refused = app.decide("l00", "reject", "", "bob")
    assert refused["ok"] is False and "takes a class" in refused["error"]
    assert "l00" not in [c.name for c in queue_page(app.project, "audit", limit=50, reviewer="ann")[0]]
    # the second vote agrees: the gold label changes, logged with the old label
    assert app.decide("l00", "label", "joy", "bob")["vote"]["state"] == "consensus"
    assert gold_of(app, "l00") == "joy"
    changes = app.votes.gold_changes()["changes"]
    assert [(c["name"], c["old_label"], c["new_label"], c["votes_for"], c["votes_cast"]) for c in changes] == [
        ("l00", "calm", "joy", 2, 2)]
    assert "l00" not in [c.name for c in queue_page(app.project, "audit", limit=50)[0]]
    out_file = tmp_path / "gold.csv"
    code, out, err = run(capsys, "export", root, "--what", "gold_changes", "--out", out_file)
    assert code == 0, err
    rows = list(csv.DictReader(out_file.open()))
    assert [(r["name"], r["old_label"], r["new_label"], r["votes_for"]) for r in rows] == [("l00", "calm", "joy", "2")]
    # a tie of votes keeps the imported label
    app.decide("l05", "label", "calm", "ann")
    assert app.decide("l05", "label", "joy", "bob")["vote"]["state"] == "tie"
    assert gold_of(app, "l05") == "anger"
    # bob takes his vote back: the consensus is gone, and the label goes back (logged too)
    assert app.undo("bob")["undone"] == ["l05"]
    assert app.undo("bob")["undone"] == ["l00"]
    assert gold_of(app, "l00") == "calm"
    assert [(c["old_label"], c["new_label"]) for c in app.votes.gold_changes()["changes"]] == [
        ("calm", "joy"), ("joy", "calm")]


def test_probes_are_ordinary_cards_that_score_their_reviewer_and_never_train(app):
    out = app.votes.set_overlap(1, 0.0, 0.2)
    probes = app.project.store.votes.cards("probe")
    assert out["probe_cards"] == len(probes) == 6                    # a fifth of each class's 10 gold samples
    names = app.project.store.samples.names(list(probes))
    cards, total = queue_page(app.project, limit=N_POOL + 10, reviewer="ann")
    shown = {c.name: c for c in cards}
    assert total == N_POOL + len(probes) and set(names.values()) <= set(shown)
    assert {shown[n].kind for n in names.values()} <= {"label", "verify"}   # nothing says "probe"
    gold = {names[s]: CLASSES[app.project.store.samples.by_id([s])[s].gold_label] for s in probes}
    for k, (name, label) in enumerate(sorted(gold.items())):
        answer = label if k % 3 else CLASSES[(CLASSES.index(label) + 1) % 3]   # ann wrong on 2 of 6
        assert app.decide(name, "label", answer, "ann")["ok"]
        assert gold_of(app, name) == label                                # a probe's vote changes no gold label
        assert app.decide(name, "label", label, "bob")["ok"]              # bob always right
    before = app.project.store.samples.split_arrays("labeled")[1].tolist()
    result = app.votes.agreement()
    scores = {r["reviewer"]: (r["probe_right"], r["probe_votes"]) for r in result["reviewers"]}
    assert scores == {"ann": (4, 6), "bob": (6, 6)}
    assert result["reviewers"][0]["probe_interval"][0] < 4 / 6 < result["reviewers"][0]["probe_interval"][1]
    assert app.project.store.samples.split_arrays("labeled")[1].tolist() == before
    assert app.project.store.decisions.training_labels()[0].tolist() == []
    assert app.votes.gold_changes()["changes"] == []
    # a probe ann answered is gone from her queue, still in cara's
    mine = {c.name for c in queue_page(app.project, limit=N_POOL + 10, reviewer="ann")[0]}
    assert not mine & set(gold) and set(gold) <= {c.name for c in queue_page(
        app.project, limit=N_POOL + 10, reviewer="cara")[0]}


def test_agreement_is_krippendorffs_alpha_of_the_votes_with_pairs_and_consensus(app, capsys):
    root = app.project.root
    app.votes.set_overlap(3, 1.0)
    votes = {  # card -> (ann, bob, cara); None: no vote
        "u00": ("calm", "calm", "calm"), "u01": ("joy", "joy", "anger"), "u02": ("anger", "anger", "anger"),
        "u03": ("calm", "joy", "anger"), "u04": ("joy", "joy", None), "u05": ("calm", None, "calm"),
        "u06": ("anger", "calm", "anger"), "u07": ("joy", "joy", "joy")}
    reviewers = ("ann", "bob", "cara")
    for name, labels in votes.items():
        for who, label in zip(reviewers, labels):
            if label is not None:
                assert app.decide(name, "label", label, who)["ok"]
    matrix = np.array([[np.nan if l is None else CLASSES.index(l) for l in labels] for labels in votes.values()])
    code, out, err = run(capsys, "agreement", root, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert {"alpha", "per_class", "items", "pairs"} <= set(result)
    expected = krippendorff.alpha(reliability_data=matrix.T, level_of_measurement="nominal")
    assert result["alpha"] == pytest.approx(expected, abs=1e-4) and result["items"] == len(votes)
    low, high = result["alpha_interval"]
    assert low <= result["alpha"] <= high
    for c, name in enumerate(CLASSES):
        binary = np.where(np.isnan(matrix), np.nan, (matrix == c).astype(float))
        assert result["per_class"][name]["alpha"] == pytest.approx(
            krippendorff.alpha(reliability_data=binary.T, level_of_measurement="nominal"), abs=1e-4)
    pairs = result["pairs"]
    assert pairs["reviewers"] == list(reviewers)
    assert pairs["items"][0][1] == 7 and pairs["agreement"][0][1] == pytest.approx(5 / 7, abs=1e-4)   # ann-bob
    # the consensus of the six cards with a majority of three votes; u04 and u05 wait for their third
    by = {r["reviewer"]: r for r in result["reviewers"]}
    assert by["cara"]["consensus_items"] == 5 and by["cara"]["with_consensus"] == pytest.approx(4 / 5, abs=1e-4)
    assert result["cards"] == {"consensus": 5, "tie": 1, "open": N_POOL - 6}
    code, out, err = run(capsys, "status", root, "--json")
    assert code == 0 and json.loads(out)["agreement"]["alpha"] == result["alpha"]
    code, out, err = run(capsys, "status", root)
    assert code == 0 and f"agreement: Krippendorff's alpha {result['alpha']:.3f} on 8 cards" in out
    code, out, err = run(capsys, "agreement", root)
    assert code == 0 and "Krippendorff's alpha (nominal)" in out and "cara: 7 votes" in out
    code, out, err = run(capsys, "queue", root, "--kind", "adjudicate", "--json")
    assert code == 0 and [(r["name"], [v["reviewer"] for v in r["votes"]]) for r in json.loads(out)] == [
        ("u03", list(reviewers))]


@pytest.mark.parametrize("args, words", [
    (("--votes", "0", "--share", "0.5"), "--votes: must lie in [1, 100]"),
    (("--votes", "two", "--share", "0.5"), "--votes: not a number: 'two'"),
    (("--votes", "2", "--share", "1.2"), "--share: must lie in [0, 1], got '1.2'"),
    (("--votes", "2", "--share", "-0.1"), "--share: must lie in [0, 1]"),
    (("--votes", "2"), "--votes and --share go together")])
def test_overlap_from_the_command_line_refuses_bad_values_in_one_line(app, capsys, args, words):
    root = app.project.root
    code, out, err = run(capsys, "overlap", root, "--votes", "2", "--share", "0.5", "--json")
    assert code == 0 and json.loads(out)["overlap_cards"] == N_POOL // 2
    before = app.project.store.votes.cards()
    code, out, err = run(capsys, "overlap", root, *args)
    assert code == 1 and out == "" and words in err and len(err.strip().splitlines()) == 1
    assert app.project.store.votes.cards().keys() == before.keys()
    code, out, _ = run(capsys, "overlap", root, "--json")
    assert json.loads(out) == {"votes": 2, "share": 0.5, "probes": 0.0, "overlap_cards": N_POOL // 2,
                               "probe_cards": 0}
    assert N_LABELED == 30
