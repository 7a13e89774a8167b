"""A round across processes under torchrun (gloo, 2 CPU processes) against the same round in one
process, and a rank that dies: the round fails cleanly."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app_fixtures import FAST_PRESET, synthetic_project

pytestmark = [pytest.mark.distributed, pytest.mark.slow]
CLI = [sys.executable, "-m", "mersemi.ui.cli"]


def train(project: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "train", str(project), "--config", str(FAST_PRESET), "--json", *extra],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", **(env or {})))


def predictions(project: Path) -> list[tuple]:
    con = sqlite3.connect(f"file:{project / 'project.db'}?mode=ro", uri=True)
    try:
        return con.execute("SELECT kind, sample_id FROM predictions ORDER BY kind, sample_id").fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    for name in ("one", "two"):
        synthetic_project(root / name, root / "data", scale=0.05).close()
    return root / "one", root / "two"


def test_a_round_on_two_processes_matches_the_round_in_one(projects):
    one, two = projects
    alone = train(one)
    assert alone.returncode == 0, alone.stderr
    both = train(two, "--nproc", "2")
    assert both.returncode == 0, both.stderr
    r1 = json.loads(alone.stdout.splitlines()[-1])
    r2 = json.loads([line for line in both.stdout.splitlines() if line.startswith("{")][-1])
    assert r2["status"] == "done" and r2["id"] == r1["id"] == 0
    # every pool and test sample scored once, every gold sample predicted out of fold once
    p1, p2 = predictions(one), predictions(two)
    assert p2 == p1 and len(set(p2)) == len(p2)
    assert abs(r2["test_waf"] - r1["test_waf"]) <= 0.01
    assert r2["eval_scheme"] == r1["eval_scheme"]


def test_a_rank_that_dies_fails_the_round_and_stores_no_prediction(projects):
    _, two = projects
    before = predictions(two)
    dead = train(two, "--nproc", "2", env={"MERSEMI_CRASH_AT": "rank1:fine-tune"})
    assert dead.returncode != 0
    # rank 0 is stopped by torchrun: it marks the round failed on its way out, or, killed while
    # it waited on the dead rank, the next command that opens the project does
    subprocess.run([*CLI, "status", str(two)], capture_output=True, check=True)
    con = sqlite3.connect(f"file:{two / 'project.db'}?mode=ro", uri=True)
    rounds = con.execute("SELECT id, status, error FROM rounds ORDER BY id").fetchall()
    con.close()
    assert rounds[-1][1] == "failed" and rounds[-1][0] == 1, rounds
    assert predictions(two) == before                      # round 0's, nothing of round 1


@pytest.mark.parametrize("nproc, message", [("0", "--nproc: must be >= 1"), ("-2", "--nproc: must be >= 1"),
                                            ("999", "--nproc: this machine can run at most"),
                                            ("two", "--nproc: not a number")])
def test_a_bad_process_count_is_one_line(projects, nproc, message):
    one, _ = projects
    out = train(one, "--nproc", nproc)
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
