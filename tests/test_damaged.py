"""A damaged project says what is damaged (issue 31, point 5): `mersemi check DIR` names each
damaged part (the store's integrity and tables, a round's record or predictions, a checkpoint,
the features) and exits 1 with one line; the commands that read a damaged part say so in one
line with the way out, and a round is never trained into a broken file. A project.db that is
a link is refused unless the user says so; API numbers out of range are refused."""
from __future__ import annotations

import os
import socket
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from mersemi.engine import checkpoint
from mersemi.engine.results import Composition, RoundMetrics, RoundRecord, SplitMetrics
from mersemi.engine.synthetic import make_synthetic
from mersemi.service.actions import AppActions
from mersemi.service.project import Project
from test_cli import run, snapshot
from test_cli_errors import one_line_error

FAST = Path(__file__).parent / "fast.yaml"


@pytest.fixture(scope="module")
def native(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("native") / "data"
    make_synthetic(out, scale=0.02, seed=5)
    return out


@pytest.fixture
def project(native, tmp_path, capsys) -> Path:
    """Imported, with round 0 recorded (predictions of every kind) and its checkpoint and reuse
    files written as a round writes them (small tensors: what is checked is that they load)."""
    import torch

    root = tmp_path / "p"
    assert run(capsys, "init", root)[0] == 0
    assert run(capsys, "import", root, "--native", native)[0] == 0
    with Project.open(root) as p:
        ids = {s: p.store.samples.split_arrays(s)[0] for s in ("labeled", "unlabeled", "test")}
        C = len(p.classes)
        probs = {k: np.full((len(v), C), 1 / C, np.float32) for k, v in ids.items()}
        rid = p.store.rounds.create(config={}, config_name="fixture", thresholds={}, auto_accept=False,
                                    pid=os.getpid(), host=socket.gethostname())
        checkpoint.Checkpoint(config={}, modalities={}, n_classes=C, folds=[{"w": torch.zeros(3)}]).save(
            checkpoint.path(root / "checkpoints", rid))
        checkpoint.Reusable("k").save(checkpoint.reuse_path(root / "checkpoints"))
        p.store.rounds.complete(rid, predictions=[("pool", ids["unlabeled"], probs["unlabeled"]),
                                                  ("test", ids["test"], probs["test"]),
                                                  ("oof", ids["labeled"], probs["labeled"])],
                                decisions=[], reviewer="auto", composition=Composition(total=0).to_json(),
                                metrics=RoundRecord(metrics=RoundMetrics(cv=SplitMetrics(waf=0.5))).to_json(),
                                checkpoint=f"checkpoints/round-{rid}.pt")
    return root


def sql(root: Path, statement: str) -> None:
    con = sqlite3.connect(root / "project.db")
    con.execute(statement)
    con.commit()
    con.close()


def checked(capsys, root: Path, part: str, *needles: str) -> str:
    code, out, err = run(capsys, "check", root)
    one_line_error(code, err, "damaged part", part)
    damaged = [line for line in out.splitlines() if line.startswith("DAMAGED")]
    assert damaged and part in damaged[0], out
    for needle in needles:
        assert needle in damaged[0], (needle, out)
    return out


def test_a_sound_project_checks_ok(project, capsys):
    code, out, err = run(capsys, "check", project)
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()] == ["ok"] * 4, out   # store, round 0, reuse, features


def test_a_dropped_table(project, capsys):
    sql(project, "DROP TABLE decisions")
    checked(capsys, project, "project.db", "table decisions is missing", "restore the store")
    one_line_error(*run(capsys, "status", project)[::2], "table decisions is missing", "mersemi check")


def test_round_metrics_that_are_not_json(project, capsys):
    sql(project, "UPDATE rounds SET metrics = '{not json' WHERE id = 0")
    checked(capsys, project, "round 0", "not JSON")
    one_line_error(*run(capsys, "status", project)[::2], "not JSON", "mersemi check")


def test_a_round_record_that_is_not_a_rounds(project, capsys):
    """JSON, but not the engine's RoundRecord (a hand edit, a tool writing the table)."""
    sql(project, """UPDATE rounds SET metrics = '{"cv_waf": 0.5}' WHERE id = 0""")
    checked(capsys, project, "round 0", "record is damaged")
    one_line_error(*run(capsys, "status", project)[::2], "round 0's record is damaged", "mersemi check")


def test_a_prediction_of_one_byte(project, tmp_path, capsys):
    sql(project, "UPDATE predictions SET probs = x'00' WHERE rowid = (SELECT min(rowid) FROM predictions "
                 "WHERE kind = 'pool')")
    checked(capsys, project, "round 0", "wrong size")
    one_line_error(*run(capsys, "export", project, "--what", "predictions", "--out", tmp_path / "p.csv")[::2],
                   "prediction of sample id", "mersemi check")
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_a_damaged_checkpoint(damage, project, capsys):
    file = project / "checkpoints" / "round-0.pt"
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2] if damage == "truncated" else os.urandom(len(data)))
    checked(capsys, project, "round 0 checkpoint", "damaged checkpoint", "delete it")
    before = snapshot(project)
    one_line_error(*run(capsys, "train", project, "--config", FAST)[::2], "round-0.pt: damaged checkpoint")
    assert snapshot(project) == before   # refused before a round was recorded


def test_a_garbled_reuse_file(project, capsys):
    (project / "checkpoints" / "reuse.pt").write_bytes(b"PK\x03\x04 not really")
    checked(capsys, project, "checkpoints/reuse.pt", "damaged checkpoint")


def test_features_changed_to_nan_after_import(project, capsys):
    m = np.load(project / "features" / "text.npy", mmap_mode="r+")
    m[3, 1] = np.nan
    m.flush()
    del m
    checked(capsys, project, "features", "text.npy: row 3 holds NaN or inf")
    before = snapshot(project)
    one_line_error(*run(capsys, "train", project, "--config", FAST)[::2], "row 3 holds NaN or inf")
    assert snapshot(project) == before


def test_a_broken_page_is_found_and_no_round_is_trained_into_it(project, capsys):
    db = project / "project.db"
    con = sqlite3.connect(db)   # the one page of the threshold history: nothing train reads before it writes
    (page,) = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'threshold_changes'").fetchone()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    with open(db, "r+b") as f:
        f.seek(4096 * (page - 1) + 8)
        f.write(os.urandom(4096 - 8))
    out = checked(capsys, project, "project.db", "integrity check")
    assert "restore the store" in out
    before = snapshot(project)
    code, _, err = run(capsys, "train", project, "--config", FAST)
    one_line_error(code, err, "damaged", "mersemi check")
    assert snapshot(project) == before   # refused before a round was recorded


def test_a_store_that_is_a_link_is_refused_unless_allowed(project, tmp_path, capsys, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    os.symlink(project / "project.db", other / "project.db")
    for sub in ("features", "checkpoints", "exports"):
        (other / sub).mkdir()
    before = snapshot(project)
    for args in (["status", other], ["thresholds", other, "--set", "happy=0.5", "--by", "ann"], ["check", other]):
        one_line_error(*run(capsys, *args)[::2], "a symbolic link", "MERSEMI_ALLOW_DB_LINK=1")
    assert snapshot(project) == before
    monkeypatch.setenv("MERSEMI_ALLOW_DB_LINK", "1")
    assert run(capsys, "status", other)[0] == 0


def test_api_numbers_out_of_range_are_refused(project):
    actions = AppActions(Project.open(project))
    try:
        for out in (actions.decisions(offset=1e30), actions.decisions(limit=10, offset=2**63),
                    actions.next_candidate("all", 0.0, 10**40)):
            assert out["ok"] is False and "offset: must lie in [0, 2147483647]" in out["error"], out
        assert actions.decisions(offset=0)["ok"] is True
    finally:
        actions.shutdown()
