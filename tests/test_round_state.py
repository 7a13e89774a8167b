"""The page's account of a round is the store's (issue 31): a round whose process is gone is not
shown as training, and a round the store holds done is not reported failed because the training
process could not say so (a database server away for a moment when it ended). Real SQLite
projects and real processes; only the training process's report is replaced, by a real child
whose round the store records."""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from sqlalchemy import text

from app_fixtures import make_review_project
from mersemi.service import training_actions
from mersemi.service.actions import AppActions


@pytest.fixture
def app(tmp_path):
    project = make_review_project(tmp_path / "proj")
    yield AppActions(project)
    project.close()


def finished_process() -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child


def test_a_round_whose_process_is_gone_is_not_shown_training(app):
    store = app.project.store
    gone = finished_process()
    rid = store.rounds.create(config={}, config_name="default", thresholds={}, auto_accept=False,
                              pid=gone.pid, host=socket.gethostname())
    out = app.training.training_status()
    assert out["ok"] and out["running"] is False and out["where"] == "here"
    assert store.rounds.get(rid).status == "running"     # reading the status wrote nothing


def test_a_round_the_store_holds_done_is_reported_done_when_the_process_could_not_say(app, monkeypatch):
    store = app.project.store

    def lost_report(root, config_file, config, auto_accept, progress, store_, on_start=None):
        child = finished_process()
        on_start(child)
        with store.db.engine.begin() as c:    # the round this process trained, as the store holds it
            c.execute(text("UPDATE rounds SET pid = :pid, host = :host WHERE id = 0"),
                      {"pid": child.pid, "host": socket.gethostname()})
        raise RuntimeError("mersemi: error: database unreachable at db:5432, nothing written; try again")

    monkeypatch.setattr(training_actions, "train_in_child", lost_report)
    out = app.training.train_round(config="default", wait=True)
    assert out["ok"], out
    assert out["round"]["id"] == 0 and out["round"]["status"] == "done"
    assert app.training.training_status()["error"] is None


def test_a_failure_the_store_does_not_contradict_stays_a_failure(app, monkeypatch):
    def failed(root, config_file, config, auto_accept, progress, store_, on_start=None):
        on_start(finished_process())          # it recorded no round
        raise RuntimeError("no features imported yet")

    monkeypatch.setattr(training_actions, "train_in_child", failed)
    out = app.training.train_round(config="default", wait=True)
    assert out["ok"] is False and "no features imported yet" in out["error"]
