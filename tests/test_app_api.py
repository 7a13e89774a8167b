"""The app's named endpoints through gradio_client against live servers, checked in SQLite.

Review-flow tests share one in-process server on a Store-built project (known numbers);
the crash test runs `mersemi serve` in a subprocess and kills it; the training test
trains a real round on a small synthetic project.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AuthenticationError

from app_fixtures import (
    FAST_PRESET, call, db_rows, expected_count, free_port, make_review_project, serve_in_process,
    stop_in_process, synthetic_project, wait_until,
)

pytestmark = pytest.mark.slow
MERSEMI = str(Path(sys.executable).parent / "mersemi")
REQUIRED = ("set_thresholds", "candidate_counts", "next_candidate", "decide", "undo", "train_round",
            "round_history", "export")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("api") / "proj"
    make_review_project(root).close()
    demo, url = serve_in_process(root)
    yield root, Client(url, verbose=False)
    stop_in_process(demo)




def decisions_of(root: Path, name: str) -> list[tuple]:
    return db_rows(root, "SELECT d.action, d.label, d.reviewer FROM decisions d JOIN samples s "
                         "ON s.id = d.sample_id WHERE s.name = ? ORDER BY d.id", name)


def in_force(root: Path, name: str) -> tuple | None:
    rows = db_rows(root, "SELECT c.action, c.label FROM current_decisions c JOIN samples s "
                         "ON s.id = c.sample_id WHERE s.name = ?", name)
    return rows[0] if rows else None


def snapshot(root: Path) -> tuple:
    return (db_rows(root, "SELECT * FROM decisions"), db_rows(root, "SELECT * FROM current_decisions"),
            db_rows(root, "SELECT class_id, value FROM thresholds"),
            db_rows(root, "SELECT id, status FROM rounds"))


def test_every_action_is_a_named_endpoint(served):
    _, client = served
    names = {n.lstrip("/") for n in client.view_api(print_info=False, return_format="dict")["named_endpoints"]}
    assert set(REQUIRED) <= names


def test_thresholds_change_the_counts(served):
    root, client = served
    out = call(client, "set_thresholds", {"joy": 0.85, "anger": 0.95}, "ann")
    assert out["ok"] and out["thresholds"]["joy"] == 0.85
    counts = {r["class"]: r["candidates"] for r in call(client, "candidate_counts")["classes"]}
    assert counts["anger"] == expected_count(2, 0.95) and counts["joy"] == expected_count(1, 0.85)
    assert db_rows(root, "SELECT value, updated_by FROM thresholds WHERE class_id = 1") == [(0.85, "ann")]
    out = call(client, "set_thresholds", {"joy": 0.5, "anger": 0.5}, "ann")
    counts = {r["class"]: r["candidates"] for r in out["classes"]}
    assert counts["anger"] == expected_count(2, 0.5)


def test_accept_reject_relabel_undo_land_in_sqlite(served):
    root, client = served
    assert call(client, "decide", "u10", "accept", "", "ann")["ok"]
    assert call(client, "decide", "u11", "reject", "", "ann")["ok"]
    assert call(client, "decide", name="u12", action="relabel", label="joy", reviewer="ann")["ok"]
    assert decisions_of(root, "u10") == [("accept", 1, "ann")]    # u10 is predicted joy (10 % 3)
    assert decisions_of(root, "u11") == [("reject", 2, "ann")]
    assert decisions_of(root, "u12") == [("relabel", 1, "ann")]
    out = call(client, "undo", "ann")
    assert out["undone"] == ["u12"]
    assert decisions_of(root, "u12")[-1] == ("undo", None, "ann") and in_force(root, "u12") is None
    assert in_force(root, "u10") == ("accept", 1)
    # The decided sample leaves its class's queue; the undone one (predicted calm) comes back.
    assert "u10" not in queue_names(client, "joy") and "u12" in queue_names(client, "calm")


def queue_names(client: Client, cls: str) -> set[str]:
    total = call(client, "next_candidate", cls, 0.0, 0)["total"]
    return {call(client, "next_candidate", cls, 0.0, i)["candidate"]["name"] for i in range(total)}


def test_two_reviewers_on_one_sample(served):
    root, client = served
    assert call(client, "decide", "u20", "accept", "", "ann")["replaced"] == []
    out = call(client, "decide", "u20", "reject", "", "bob")
    assert out["ok"] and [(r["reviewer"], r["action"]) for r in out["replaced"]] == [("ann", "accept")]
    assert "replaces ann's accept" in out["message"]
    assert decisions_of(root, "u20") == [("accept", 2, "ann"), ("reject", 2, "bob")]
    assert in_force(root, "u20") == ("reject", 2)
    rows = {r["class"]: r for r in call(client, "candidate_counts")["classes"]}
    assert rows["anger"]["rejected"] >= 1


def test_accept_all_confirms_the_count_first(served):
    root, client = served
    first = call(client, "accept_all", "calm", 0.9, "carl", -1)
    assert first["ok"] is False and first["needs_confirmation"]
    assert db_rows(root, "SELECT count(*) FROM decisions WHERE reviewer = 'carl'") == [(0,)]
    done = call(client, "accept_all", "calm", 0.9, "carl", first["count"])
    assert done["ok"] and done["count"] == first["count"] > 0
    assert db_rows(root, "SELECT count(*) FROM decisions WHERE reviewer = 'carl'") == [(first["count"],)]
    assert len(call(client, "undo", "carl")["undone"]) == first["count"]


@pytest.mark.parametrize("endpoint, args, message", [
    ("set_thresholds", ({"joy": 1.5}, "ann"), "must lie in [0, 1]"),
    ("set_thresholds", ({"joy": -1}, "ann"), "must lie in [0, 1]"),
    ("set_thresholds", ({"joy": "high"}, "ann"), "not a number"),
    ("set_thresholds", ({"fear": 0.5}, "ann"), "unknown class"),
    ("set_thresholds", ("joy=0.5", "ann"), "give an object"),
    ("decide", ("u30", "relabel", "fear", "ann"), "unknown label"),
    ("decide", ("l03", "accept", "", "ann"), "not in the pool (it is a labeled sample)"),
    ("decide", ("nobody", "accept", "", "ann"), "unknown sample"),
    ("decide", ("u30", "accept", "", ""), "reviewer name"),
    ("undo", ("",), "reviewer name"),
    ("next_candidate", ("fear", 0.0, 0), "unknown class"),
    ("next_candidate", ("all", "high", 0), "expected a number, got the string 'high'"),
    ("accept_all", ("all", 0.0, "", -1), "reviewer name"),
    ("train_round", ("no-such-preset", False, False), "unknown preset"),
    ("export", ("everything",), "one of"),
])
def test_bad_input_gives_a_message_and_changes_nothing(served, endpoint, args, message):
    root, client = served
    before = snapshot(root)
    out = call(client, endpoint, *args)
    assert out["ok"] is False and message in out["error"]
    assert snapshot(root) == before


def test_only_the_cards_clips_are_served(served):
    import httpx

    root, client = served
    base = client.src.rstrip("/")
    # u00, the one sample with a clip, somewhere in the calm filter's queue
    total = call(client, "next_candidate", "calm", 0.0, 0)["total"]
    card = next(c for c in (call(client, "next_candidate", "calm", 0.0, k)["candidate"] for k in range(total))
                if c["name"] == "u00")
    assert httpx.get(f"{base}/gradio_api/file={card['media']}").status_code == 200
    for outside in (root / "media" / "u00.wav", root / "secret.wav", root / "project.db", Path(__file__)):
        assert httpx.get(f"{base}/gradio_api/file={outside}").status_code == 403, outside


def test_no_round_yet_gives_a_message(tmp_path):
    from mersemi.service.project import Project

    Project.init(tmp_path / "empty", ["a", "b"]).close()
    demo, url = serve_in_process(tmp_path / "empty")
    try:
        client = Client(url, verbose=False)
        for endpoint, args in (("candidate_counts", ()), ("next_candidate", ("all", 0.0, 0)),
                               ("decide", ("x", "accept", "", "ann"))):
            out = call(client, endpoint, *args)
            assert out["ok"] is False and "no finished round" in out["error"]
        assert call(client, "round_history")["rounds"] == []
    finally:
        stop_in_process(demo)


def test_server_killed_mid_review_keeps_every_acknowledged_decision(tmp_path):
    root = tmp_path / "proj"
    make_review_project(root).close()
    port = free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    server = subprocess.Popen([MERSEMI, "serve", str(root), "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = wait_until(lambda: _client_or_none(f"http://127.0.0.1:{port}/"), 60, what="the server")
        acknowledged = []
        for i in range(12):
            name = f"u{i:02d}"
            out = call(client, "decide", name, "reject" if i % 2 else "accept", "", "ann")
            assert out["ok"]
            acknowledged.append(name)
    finally:
        server.send_signal(signal.SIGKILL)   # no chance to flush anything on the way out
        server.wait(10)
    for name in acknowledged:
        assert len(decisions_of(root, name)) == 1, name
    assert db_rows(root, "SELECT count(*) FROM current_decisions") == [(len(acknowledged),)]


def test_stopping_the_server_marks_its_training_round_failed(tmp_path):
    synthetic_project(tmp_path / "proj", tmp_path / "data").close()
    port = free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    server = subprocess.Popen([MERSEMI, "serve", str(tmp_path / "proj"), "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = wait_until(lambda: _client_or_none(f"http://127.0.0.1:{port}/"), 60, what="the server")
        # The paper's heavy preset: still training when the signal arrives, however quiet the machine.
        assert call(client, "train_round", "mer2024", False, False)["started"]
        wait_until(lambda: db_rows(tmp_path / "proj", "SELECT status FROM rounds") == [("running",)], 60,
                   every=0.2, what="the round to start")
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
    assert db_rows(tmp_path / "proj", "SELECT id, status, error FROM rounds") == [
        (0, "failed", "interrupted: the server stopped")]


def _client_or_none(url: str):
    try:
        return Client(url, verbose=False)
    except Exception:  # not listening yet
        return None


def test_serve_refuses_a_folder_that_is_not_a_project(tmp_path):
    out = subprocess.run([MERSEMI, "serve", str(tmp_path), "--port", str(free_port())],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "not a project" in out.stderr
    out = subprocess.run([MERSEMI, "serve", str(tmp_path), "--auth", "nopassword"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "USER:PASSWORD" in out.stderr


def test_train_round_adds_a_round_and_refuses_a_second_start(tmp_path):
    synthetic_project(tmp_path / "proj", tmp_path / "data").close()
    demo, url = serve_in_process(tmp_path / "proj", presets={"fast": FAST_PRESET})
    try:
        client = Client(url, verbose=False)
        assert call(client, "round_history")["rounds"] == []
        started = call(client, "train_round", "fast", False, False)
        assert started["ok"] and started["started"]
        again = call(client, "train_round", "fast", False, False)
        assert again["ok"] is False and "already training" in again["error"]
        done = wait_until(lambda: _finished(call(client, "round_history")), 180, every=1,
                          what="round 0 to finish")
        assert [(r["id"], r["status"]) for r in done] == [(0, "done")]
        assert done[0]["cv_waf"] is not None and done[0]["composition"]["gold"] > 0
        status = call(client, "training_status")
        assert status["running"] is False and status["fraction"] == 1.0 and status["log"]
        card = call(client, "next_candidate", "all", 0.0, 0)
        assert card["ok"] and card["round"] == 0
        assert call(client, "export", "predictions")["rows"] > 0
    finally:
        stop_in_process(demo)


def _finished(history: dict) -> list | None:
    rounds = history["rounds"]
    return rounds if rounds and not history["training"] and rounds[-1]["status"] != "running" else None


def test_auth_is_required_when_set(tmp_path):
    from mersemi.ui.app import build_app, launch

    root = tmp_path / "proj"
    make_review_project(root).close()
    demo = build_app(root)
    port = free_port()
    launch(demo, port=port, auth=("ann", "secret"), block=False)
    try:
        url = f"http://127.0.0.1:{port}"
        with pytest.raises(AuthenticationError, match="credentials were not provided"):
            Client(url + "/", verbose=False)
        with pytest.raises(ValueError, match="Could not login"):  # a wrong password
            Client(url + "/", auth=("ann", "wrong"), verbose=False)
        # The API itself refuses a caller without the session cookie, not only the client.
        for response in (httpx.get(url + "/config"), httpx.get(url + "/gradio_api/info"),
                         httpx.post(url + "/gradio_api/call/candidate_counts", json={"data": []})):
            assert response.status_code == 401, (response.request.url, response.text)
        client = Client(f"http://127.0.0.1:{port}/", auth=("ann", "secret"), verbose=False)
        assert call(client, "candidate_counts")["ok"]
    finally:
        stop_in_process(demo)


def test_demo_project_is_built_once_and_reused(tmp_path):
    from mersemi.ui.cli_serve import build_demo_project
    from mersemi.service.project import Project

    root = build_demo_project(tmp_path / "cache", scale=0.1, config=FAST_PRESET)
    with Project.open(root) as project:
        assert project.store.rounds.current().id == 0
        samples = project.store.samples.count()
        assert samples > 0
    again = build_demo_project(tmp_path / "cache", scale=0.1, config=FAST_PRESET)
    assert again == root
    with Project.open(root) as project:
        assert [r.id for r in project.store.rounds.all()] == [0]      # no second round
        assert project.store.samples.count() == samples             # no second import
    assert not (tmp_path / "cache" / "data.partial").exists()
