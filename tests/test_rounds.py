"""Training rounds through the orchestration layer: auto-accept, the training set each round
uses, failures, killed processes, projects without a pool; on a SQLite project and on one
whose store is on PostgreSQL."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mersemi.service.rounds
from mersemi.engine.config import load_config
from mersemi.engine.synthetic import make_synthetic
from mersemi.engine.thresholds import quantize
from mersemi.service.exports import labels_frame
from mersemi.service.project import DecisionRequest, Project, ProjectError
from mersemi.service.review import auto_accept_preview
from mersemi.service.rounds import run_round

FAST = load_config(Path(__file__).parent / "fast.yaml")
# every candidate: no class balance, no gate
EVERY = FAST.replace(**{"self_training.balance": "cap", "self_training.balance_cap": 0.0, "self_training.gate": "none"})
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("syn") / "data"
    make_synthetic(out, scale=0.05, seed=1)
    return out


@pytest.fixture
def project(tmp_path, data, db_url):
    with Project.init(tmp_path / "p", db_url=None if db_url.startswith("sqlite") else db_url) as p:
        p.import_native(data)
        yield p


def test_auto_accept_adds_undecided_candidates_as_logged_decisions(project, monkeypatch):
    monkeypatch.setattr(mersemi.service.rounds, "PROGRESS_EVERY_S", 0.0)  # beat on every progress call
    r0 = run_round(project, FAST).to_json()
    rnd = project.store.rounds.get(r0["id"])
    assert rnd.heartbeat_at > rnd.started_at    # the training process beat while it trained
    assert r0["composition"]["pseudo"] == 0
    ids, pred, conf = project.store.rounds.pool_confidences(r0["id"])
    t = quantize(float(np.quantile(conf, 0.5)))  # the quick preset is not confident: take half the pool
    project.set_thresholds({c: t for c in project.classes}, by="test")
    # A reviewer's rejection keeps that sample out of the automatic selection.
    top = int(ids[np.argmax(conf)])
    name = project.store.samples.names([top])[top]
    project.decide([DecisionRequest(name, "reject")], reviewer="ann")

    expected = int(np.sum(conf >= t)) - 1
    r1 = run_round(project, EVERY, auto_accept=True).to_json()
    assert r1["composition"]["pseudo_new"] == expected == r1["composition"]["pseudo"]
    assert sum(r1["pseudo_labels"].values()) == expected
    assert r1["train_size"] == r1["composition"]["gold"] + expected
    log = project.store.decisions.log()
    assert sum(d.reviewer == "auto" for d in log) == expected
    assert project.store.decisions.in_force([top])[top].action == "reject"
    # the tool's labels are pseudo-labels in the export, status and the log alike
    labels = labels_frame(project)
    assert (labels["source"] == "pseudo").sum() == expected == sum(project.status()["labels"]["pseudo"].values())
    assert {d.source for d in log if d.reviewer == "auto"} == {"pseudo"}
    # The pool's hidden labels give the precision of those pseudo-labels (evaluation only).
    assert 0 <= r1["pseudo_precision"]["overall"] <= 1
    # The evaluation folds hold gold samples only: OOF predictions cover exactly them.
    oof_ids, _ = project.store.rounds.predictions(r1["id"], "oof")
    gold_ids, _, _ = project.store.samples.split_arrays("labeled")
    assert oof_ids.tolist() == gold_ids.tolist()


def test_the_preview_holds_back_the_candidates_the_fold_models_disagree_on_as_the_round_does(project):
    r0 = run_round(project, FAST).to_json()
    ids, pred, conf = project.store.rounds.pool_confidences(r0["id"])
    project.set_thresholds({c: quantize(float(np.quantile(conf, 0.5))) for c in project.classes}, by="test")
    gated = EVERY.replace(**{"self_training.gate": "folds"})
    plain, shown = auto_accept_preview(project, EVERY), auto_accept_preview(project, gated)
    assert shown["candidates"] == plain["candidates"] == plain["total"] and plain["disagreed"] == 0
    assert 0 < shown["disagreed"] < shown["candidates"]   # the quick preset's fold models disagree on some
    assert shown["total"] == plain["total"] - shown["disagreed"]
    r1 = run_round(project, gated, auto_accept=True).to_json()
    assert r1["composition"]["pseudo_new"] == shown["total"]
    record = project.round(r1["id"]).record.auto_accept
    assert sum(c.disagreed for c in record.classes.values()) == shown["disagreed"]


def test_the_doubly_robust_loss_takes_the_round_in_force_out_of_fold_classes_from_the_store(project):
    r0 = run_round(project, FAST).to_json()
    ids, pred, conf = project.store.rounds.pool_confidences(r0["id"])
    project.set_thresholds({c: quantize(float(np.quantile(conf, 0.5))) for c in project.classes}, by="test")
    oof_ids, oof = project.store.rounds.predictions(r0["id"], "oof")
    gold_ids, gold_y, _ = project.store.samples.split_arrays("labeled")
    right = np.mean(oof.argmax(1) == gold_y)
    r1 = run_round(project, EVERY.replace(**{"self_training.pseudo_loss": "doubly_robust"}), auto_accept=True).to_json()
    new = r1["composition"]["pseudo_new"]
    assert new > 0
    assert f"doubly robust loss: {new} pseudo-labels against the round before's out-of-fold classes of " \
           f"{len(gold_ids)} gold samples ({right:.0%} right)" in r1["notes"]


def test_without_pseudo_labels_config_trains_on_human_labels_only(project):
    r0 = run_round(project, FAST).to_json()
    ids, pred, conf = project.store.rounds.pool_confidences(r0["id"])
    names = project.store.samples.names(ids[:3].tolist())
    other = project.classes[(int(pred[2]) + 1) % len(project.classes)]
    project.decide([DecisionRequest(names[int(ids[0])], "accept"),
                    DecisionRequest(names[int(ids[1])], "accept"),
                    DecisionRequest(names[int(ids[2])], "relabel", other)], reviewer="ann")
    r1 = run_round(project, FAST).to_json()
    # ann's accepts verified the predictions: human labels, kept without pseudo-labels
    assert (r1["composition"]["verified"], r1["composition"]["relabeled"], r1["composition"]["pseudo"]) == (2, 1, 0)
    no_pseudo = FAST.replace(**{"self_training.use_pseudo_labels": False})
    r2 = run_round(project, no_pseudo, auto_accept=True).to_json()
    assert (r2["composition"]["verified"], r2["composition"]["relabeled"], r2["composition"]["pseudo"]) == (2, 1, 0)
    assert r2["auto_accept_selection"] is None


def test_a_failing_round_is_marked_failed_and_the_previous_stays_in_force(project, monkeypatch):
    r0 = run_round(project, FAST).to_json()

    def boom(*a, **k):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(mersemi.service.rounds, "engine_train_round", boom)
    with pytest.raises(RuntimeError):
        run_round(project, FAST)
    rounds = project.status()["rounds"]
    assert [r["status"] for r in rounds] == ["done", "failed"]
    assert "out of memory" in rounds[1]["error"]
    assert project.store.rounds.current().id == r0["id"]
    assert not (project.root / "checkpoints" / "round-1.pt").exists()


def test_class_without_labeled_sample_is_refused_at_import(tmp_path):
    folder = tmp_path / "d"
    make_synthetic(folder, scale=0.05, seed=2)
    df = pd.read_csv(folder / "samples.csv", dtype=str, keep_default_na=False)
    df.loc[(df["split"] == "labeled") & (df["label"] == "surprise"), "split"] = "test"
    df.to_csv(folder / "samples.csv", index=False)
    with Project.init(tmp_path / "p") as p:
        with pytest.raises(ProjectError, match="'surprise' has no labeled sample"):
            p.import_native(folder)
        assert p.status()["samples"]["total"] == 0


def test_project_without_pool_trains_with_empty_selection(tmp_path):
    folder = tmp_path / "d"
    make_synthetic(folder, scale=0.05, seed=2)
    df = pd.read_csv(folder / "samples.csv", dtype=str, keep_default_na=False)
    keep = df["split"] != "unlabeled"
    df[keep].to_csv(folder / "samples.csv", index=False)
    for m in ("audio", "text", "video"):
        np.save(folder / f"{m}.npy", np.load(folder / f"{m}.npy")[keep.to_numpy()])
    with Project.init(tmp_path / "p") as p:
        p.import_native(folder)
        r0 = run_round(p, FAST).to_json()
        assert r0["status"] == "done"
        r1 = run_round(p, FAST, auto_accept=True).to_json()
        assert r1["status"] == "done" and r1["composition"]["pseudo"] == 0
        assert len(p.store.decisions.decided_ids()) == 0   # nothing auto-accepted


def _start_train(root: Path) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("mersemi")
    cfg = Path(__file__).parent / "slow.yaml"
    return subprocess.Popen([str(exe), "train", str(root), "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_running(project: Project, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until the round is in training: running, with the progress its training records."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        if any(r.status == "running" and r.progress is not None for r in project.store.rounds.unfinished()):
            return
        time.sleep(0.2)
    raise AssertionError("the round never got into training: "
                         f"{[(r.id, r.status, r.progress) for r in project.store.rounds.unfinished()]}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_round_is_failed_and_the_project_stays_usable(sig, project, tmp_path):
    r0 = run_round(project, FAST).to_json()
    proc = _start_train(project.root)
    _wait_running(project, proc)
    project.close()
    os.kill(proc.pid, sig)
    proc.wait(timeout=60)
    with Project.open(project.root) as p:  # SIGKILL: noticed here, at the next start
        rounds = p.status()["rounds"]
        assert [r["status"] for r in rounds] == ["done", "failed"]
        assert p.store.rounds.current().id == r0["id"]
        assert len(p.store.rounds.predictions(rounds[1]["id"], "pool")[0]) == 0
        assert not list((p.root / "checkpoints").glob(f"round-{rounds[1]['id']}.*"))
        run_round(p, FAST)  # and the next round trains
        assert [r["status"] for r in p.status()["rounds"]] == ["done", "failed", "done"]
