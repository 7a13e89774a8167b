"""Votes through the app's named API endpoints on a live server (gradio_client), on SQLite and on
PostgreSQL: the overlap setting, two reviewers voting on one card, a tie adjudicated by a third
from the adjudicate queue, the agreement and the gold changes."""
from __future__ import annotations

import pytest
from gradio_client import Client

from app_fixtures import call, make_review_project, serve_in_process, stop_in_process

pytestmark = pytest.mark.slow


@pytest.fixture
def client(tmp_path, db_url):
    root = tmp_path / "proj"
    make_review_project(root, db_url=db_url).close()
    demo, url = serve_in_process(root)
    yield Client(url, verbose=False)
    stop_in_process(demo)


def test_two_reviewers_vote_a_third_adjudicates_and_the_agreement_is_served(client):
    assert call(client, "set_overlap", 2, 1.0, 0.0)["overlap_cards"] == 60
    bad = call(client, "set_overlap", 0, 1.0, 0.0)
    assert bad == {"ok": False, "error": "votes: must lie in [1, 100], got 0", "code": "invalid"}
    name = call(client, "next_candidate", "all", 0.0, 0, "ann")["candidate"]["name"]
    first = call(client, "decide", name, "label", "calm", "ann")
    assert first["vote"] == {"purpose": "overlap", "votes": 1, "needed": 2, "state": "open"}
    again = call(client, "decide", name, "label", "joy", "ann")
    assert again["ok"] is False and "voted on it already" in again["error"]
    assert call(client, "next_candidate", "all", 0.0, 0, "bob")["candidate"]["name"] == name
    assert call(client, "decide", name, "label", "joy", "bob")["vote"]["state"] == "tie"

    assert call(client, "next_candidate", "all", 0.0, 0, "ann", "adjudicate")["candidate"] is None
    card = call(client, "next_candidate", "all", 0.0, 0, "cara", "adjudicate")["candidate"]
    assert card["name"] == name and card["kind"] == "adjudicate" and set(card["probs"]) == {"calm", "joy", "anger"}
    assert [(v["reviewer"], v["label"]) for v in card["votes"]] == [("ann", "calm"), ("bob", "joy")]
    by_voter = call(client, "decide", name, "label", "calm", "bob")
    assert by_voter["ok"] is False
    decided = call(client, "decide", name, "label", "joy", "cara")
    assert decided["vote"]["state"] == "adjudicated"
    row = call(client, "decisions", name, "", "all", "", True, 10, 0)["rows"][0]
    assert (row["reviewer"], row["source"], row["label"]) == ("cara", "adjudicated", "joy")

    result = call(client, "agreement", 200)
    assert result["ok"] and result["items"] == 1 and result["pairs"]["reviewers"] == ["ann", "bob"]
    assert result["pairs"]["agreement"][0][1] == 0.0 and result["cards"] == {"adjudicated": 1, "open": 59}
    audit = call(client, "next_candidate", "all", 0.0, 0, "ann", "audit")["candidate"]
    assert audit["kind"] == "audit" and audit["gold"] == "calm" and audit["name"] == "l00"
    assert call(client, "gold_changes") == {"ok": True, "changes": [], "votes": 2}
