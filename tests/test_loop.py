"""The self-training loop as an estimator (engine/loop.SelfTrainer) on arrays, with a stand-in
trainer that returns known scores: the parameters it checks, what `fit` and `step` hand the
trainer (labels, fold votes of the round in force), what `step` accepts and why, the discard
guard, the history attributes and why the loop stops. The product drives the same object
against the store (tests/test_round_steps.py); the real trainer runs in tests/test_train.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mersemi.engine.checkpoint import Checkpoint, Reusable
from mersemi.engine.config import load_config
from mersemi.engine.errors import InputError
from mersemi.engine.loop import InForce, Labels, LoopData, SelfTrainer, Termination
from mersemi.engine.results import Calibration, RoundMetrics, SplitMetrics
from mersemi.engine.self_training import select
from mersemi.engine.train import RoundResult, Scores
from mersemi.engine.vocab import Source

CLASSES = ["a", "b", "c"]
FAST = load_config(Path(__file__).parent / "fast.yaml")
# Fixed thresholds the stand-in's scores make easy to reason about; no class balance nor gate unless asked.
FIXED = FAST.replace(**{"self_training.policy": "fixed", "self_training.thresholds": {c: 0.8 for c in CLASSES},
                        "self_training.balance": "cap", "self_training.balance_cap": 0.0, "self_training.gate": "none"})
N_GOLD, N_POOL, N_TEST = 9, 30, 6


def data() -> LoopData:
    """Rows 0-8 gold (3 per class), 9-38 pool, 39-44 test; the pool's truth is row % 3."""
    rows = np.arange(N_GOLD + N_POOL + N_TEST)
    gold, pool, test = rows[:N_GOLD], rows[N_GOLD:N_GOLD + N_POOL], rows[N_GOLD + N_POOL:]
    return LoopData(features={}, gold_rows=gold, gold_labels=gold % 3, pool_rows=pool, test_rows=test,
                    test_labels=test % 3, pool_truth=pool % 3)


class Trainer:
    """Stands in for engine/train.train_round: pool row r is predicted r % 3 (every fifth the
    next class, a mistake) with a confidence falling from 0.99 along the pool; each fold votes
    for the prediction. `losses`: the out-of-fold log-loss of each round in turn."""

    def __init__(self, losses=(0.5, 0.4, 0.3, 0.2)) -> None:
        self.losses = list(losses)
        self.calls = []

    def __call__(self, ts, n_classes, cfg, progress=None) -> RoundResult:
        self.calls.append(ts)
        pred = np.where(ts.pool_rows % 5 == 0, (ts.pool_rows + 1) % 3, ts.pool_rows % 3)
        conf = np.linspace(0.99, 0.5, len(ts.pool_rows))
        pool = np.full((len(pred), n_classes), 0.0, np.float32)
        pool[:] = ((1 - conf) / (n_classes - 1))[:, None]
        pool[np.arange(len(pred)), pred] = conf
        test = np.full((len(ts.test_rows), n_classes), 1.0 / n_classes, np.float32)
        oof = np.eye(n_classes, dtype=np.float32)[ts.gold_labels]
        votes = np.tile(np.r_[pred, test.argmax(1)], (3, 1)).astype(np.int8)
        metrics = RoundMetrics(cv=SplitMetrics(waf=0.9), calibration=Calibration(log_loss=self.losses.pop(0)))
        saved = Checkpoint(config={}, modalities={}, n_classes=n_classes, folds=[{}, {}, {}], fold_key="k",
                           score_rows=ts.score_rows, fold_votes=votes)
        return RoundResult(Scores(pool, test, oof), metrics, saved, Reusable("r"))


def test_parameters_are_checked_when_set():
    for bad, match in ((dict(config={}), "config: expected an engine.config.Config"),
                       (dict(classes=["a"]), "classes: need at least 2 distinct"),
                       (dict(classes=["a", "A"]), "classes: need at least 2 distinct"),
                       (dict(max_iter=-1), "max_iter: expected None or an integer >= 0"),
                       (dict(max_iter=True), "max_iter: expected None or an integer >= 0")):
        args = dict(config=FIXED, classes=CLASSES) | bad
        with pytest.raises(InputError, match=match):
            SelfTrainer(args.pop("config"), args.pop("classes"), **args)
    with pytest.raises(InputError, match="step: no round in force yet"):
        SelfTrainer(FIXED, CLASSES).step(data())
    with pytest.raises(InputError, match="labels: 2 rows, 1 labels and 2 sources"):
        Labels(np.array([1, 2]), np.array([0]), np.array([Source.PSEUDO, Source.PSEUDO], object))


def test_fit_trains_on_gold_and_the_labels_in_force_then_steps_take_the_candidates():
    d, trainer = data(), Trainer()
    human = Labels(np.array([10]), np.array([1]), np.array([Source.LABELED], object))
    st = SelfTrainer(FIXED, CLASSES, train=trainer).fit(d, human)
    ts = trainer.calls[-1]
    assert ts.extra_rows.tolist() == [10] and ts.extra_from_model.tolist() == [False]
    assert ts.prior.fold_votes is None and ts.prior.reuse is None          # nothing in force before it
    assert st.labeled_iter_.tolist() == [0 if r == 10 else -1 for r in d.pool_rows]
    assert st.thresholds_ == [0.8] * 3 and st.in_force_.round_id == 0 and st.n_iter_ == 0

    r = st.step(d)
    ts = trainer.calls[-1]
    pool_pred = np.where(d.pool_rows % 5 == 0, (d.pool_rows + 1) % 3, d.pool_rows % 3)
    conf = np.linspace(0.99, 0.5, N_POOL)
    want = (conf >= 0.8) & (d.pool_rows != 10)                              # Ann's labeled row is not open
    assert r.choice.rows.tolist() == d.pool_rows[want].tolist() and r.kept
    assert r.choice.labels.tolist() == pool_pred[want].tolist()
    # the labels in force first, then the new pseudo-labels; each fold gets its predecessor's votes
    assert ts.extra_rows.tolist() == [10] + d.pool_rows[want].tolist()
    assert ts.extra_from_model.tolist() == [False] + [True] * int(want.sum())
    assert ts.prior.fold_key == "k" and ts.prior.fold_votes.shape == (1 + want.sum(), 3)
    assert (ts.prior.fold_votes[1:, 0] == pool_pred[want]).all() and ts.prior.reuse.key == "r"
    # why: the thresholds, and per class the candidates the cap kept
    why = r.choice.why
    assert why.thresholds == {c: 0.8 for c in CLASSES} and why.from_round == 0 and why.accepted == want.sum()
    assert {c: p.candidates for c, p in why.classes.items()} == {
        c: int(np.sum(want & (pool_pred == k))) for k, c in enumerate(CLASSES)}
    # the record the store keeps, and the history attributes
    assert r.composition.pseudo == r.composition.pseudo_new == want.sum() and r.composition.labeled == 1
    right = pool_pred[want] == d.pool_truth[want]
    assert r.record.pseudo_precision["overall"] == round(float(right.mean()), 4) < 1
    assert st.labeled_iter_[want].tolist() == [1] * int(want.sum()) and st.n_iter_ == 1
    assert st.labels_.rows.tolist() == ts.extra_rows.tolist() and st.in_force_.round_id == 1

    assert st.step(d) is None and st.termination_condition_ == Termination.NO_CHANGE   # nothing new passes
    assert len(trainer.calls) == 2 and st.n_iter_ == 1


def test_a_worse_round_is_not_kept_and_the_loop_stops_there():
    d, trainer = data(), Trainer(losses=(0.5, 0.7))
    st = SelfTrainer(FIXED, CLASSES, train=trainer).fit(d)
    before = (st.in_force_, st.labels_, st.thresholds_)
    r = st.step(d)
    assert not r.kept and st.termination_condition_ == Termination.NOT_BETTER
    assert r.record.discard_reason == (f"not kept: out-of-fold log-loss 0.500 -> 0.700 with {len(r.choice.rows)} new "
                                       "pseudo-labels; round 0 stays in force")
    assert (st.in_force_, st.labels_, st.thresholds_) == before       # the round before stays in force
    assert (st.labeled_iter_ == -1).all() and st.history_[-1] is r

    # new human labels since: the rounds are not comparable on pseudo-labels alone, so it is kept
    st2 = SelfTrainer(FIXED, CLASSES, train=Trainer(losses=(0.5, 0.7))).fit(d)
    st2.labels_ = st2.labels_.plus(np.array([38]), np.array([2]), Source.LABELED)
    assert st2.step(d).kept


def test_max_iter_and_the_balance_cap_and_the_ablation_without_pseudo_labels():
    d = data()
    st = SelfTrainer(FIXED, CLASSES, max_iter=1, train=Trainer()).fit(d)
    assert st.step(d, thresholds=[0.95, 0.95, 0.95]).kept
    assert st.step(d) is None and st.termination_condition_ == Termination.MAX_ITER
    capped = FIXED.replace(**{"self_training.balance_cap": 1.0})
    st = SelfTrainer(capped, CLASSES, train=Trainer()).fit(d)
    choice = st.choose(d.gold_labels)
    inf = st.in_force_
    want = select(inf.pool_pred, inf.pool_conf, np.ones(N_POOL, bool), [0.8] * 3, [3, 3, 3], [0, 0, 0], 1.0)
    assert choice.rows.tolist() == d.pool_rows[want.mask].tolist()
    assert [p.accepted for p in choice.why.classes.values()] == want.kept and choice.why.balance_cap == 1.0
    trainer = Trainer()
    off = SelfTrainer(FIXED.replace(**{"self_training.use_pseudo_labels": False}), CLASSES, train=trainer)
    off.fit(d, Labels(np.array([10, 11]), np.array([1, 2]), np.array([Source.LABELED, Source.PSEUDO], object)))
    assert off.choose(d.gold_labels) is None and trainer.calls[-1].extra_rows.tolist() == [10]
    assert (off.history_[-1].composition.labeled, off.history_[-1].composition.pseudo) == (1, 0)


def test_resume_gives_the_round_in_force_kept_elsewhere_and_closed_rows_stay_out():
    """The product's way: each round in a new process, the round in force read from the store."""
    d, trainer = data(), Trainer(losses=(0.3, 0.2))
    first = SelfTrainer(FIXED, CLASSES, train=trainer).fit(d).history_[-1]
    inf = InForce(7, d.pool_rows, first.in_force.pool_pred, first.in_force.pool_conf, first.result.checkpoint,
                  log_loss=0.3, human_digest=Labels().human_digest(), gold=N_GOLD)
    st = SelfTrainer(FIXED, CLASSES, train=trainer).resume(inf, Labels(), closed=np.array([9, 11]))
    with pytest.raises(InputError, match="thresholds: none proposed by a round here"):
        st.step(d)
    r = st.step(d, thresholds=[0.8] * 3, round_id=8)
    assert r.round_id == 8 and r.choice.why.from_round == 7 and r.kept
    assert 9 not in r.choice.rows and 11 not in r.choice.rows and 10 in r.choice.rows
    assert not np.isin([9, 11], r.choice.rows).any()
