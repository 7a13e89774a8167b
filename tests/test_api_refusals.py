"""Bad calls to the app's API over HTTP against a live server: each is refused with
{"ok": false, "error": "<one line>"} and changes nothing (issue 10, points 10 and 12).

Gradio answers an exception in an endpoint with {"error": null}: a wrong type, Infinity
(which Python's JSON parser accepts), a missing argument all ended there. Some of these
cannot be sent through gradio_client (it refuses NaN and checks arguments itself), so the
calls go through Gradio's HTTP API directly, as any client could send them.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from app_fixtures import db_rows, make_review_project, serve_in_process, stop_in_process

pytestmark = pytest.mark.slow
INF, NAN = float("inf"), float("nan")


def call(http: httpx.Client, base: str, endpoint: str, *data) -> dict:
    """POST /gradio_api/call/<endpoint> with `data` as JSON (Infinity and NaN written as
    Python's json writes them), then read the result from the event stream."""
    body = json.dumps({"data": list(data)})
    r = http.post(f"{base}gradio_api/call/{endpoint}", content=body,
                  headers={"content-type": "application/json"})
    assert r.status_code == 200, (r.status_code, r.text)
    stream = http.get(f"{base}gradio_api/call/{endpoint}/{r.json()['event_id']}", timeout=60)
    event, payload = None, None
    for line in stream.text.splitlines():
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: ") and event in ("complete", "error"):
            payload = json.loads(line[len("data: "):])
    if event == "error":
        return {"gradio_error": payload}  # what a refusal must never be
    assert event == "complete", stream.text
    return payload[0]



def snapshot(root: Path) -> tuple:
    """The database's rows (the live server holds it open, so its file is not hashed) and a
    hash of every other file in the project (exports, features, checkpoints)."""
    files = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith("project.db")}
    return tuple(db_rows(root, f"SELECT * FROM {t}") for t in
                 ("samples", "decisions", "current_decisions", "thresholds", "rounds", "meta")) + (files,)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("refusals") / "proj"
    make_review_project(root).close()
    demo, base = serve_in_process(root)
    with httpx.Client(timeout=60) as http:
        yield root, base, http, demo
    stop_in_process(demo)


LONG = "x" * 5000

BAD_CALLS = [
    ("next_candidate", ["all", 0.0, INF], "offset"),
    ("next_candidate", ["all", 0.0, NAN], "offset"),
    ("next_candidate", ["all", 0.0, -1], "offset"),
    ("next_candidate", ["all", 0.0, [1]], "offset"),
    ("next_candidate", ["all", 0.0, 1.5], "offset"),
    ("next_candidate", ["all", 0.0, "Infinity"], "offset"),
    ("next_candidate", [["all"], 0.0, 0], "cls"),
    ("next_candidate", [5, 0.0, 0], "cls"),
    ("next_candidate", ["fear", 0.0, 0], "unknown class"),
    ("next_candidate", ["all", INF, 0], "min_confidence"),
    ("next_candidate", ["all", True, 0], "min_confidence"),
    ("accept_all", ["all", 0.0, "ann", INF], "expected"),
    ("accept_all", ["all", 0.0, "ann", "twelve"], "expected"),
    ("accept_all", [{"cls": 1}, 0.0, "ann", -1], "cls"),
    ("export", [["labels"]], "what"),
    ("export", [{"what": "labels"}], "what"),
    ("set_thresholds", [], "thresholds"),
    ("set_thresholds", [None, "ann"], "thresholds"),
    ("set_thresholds", [{"joy": INF}, "ann"], "joy"),
    ("set_thresholds", [{"joy": "nan"}, "ann"], "not a number: 'nan'"),
    ("set_thresholds", [{"joy": True}, "ann"], "not a number"),
    ("set_thresholds", [{"joy": 0.5}, ["ann"]], "reviewer"),
    ("decide", [], "name"),
    ("decide", ["u05"], "action"),
    ("decide", ["u05", "accept"], "reviewer name"),
    ("decide", ["u05", ["accept"], "", "ann"], "action"),
    ("decide", ["u05", "relabel", {"class": "joy"}, "ann"], "label"),
    ("decide", [{"name": "u05"}, "accept", "", "ann"], "name"),
    ("decide", [LONG, "accept", "", "ann"], "longer than 255"),
    ("decide", ["u05", "accept", "", LONG], "longer than 128"),
    ("suggest", [], "target"),
    ("suggest", [INF], "target"),
    ("suggest", ["0.9 or so"], "target"),
    ("undo", [["ann"]], "reviewer"),
    ("undo", [LONG], "longer than 128"),
    ("train_round", [["default"], False, False], "config"),
    ("train_round", ["default", "false", False], "auto_accept"),
    ("train_round", ["default", 0, False], "auto_accept"),
    ("train_round", ["default", False, "yes"], "wait"),
]


@pytest.mark.parametrize("endpoint, data, needle", BAD_CALLS,
                         ids=[f"{e}-{i}" for i, (e, _, _) in enumerate(BAD_CALLS)])
def test_bad_call_is_refused_in_one_line(served, endpoint, data, needle):
    root, base, http, demo = served
    before = snapshot(root)
    runs_before = demo.actions.training.version()
    out = call(http, base, endpoint, *data)
    assert out.get("ok") is False, out
    error = out["error"]
    assert needle in error and "\n" not in error, error
    assert "internal error" not in error
    assert len(error) < 500, len(error)        # echoed input cut to 200 characters
    assert snapshot(root) == before
    assert demo.actions.training.version() == runs_before   # no round started


def test_good_calls_still_work_over_raw_http(served):
    root, base, http, _ = served
    from mersemi.service.project import Project
    from mersemi.service.review import queue_page

    with Project.open(root) as project:
        first = queue_page(project)[0][0]
    card = call(http, base, "next_candidate", "all", 0.0, 0)["candidate"]
    assert (card["name"], card["kind"], card["reason"]) == (first.name, first.kind, first.reason)
    assert call(http, base, "next_candidate")["ok"]             # every argument left to its default
    assert call(http, base, "next_candidate", "joy", 0.5, 2.0)["offset"] == 2   # 2.0 is a whole number
    assert call(http, base, "accept_all", "all", 0.0, "ann")["needs_confirmation"]


def endpoints(base: str, auth=None) -> dict[str, list[dict]]:
    info = Client(base, verbose=False, auth=auth).view_api(print_info=False, return_format="dict")
    return {name.lstrip("/"): spec["parameters"] for name, spec in info["named_endpoints"].items()}


def test_every_endpoint_refuses_wrong_types_and_missing_arguments(served):
    """Enumerated from the server's own API description, so a new endpoint is covered too."""
    root, base, http, _ = served
    found = endpoints(base)
    assert {"status", "training_status", "round_history", "decide", "export"} <= set(found)
    before = snapshot(root)
    for name, params in found.items():
        if not params:
            continue
        wrong = call(http, base, name, *[{"bad": [[1]]}] * len(params))
        assert wrong.get("ok") is False and "internal error" not in wrong["error"], (name, wrong)
        required = [p for p in params if not p["parameter_has_default"]]
        if required:  # (with every argument left to its default, a call is a good one)
            missing = call(http, base, name)
            assert missing.get("ok") is False and required[0]["parameter_name"] in missing["error"], (name, missing)
    assert snapshot(root) == before


def test_endpoints_without_arguments_refuse_when_the_project_breaks(tmp_path):
    """status, training_status, round_history, ... take no argument: the bad call they can get is
    one the project cannot answer. A refusal, never Gradio's {"error": null}."""
    root = tmp_path / "proj"
    make_review_project(root).close()
    (root / "features").mkdir(exist_ok=True)
    demo, base = serve_in_process(root)
    try:
        with httpx.Client(timeout=60) as http:
            found = endpoints(base)
            (root / "features" / "manifest.json").write_text("{ not json")
            out = call(http, base, "status")
            assert out["ok"] is False and "manifest.json" in out["error"], out
            con = sqlite3.connect(root / "project.db")
            con.execute("ALTER TABLE rounds RENAME TO rounds_gone")
            con.commit()
            con.close()
            for name, params in found.items():
                out = call(http, base, name, *[None] * len(params))
                assert "gradio_error" not in out and out.get("ok") in (True, False), (name, out)
                if name in ("status", "round_history", "candidate_counts", "paper_preset"):
                    assert out["ok"] is False and out["error"], (name, out)
    finally:
        stop_in_process(demo)
