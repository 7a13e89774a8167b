"""service/rounds.py without training: the engine is replaced by a stand-in that returns known
probabilities, so what a round hands the engine (gold rows, human labels, pseudo-labels, the
automatic step's picks) and what it records (composition, test metrics, pseudo-label
precision, thresholds, failures, heartbeats) are checked on numbers worked out here.
The slow tests in test_rounds.py run the same paths with the real engine."""
from __future__ import annotations

import shutil

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import mersemi.service.rounds as rounds
from mersemi.engine.config import load_config
from mersemi.engine.errors import InputError
from mersemi.engine.loop import LoopData, SelfTrainer
from mersemi.engine.selection import is_candidate
from mersemi.engine.self_training import select
from mersemi.engine.synthetic import make_synthetic
from mersemi.engine.checkpoint import Checkpoint, Reusable
from mersemi.engine.results import Calibration, RoundMetrics, SplitMetrics
from mersemi.engine.train import RoundResult, Scores
from mersemi.service.project import DecisionRequest, Project, ProjectError
from mersemi.service.review import suggest_thresholds

FAST = load_config(Path(__file__).parent / "fast.yaml")
# The fixed-threshold policy leaves the project's thresholds alone, so each test sets them; no class balance
# nor gate.
FIXED = FAST.replace(**{"self_training.policy": "fixed", "self_training.balance": "cap",
                        "self_training.balance_cap": 0.0, "self_training.gate": "none"})


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("syn") / "data"
    make_synthetic(out, scale=0.01, seed=3)   # 20 labeled, 100 pool (hidden truth), 12 test
    return out


class FakeEngine:
    """Stands in for engine.train.train_round. Pool sample j (in id order) is predicted its
    true class, except every fourth one (the next class); confidences fall from 0.99 to 0.50
    along the pool. Test sample k is predicted right except every third; out-of-fold
    predictions are right."""

    def __init__(self, project: Project) -> None:
        C = len(project.classes)
        self.C = C
        pool_ids, _, pool_true = project.store.samples.split_arrays("unlabeled")
        test_ids, test_y, _ = project.store.samples.split_arrays("test")
        self.pool_pred = np.where(np.arange(len(pool_ids)) % 4 == 0, (pool_true + 1) % C, pool_true)
        self.pool_conf = np.linspace(0.99, 0.50, len(pool_ids))
        self.test_pred = np.where(np.arange(len(test_ids)) % 3 == 0, (test_y + 1) % C, test_y)
        self.probs = {}
        for i, p, c in zip(pool_ids.tolist(), self.pool_pred, self.pool_conf):
            self.probs[i] = self._row(p, c)
        for i, p in zip(test_ids.tolist(), self.test_pred):
            self.probs[i] = self._row(p, 0.8)
        self.pool_ids, self.pool_true, self.test_ids, self.test_y = pool_ids, pool_true, test_ids, test_y
        self.calls = []

    def _row(self, cls: int, conf: float) -> np.ndarray:
        row = np.full(self.C, (1 - conf) / (self.C - 1), np.float32)
        row[cls] = conf
        return row

    def __call__(self, data, n_classes, cfg, progress=None, log_loss=0.5):
        self.calls.append(data)
        if progress:
            progress("training (fake)", 0.5)
        pool = np.stack([self.probs[int(i)] for i in data.pool_rows])
        test = np.stack([self.probs[int(i)] for i in data.test_rows])
        oof = np.stack([self._row(int(y), 0.7) for y in np.asarray(data.gold_labels)])
        metrics = RoundMetrics(cv=SplitMetrics(waf=0.5), test=SplitMetrics(n=len(test), waf=0.25, ece=0.125),
                               calibration=Calibration(log_loss=log_loss))
        saved = Checkpoint(config={}, modalities={}, n_classes=n_classes, folds=[], score_rows=data.score_rows)
        return RoundResult(Scores(pool, test, oof), metrics, saved, Reusable("fake"))

    @property
    def data(self):
        return self.calls[-1]


@pytest.fixture
def project(tmp_path, data):
    with Project.init(tmp_path / "p") as p:
        p.import_native(data)
        yield p


@pytest.fixture
def engine(project, monkeypatch) -> FakeEngine:
    fake = FakeEngine(project)
    monkeypatch.setattr(rounds, "engine_train_round", fake)
    return fake


def pool_index(engine: FakeEngine, sample_id: int) -> int:
    return int(np.flatnonzero(engine.pool_ids == sample_id)[0])


def test_round_zero_trains_on_gold_and_records_predictions_and_test_metrics(project, engine):
    progress = []
    summary = rounds.run_round(project, FIXED, config_name="fixed",
                               progress=lambda m, f: progress.append((m, f))).to_json()
    gold_ids, gold_y, _ = project.store.samples.split_arrays("labeled")
    d = engine.data
    assert d.gold_rows.tolist() == gold_ids.tolist() and d.gold_labels.tolist() == gold_y.tolist()
    assert len(d.extra_rows) == 0 and len(d.extra_labels) == 0
    assert d.pretrain_rows.tolist() == gold_ids.tolist() + engine.pool_ids.tolist()
    assert d.pool_rows.tolist() == engine.pool_ids.tolist() and d.test_rows.tolist() == engine.test_ids.tolist()
    assert d.test_labels.tolist() == engine.test_y.tolist()   # the engine measures the test split
    assert set(d.features) == {"audio", "text", "video"}

    assert summary["status"] == "done" and summary["config"] == "fixed" and not summary["auto_accept"]
    rid = summary["id"]
    ids, probs = project.store.rounds.predictions(rid, "pool")
    np.testing.assert_array_equal(probs, np.stack([engine.probs[int(i)] for i in ids]))
    oof_ids, _ = project.store.rounds.predictions(rid, "oof")
    assert oof_ids.tolist() == gold_ids.tolist()
    test_ids, _ = project.store.rounds.predictions(rid, "test")
    assert test_ids.tolist() == engine.test_ids.tolist()
    assert (project.root / "checkpoints" / f"round-{rid}.pt").is_file()
    assert project.store.rounds.get(rid).checkpoint == f"checkpoints/round-{rid}.pt"

    # the engine's metrics, stored and shown as it gave them
    record = project.round(rid).record
    assert (record.metrics.test.n, record.metrics.test.waf, record.metrics.cv.waf) == (len(engine.test_y), 0.25, 0.5)
    assert (summary["test_waf"], summary["test_ece"], summary["cv_waf"]) == (0.25, 0.125, 0.5)
    assert summary["pseudo_precision"] is None and record.auto_accept is None and summary["discard_reason"] is None

    comp = summary["composition"]
    classes = project.classes
    assert comp["gold"] == comp["total"] == len(gold_ids)
    assert (comp["pseudo"], comp["pseudo_new"], comp["verified"], comp["relabeled"], comp["labeled"]) == (0,) * 5
    assert comp["gold_per_class"] == {c: int(np.sum(gold_y == i)) for i, c in enumerate(classes)}
    assert comp["pseudo_per_class"] == comp["verified_per_class"] == comp["relabeled_per_class"] == \
        comp["labeled_per_class"] == {c: 0 for c in classes}
    assert summary["thresholds_now"] == project.thresholds()
    assert ("writing predictions", 1.0) in progress and ("training (fake)", 0.5) in progress


def test_auto_accept_takes_the_open_candidates_and_measures_their_precision(project, engine):
    rounds.run_round(project, FIXED)
    project.set_thresholds({c: 0.8 for c in project.classes}, by="ann")
    names = project.store.samples.names(engine.pool_ids.tolist())
    # Ann rejects the most confident sample, accepts the next, relabels the third and labels
    # the last (below threshold): none of them is the automatic step's to take.
    ids = engine.pool_ids.tolist()
    other = project.classes[(int(engine.pool_pred[2]) + 1) % engine.C]
    project.decide([DecisionRequest(names[ids[0]], "reject"), DecisionRequest(names[ids[1]], "accept"),
                    DecisionRequest(names[ids[2]], "relabel", other),
                    DecisionRequest(names[ids[-1]], "label", project.classes[0])], reviewer="ann")
    open_ = np.ones(len(ids), bool)
    open_[[0, 1, 2, len(ids) - 1]] = False
    auto = np.flatnonzero(is_candidate(engine.pool_pred, engine.pool_conf, open_, [0.8] * engine.C))
    assert len(auto) > 5

    summary = rounds.run_round(project, FIXED, auto_accept=True).to_json()
    d = engine.data
    auto_ids = engine.pool_ids[auto]
    # human labels first (in sample order), then the automatic picks, each with its prediction
    human_ids = [ids[1], ids[2], ids[-1]]
    assert d.extra_rows.tolist() == human_ids + auto_ids.tolist()
    assert d.extra_labels.tolist() == [int(engine.pool_pred[1]), project.class_id(other), 0] + \
        engine.pool_pred[auto].tolist()
    log = [x for x in project.store.decisions.log() if x.reviewer == "auto"]
    assert sorted(x.sample_id for x in log) == auto_ids.tolist()
    assert all(x.action == "accept" and x.label == engine.pool_pred[pool_index(engine, x.sample_id)]
               for x in log)

    comp = summary["composition"]
    # Ann's accept verified a prediction: a human label, like her relabel and her label
    assert (comp["pseudo_new"], comp["pseudo"], comp["verified"], comp["relabeled"], comp["labeled"]) == \
        (len(auto), len(auto), 1, 1, 1)
    assert comp["total"] == comp["gold"] + len(auto) + 3
    pseudo_pred = engine.pool_pred[auto]
    assert comp["pseudo_per_class"] == {c: int(np.sum(pseudo_pred == i)) for i, c in enumerate(project.classes)}
    assert comp["verified_per_class"][project.classes[int(engine.pool_pred[1])]] == 1
    assert comp["relabeled_per_class"][other] == 1 and sum(comp["relabeled_per_class"].values()) == 1
    assert comp["labeled_per_class"][project.classes[0]] == 1 and sum(comp["labeled_per_class"].values()) == 1
    assert d.extra_from_model.tolist() == [False] * 3 + [True] * len(auto)

    # precision of the tool's pseudo-labels against the truth
    rows = auto
    hit = engine.pool_pred[rows] == engine.pool_true[rows]
    assert 0 < hit.mean() < 1
    pp = summary["pseudo_precision"]
    assert pp["overall"] == round(float(hit.mean()), 4)
    for c, name in enumerate(project.classes):
        mine = engine.pool_pred[rows] == c
        assert pp[name] == (round(float(hit[mine].mean()), 4) if mine.any() else None), name

    sel = summary["auto_accept_selection"]
    assert sel["accepted"] == len(auto) and sel["policy"] == "fixed" and sel["balance_cap"] == 0.0
    assert sel["target_precision"] == FIXED.self_training.target_precision == 0.90
    assert sel["from_round"] == summary["id"] - 1
    assert sel["thresholds"] == {c: 0.8 for c in project.classes}
    assert sum(v["accepted"] for v in sel["classes"].values()) == len(auto)


def test_the_balance_cap_counts_human_labels_as_labeled_and_earlier_pseudo_labels_against_it(project, engine):
    rounds.run_round(project, FIXED)
    project.set_thresholds({c: 0.6 for c in project.classes}, by="ann")
    names = project.store.samples.names(engine.pool_ids.tolist())
    ids = engine.pool_ids.tolist()
    project.decide([DecisionRequest(names[ids[0]], "accept"), DecisionRequest(names[ids[1]], "accept"),
                    DecisionRequest(names[ids[-1]], "label", project.classes[5])], reviewer="ann")
    capped = FIXED.replace(**{"self_training.balance_cap": 1.0})
    summary = rounds.run_round(project, capped, auto_accept=True).to_json()
    _, gold_y, _ = project.store.samples.split_arrays("labeled")
    # Ann's accepts and her label are human labels: labeled, not pseudo
    labeled = np.bincount(np.r_[gold_y, engine.pool_pred[[0, 1]], 5], minlength=engine.C)
    pseudo = np.zeros(engine.C, np.int64)
    open_ = np.ones(len(ids), bool)
    open_[[0, 1, len(ids) - 1]] = False
    want = select(engine.pool_pred, engine.pool_conf, open_, [0.6] * engine.C, labeled, pseudo, 1.0)
    assert want.mask.sum() < want.candidates[0] + sum(want.candidates[1:])   # the cap bites
    got = summary["auto_accept_selection"]
    assert got["accepted"] == int(want.mask.sum()) == summary["composition"]["pseudo_new"]
    assert got["classes"] == {c: p.to_json() for c, p in want.picks(project.classes).items()}


def test_without_pseudo_labels_only_human_labels_reach_the_engine(project, engine):
    rounds.run_round(project, FIXED)
    project.set_thresholds({c: 0.6 for c in project.classes}, by="ann")
    names = project.store.samples.names(engine.pool_ids.tolist())
    ids = engine.pool_ids.tolist()
    project.decide([DecisionRequest(names[ids[0]], "accept"),
                    DecisionRequest(names[ids[1]], "relabel", project.classes[0]),
                    DecisionRequest(names[ids[2]], "label", project.classes[1])], reviewer="ann")
    no_pseudo = FIXED.replace(**{"self_training.use_pseudo_labels": False})
    before = len(project.store.decisions.log())
    summary = rounds.run_round(project, no_pseudo, auto_accept=True).to_json()
    assert engine.data.extra_rows.tolist() == [ids[0], ids[1], ids[2]]
    assert engine.data.extra_labels.tolist() == [int(engine.pool_pred[0]), 0, 1]
    assert len(project.store.decisions.log()) == before          # nothing accepted automatically
    comp = summary["composition"]
    assert (comp["pseudo"], comp["pseudo_new"], comp["verified"], comp["relabeled"], comp["labeled"]) == \
        (0, 0, 1, 1, 1)
    assert summary["auto_accept_selection"] is None


def test_nothing_new_skips_the_round_and_auto_accept_needs_a_finished_round(project, engine):
    first = rounds.run_round(project, FIXED, auto_accept=True).to_json()   # no round yet: nothing to accept
    assert first["auto_accept_selection"] is None and first["composition"]["pseudo_new"] == 0
    project.set_thresholds({c: 1.0 for c in project.classes}, by="ann")
    assert rounds.run_round(project, FIXED, auto_accept=True, skip_if_nothing_new=True) is None
    assert len(engine.calls) == 1 and len(project.status()["rounds"]) == 1
    project.set_thresholds({c: 0.9 for c in project.classes}, by="ann")
    again = rounds.run_round(project, FIXED, auto_accept=True, skip_if_nothing_new=True)
    assert again is not None and again.composition.pseudo_new > 0 and len(engine.calls) == 2


@pytest.mark.parametrize("per", ["set", "sample"])
def test_target_precision_policy_sets_the_thresholds_no_person_owns_after_the_round(project, engine, per):
    target = FAST.replace(**{"self_training.target_precision": 0.985, "self_training.target_per": per})
    summary = rounds.run_round(project, target).to_json()
    found = suggest_thresholds(project, 0.985, per)
    assert found != suggest_thresholds(project, 0.985, {"set": "sample", "sample": "set"}[per])
    assert None in found.values() and any(t is not None for t in found.values())
    want = {c: 1.0 if t is None else t for c, t in found.items()}
    assert project.thresholds() == pytest.approx(want)
    assert summary["thresholds_now"] == pytest.approx(want)
    assert summary["policy"] == "target_precision"
    assert summary["unreachable"] == [c for c, t in found.items() if t is None]
    assert [(c["class"], c["by"], c["kept_for_owner"]) for c in summary["threshold_changes"]] == \
        [(c, "policy", False) for c in project.classes]
    assert {o["set_by"] for o in project.threshold_owners().values()} == {"policy"}

    # A person's threshold is theirs: the next rounds leave it until they release it.
    sad, happy = project.classes[3], project.classes[2]
    project.set_thresholds({sad: 0.5}, by="ann")
    summary = rounds.run_round(project, target, auto_accept=True).to_json()
    assert project.thresholds()[sad] == 0.5 and project.threshold_owners()[sad]["set_by"] == "ann"
    kept = {c["class"]: c for c in summary["threshold_changes"]}
    assert kept[sad]["kept_for_owner"] and kept[sad]["by"] == "ann" and not kept[happy]["kept_for_owner"]
    project.release_thresholds([sad], by="ann")
    rounds.run_round(project, target)
    assert project.threshold_owners()[sad]["set_by"] == "policy"

    # The fixed policy sets the preset's thresholds where it may; the config key lets it set every class.
    project.set_thresholds({sad: 0.5}, by="ann")
    rounds.run_round(project, FIXED.replace(**{"self_training.thresholds": {c: 0.7 for c in project.classes}}))
    assert project.thresholds() == {c: 0.5 if c == sad else 0.7 for c in project.classes}
    rounds.run_round(project, FIXED.replace(**{"self_training.thresholds": {}, "self_training.default_threshold": 0.6,
                                               "self_training.policy_overrides_reviewers": True}))
    assert project.thresholds() == {c: 0.6 for c in project.classes}


@pytest.mark.parametrize("error, described, raised", [
    (RuntimeError("out of memory (simulated)"), "RuntimeError: out of memory (simulated)", RuntimeError),
    (InputError("features: bad matrix"), "InputError: features: bad matrix", ProjectError),
    (KeyboardInterrupt(), "interrupted", KeyboardInterrupt),
    (SystemExit(3), "stopped (exit 3)", SystemExit),
])
def test_a_failing_round_is_marked_failed_with_its_cause(project, engine, monkeypatch, error, described, raised):
    r0 = rounds.run_round(project, FIXED)
    seen = {}

    def boom(data, n_classes, cfg, progress=None):
        seen["checkpoint_dir"] = sorted(p.name for p in (project.root / "checkpoints").iterdir())
        raise error

    monkeypatch.setattr(rounds, "engine_train_round", boom)
    with pytest.raises(raised) as info:
        rounds.run_round(project, FIXED)
    if raised is ProjectError:
        assert str(info.value) == "features: bad matrix"
    failed = project.status()["rounds"][-1]
    assert failed["status"] == "failed" and failed["error"] == described
    assert project.store.rounds.current().id == r0.id
    assert sorted(p.name for p in (project.root / "checkpoints").iterdir()) == ["reuse.pt", f"round-{r0.id}.pt"]


def test_refusals_before_training(tmp_path, data, monkeypatch):
    calls = []
    monkeypatch.setattr(rounds, "engine_train_round", lambda *a, **k: calls.append(a))
    with Project.init(tmp_path / "empty") as p:
        with pytest.raises(ProjectError, match="no features imported yet"):
            rounds.run_round(p, FIXED)
    classes = ["neutral", "angry", "happy", "sad", "worried", "surprise", "bored", "calm"]
    # gold labels come only from the import, which refuses labels no round could use
    with Project.init(tmp_path / "more", classes) as p:
        with pytest.raises(ProjectError, match=r"class 'bored' has no labeled sample; every class needs at "
                                               r"least 2 \(missing: bored, calm\)$"):
            p.import_native(data)
        assert p.status()["samples"]["total"] == 0
    # a class with one gold sample cannot be trained on and evaluated at once
    import pandas as pd

    one = tmp_path / "one"
    shutil.copytree(data, one)
    samples = pd.read_csv(one / "samples.csv", dtype=str, keep_default_na=False)
    sad = samples.index[(samples["split"] == "labeled") & (samples["label"] == "sad")]
    samples.loc[sad[1:], "split"], samples.loc[sad[1:], "label"] = "unlabeled", ""
    samples.to_csv(one / "samples.csv", index=False)
    with Project.init(tmp_path / "single") as p:
        with pytest.raises(ProjectError, match=r"class 'sad' has 1 labeled sample; every class needs at least 2 "):
            p.import_native(one)
        assert p.status()["samples"]["total"] == 0
    assert calls == []


def test_heartbeat_records_progress_at_most_every_interval_and_passes_it_on(project, monkeypatch):
    from mersemi.db.errors import StoreBusy

    beats, seen = [], []

    class Rounds:
        def heartbeat(self, round_id, fraction, message):
            beats.append((round_id, fraction, message))
            if len(beats) == 2:
                raise StoreBusy()

    clock = iter([100.0, 100.0, 100.5, 101.6, 102.0, 102.6, 200.0, 200.0])
    monkeypatch.setattr(rounds, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    hb = rounds.Heartbeat(Rounds(), 7, lambda m, f: seen.append((m, f)))   # created at 100
    hb("a", 0.1)     # 100: 0 s since
    hb("b", 0.2)     # 100.5
    hb("c", 0.3)     # 101.6: over a second -> recorded
    hb("d", 0.4)     # 102.0: 0.4 s since the last
    hb("e", 0.5)     # 102.6: recorded (StoreBusy swallowed)
    assert beats == [(7, 0.3, "c"), (7, 0.5, "e")]
    assert seen == [("a", 0.1), ("b", 0.2), ("c", 0.3), ("d", 0.4), ("e", 0.5)]
    rounds.Heartbeat(Rounds(), 7, None)("quiet", 1.0)   # no callback: nothing to pass on


def test_human_labels_seed_the_graph_and_pseudo_labels_train_the_folds_only(project, engine):
    rounds.run_round(project, FIXED)                                   # round 0: gold only
    names = project.store.samples.names(engine.pool_ids.tolist())
    first = names[int(engine.pool_ids[-1])]
    project.decide([DecisionRequest(first, "label", project.classes[1])], reviewer="ann")
    project.set_thresholds({c: 0.9 for c in project.classes}, by="ann")
    s1 = rounds.run_round(project, FIXED, auto_accept=True)
    assert s1.composition.pseudo_new > 0
    d = engine.data
    assert d.extra_from_model.tolist() == [int(i) != int(engine.pool_ids[-1]) for i in d.extra_rows]
    assert (~d.extra_from_model).sum() == 1 and d.extra_from_model.sum() == s1.composition.pseudo_new


def test_an_automatic_round_worse_on_the_out_of_fold_evidence_is_discarded(project, engine):
    """Judged against the round in force on its out-of-fold log-loss: a worse automatic round is
    kept for the record only (no predictions, no pseudo-labels, no thresholds), the round before
    stays in force; a better one is kept; new human labels since make the rounds incomparable."""
    losses = iter([0.50, 0.70, 0.40, 0.90])

    def fake(data, n_classes, cfg, progress=None):
        return FakeEngine.__call__(engine, data, n_classes, cfg, progress, log_loss=next(losses))

    rounds.engine_train_round = fake     # the fixture's monkeypatch restores it afterwards
    r0 = rounds.run_round(project, FIXED).to_json()                           # 0.50
    project.set_thresholds({c: 0.9 for c in project.classes}, by="ann")
    before = (project.thresholds(), len(project.store.decisions.log()))
    worse = rounds.run_round(project, FIXED, auto_accept=True).to_json()    # 0.70: worse
    assert worse["status"] == "discarded" and worse["composition"]["pseudo_new"] > 0
    assert worse["discard_reason"] == (f"not kept: out-of-fold log-loss 0.500 -> 0.700 with "
                                    f"{worse['composition']['pseudo_new']} new pseudo-labels; round {r0['id']} "
                                    f"stays in force")
    assert project.store.rounds.current().id == r0["id"]
    assert (project.thresholds(), len(project.store.decisions.log())) == before      # nothing accepted
    assert project.store.rounds.predictions(worse["id"], "pool")[0].tolist() == []
    assert not (project.root / "checkpoints" / f"round-{worse['id']}.pt").exists()
    better = rounds.run_round(project, FIXED, auto_accept=True)             # 0.40: better
    assert better.status == "done" and project.store.rounds.current().id == better.id
    names = project.store.samples.names(engine.pool_ids.tolist())
    project.decide([DecisionRequest(names[int(engine.pool_ids[-1])], "label", project.classes[0])], reviewer="ann")
    again = rounds.run_round(project, FIXED, auto_accept=True)              # 0.90, but ann labeled meanwhile
    assert again.status == "done" and again.discard_reason is None


def test_each_fold_trains_on_the_pseudo_labels_its_own_predecessor_voted_for(project, engine):
    rounds.run_round(project, FIXED)
    project.set_thresholds({c: 0.8 for c in project.classes}, by="ann")
    # the fake's checkpoint: fold 0 votes every pool sample its prediction, fold 1 the next class
    state_file = project.root / project.store.rounds.current().checkpoint
    rows = np.r_[engine.pool_ids, engine.test_ids]
    pred = np.r_[engine.pool_pred, engine.test_pred]
    Checkpoint(config={}, modalities={}, n_classes=engine.C, folds=[], fold_key="split-0", score_rows=rows,
               fold_votes=np.stack([pred, (pred + 1) % engine.C]).astype(np.int8)).save(state_file)
    rounds.run_round(project, FIXED, auto_accept=True)
    d = engine.data
    assert d.prior.fold_key == "split-0" and d.prior.fold_states == []   # its fold models (the stand-in saved none)
    votes = d.prior.fold_votes
    assert votes.shape == (len(d.extra_rows), 2) and d.extra_from_model.all()
    at = {int(i): k for k, i in enumerate(engine.pool_ids)}
    assert votes[:, 0].tolist() == [int(engine.pool_pred[at[int(i)]]) for i in d.extra_rows]
    assert (votes[:, 1] != d.extra_labels).all()


def test_the_store_and_the_arrays_drive_the_same_loop(project, engine):
    """service/rounds.py drives engine/loop.SelfTrainer against the store; the benchmarks drive
    it against arrays: the same round 0 and automatic round pick the same pseudo-labels, for
    the same reasons, and hand the trainer the same training set."""
    cfg = FIXED.replace(**{"self_training.thresholds": {c: 0.8 for c in project.classes}})
    rounds.run_round(project, cfg)                       # the fixed policy sets 0.8 for every class
    stored = rounds.run_round(project, cfg, auto_accept=True)
    gold_ids, gold_y, _ = project.store.samples.split_arrays("labeled")
    data = LoopData(features=project.features.matrices(), gold_rows=gold_ids, gold_labels=gold_y,
                    pool_rows=engine.pool_ids, test_rows=engine.test_ids, test_labels=engine.test_y,
                    pool_truth=engine.pool_true)
    trainer = SelfTrainer(cfg, project.classes, train=engine).fit(data)
    arrays = trainer.step(data)
    auto = sorted(d.sample_id for d in project.store.decisions.log() if d.reviewer == "auto")
    assert len(auto) > 5 and arrays.choice.rows.tolist() == auto
    assert arrays.choice.why == stored.record.auto_accept and arrays.composition == stored.composition
    assert arrays.record.pseudo_precision == stored.record.pseudo_precision and stored.discard_reason is None
    by_store, by_arrays = engine.calls[1], engine.calls[3]
    for name in ("extra_rows", "extra_labels", "extra_from_model", "gold_rows", "pool_rows", "test_rows"):
        np.testing.assert_array_equal(getattr(by_store, name), getattr(by_arrays, name))
