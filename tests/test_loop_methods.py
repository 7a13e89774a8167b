"""The self-training methods the config chooses (engine/loop.SelfTrainer, engine/self_training.py,
engine/reverse_validation.py): class-balanced acceptance by quota, which never leaves a class
without pseudo-labels while others get them, and the reverse-validation guard, which discards a
round whose pseudo-labels contradict the gold labels. The stand-in trainer of tests/test_loop.py
gives known scores; the reverse model is the real logistic regression on real features."""
from __future__ import annotations

import numpy as np
import pytest

from mersemi.engine.config import ConfigError
from mersemi.engine.loop import Choice, InForce, Labels, LoopData, SelfTrainer
from mersemi.engine.results import AutoAccept
from mersemi.engine.reverse_validation import reverse_validation
from mersemi.engine.self_training import select
from test_loop import CLASSES, FIXED, N_GOLD, N_POOL, N_TEST, Trainer, data


def clustered() -> LoopData:
    """data() with features: three tight clusters, row r in cluster r % 3 (its truth)."""
    rng = np.random.default_rng(0)
    rows = np.arange(N_GOLD + N_POOL + N_TEST)
    centres = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    x = (centres[rows % 3] + rng.normal(0, 0.3, (len(rows), 2))).astype(np.float32)
    d = data()
    return LoopData(features={"view": x}, gold_rows=d.gold_rows, gold_labels=d.gold_labels, pool_rows=d.pool_rows,
                    test_rows=d.test_rows, test_labels=d.test_labels, pool_truth=d.pool_truth)


def test_quota_gives_every_class_its_labeled_share_paced_by_the_scarcest_class():
    pred = np.r_[np.zeros(50, int), np.ones(10, int), np.full(5, 2)]
    conf = np.full(len(pred), 0.99)
    capped = select(pred, conf, np.ones(len(pred), bool), [0.9] * 3, [2, 2, 2], balance_cap=2.0)
    quota = select(pred, conf, np.ones(len(pred), bool), [0.9] * 3, [2, 2, 2], balance_cap=2.0, balance="quota")
    assert capped.kept == [30, 10, 5]   # the cap lets one easy class outnumber another sixfold
    assert quota.kept == [5, 5, 5] and quota.candidates == [50, 10, 5]
    assert select(pred, conf, np.ones(len(pred), bool), [0.9] * 3, [4, 2, 2], balance="quota").kept == [10, 5, 5]
    # pseudo-labels already in force count: class 2 caught up earlier, so class 0 may take more now
    assert select(pred, conf, np.ones(len(pred), bool), [0.9] * 3, [2, 2, 2], [0, 5, 5], balance="quota").kept \
        == [10, 5, 5]
    with pytest.raises(ValueError, match="balance must be one of cap, quota, no_starve"):
        select(pred, conf, np.ones(len(pred), bool), [0.9] * 3, [2, 2, 2], balance="spread")


def test_quota_never_leaves_a_class_without_pseudo_labels_while_others_get_them():
    """The jvowels 2 % failure: one class with no candidate, hundreds for the others."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        pred = rng.integers(0, 4, 80)
        pred[pred == rng.integers(0, 4)] = rng.integers(0, 4)   # some draws leave a class out
        conf = rng.uniform(0.5, 1.0, 80)
        labeled = rng.integers(2, 9, 4)
        sel = select(pred, conf, np.ones(80, bool), [0.8] * 4, labeled, balance="quota")
        kept = np.array(sel.kept)
        assert (kept <= sel.candidates).all()
        if (kept > 0).any():
            assert (kept > 0).all(), (sel.candidates, labeled.tolist(), sel.kept)


def test_no_starve_is_the_cap_until_a_class_would_be_left_without_pseudo_labels():
    pred = np.r_[np.zeros(50, int), np.ones(10, int), np.full(5, 2)]
    conf, open_ = np.full(len(pred), 0.99), np.ones(len(pred), bool)
    assert select(pred, conf, open_, [0.9] * 3, [2, 2, 2], balance_cap=2.0, balance="no_starve").kept == [30, 10, 5]
    # class 2 has no candidate: nothing, unless it has pseudo-labels in force already
    assert select(pred, conf, open_, [0.9, 0.9, 1.0], [2, 2, 2], balance_cap=2.0, balance="no_starve").kept \
        == [0, 0, 0]
    assert select(pred, conf, open_, [0.9, 0.9, 1.0], [2, 2, 2], [0, 0, 5], balance_cap=2.0,
                  balance="no_starve").kept == [30, 10, 0]


def test_the_loop_with_quota_takes_nothing_when_a_class_has_no_candidate():
    d = data()
    cfg = FIXED.replace(**{"self_training.thresholds": {"a": 0.8, "b": 0.8, "c": 1.0}})
    assert len(SelfTrainer(cfg, CLASSES, train=Trainer()).fit(d).choose(d.gold_labels).rows) > 0
    quota = SelfTrainer(cfg.replace(**{"self_training.balance": "quota"}), CLASSES, train=Trainer()).fit(d)
    choice = quota.choose(d.gold_labels)
    assert choice is not None and len(choice.rows) == 0
    assert [p.accepted for p in choice.why.classes.values()] == [0, 0, 0]


def choice_of(d: LoopData, labels: np.ndarray) -> Choice:
    why = AutoAccept(thresholds={c: 0.8 for c in CLASSES}, classes={}, accepted=len(d.pool_rows))
    return Choice(d.pool_rows, labels, np.full(len(d.pool_rows), 0.9), why)


@pytest.mark.parametrize("wrong", [False, True])
def test_the_reverse_guard_discards_a_round_whose_pseudo_labels_contradict_the_gold_labels(wrong):
    d = clustered()
    labels = (d.pool_truth + 1) % 3 if wrong else d.pool_truth   # each cluster called by another's name
    reverse = FIXED.replace(**{"self_training.guard": "reverse"})
    # out-of-fold log-loss falls round after round: the log-loss guard alone keeps every round
    trainer = SelfTrainer(reverse, CLASSES, train=Trainer()).fit(d)
    r = trainer.step(d, choice_of(d, labels))
    rv = r.record.reverse_validation
    assert rv is not None and rv.reference == 1.0 and rv.pseudo == N_POOL and rv.gold == N_GOLD
    if wrong:
        assert not r.kept and rv.reverse == 0.0 and rv.upper < 0
        assert "a model trained on its 30 pseudo-labels alone predicts the gold samples worse than round 0" \
            in r.record.discard_reason
        assert trainer.in_force_.round_id == 0 and not trainer.labels_.from_model.any()
    else:
        assert r.kept and rv.reverse == 1.0 and rv.upper == 0.0
    plain = SelfTrainer(FIXED, CLASSES, train=Trainer()).fit(d)
    r = plain.step(d, choice_of(d, labels))
    assert r.kept and r.record.reverse_validation is None


def test_the_reverse_guard_reads_the_reference_kept_elsewhere_and_only_gold_rows_it_knows():
    d = clustered()
    reverse = FIXED.replace(**{"self_training.guard": "reverse"})
    fitted = SelfTrainer(reverse, CLASSES, train=Trainer()).fit(d)
    inf = fitted.in_force_
    # the product's store gives the round in force back with its out-of-fold classes (service/rounds.py)
    resumed = SelfTrainer(reverse, CLASSES, train=Trainer([0.4, 0.3])).resume(
        InForce(inf.round_id, inf.pool_rows, inf.pool_pred, inf.pool_conf, inf.checkpoint, inf.log_loss,
                inf.human_digest, inf.gold, inf.oof_rows[:6], inf.oof_pred[:6]), Labels())
    r = resumed.step(d, choice_of(d, (d.pool_truth + 1) % 3))
    assert not r.kept and r.record.reverse_validation.gold == 6
    # without the reference (an older round), the log-loss guard alone judges
    bare = SelfTrainer(reverse, CLASSES, train=Trainer([0.4, 0.3])).resume(
        InForce(inf.round_id, inf.pool_rows, inf.pool_pred, inf.pool_conf, inf.checkpoint, inf.log_loss,
                inf.human_digest, inf.gold), Labels())
    r = bare.step(d, choice_of(d, (d.pool_truth + 1) % 3))
    assert r.kept and r.record.reverse_validation is None


def test_reverse_validation_weighs_each_class_alike_and_one_missing_class_shows():
    """Pseudo-labels that are right but leave a class out: the reverse model cannot predict it,
    and a class of two gold samples weighs as much as the others."""
    d = clustered()
    keep = d.pool_truth != 2
    gold = np.r_[np.arange(0, 20, 3), np.arange(1, 20, 3), [2, 5]]   # class 2: two gold samples of 16
    y = gold % 3
    rv = reverse_validation(d.features, d.pool_rows[keep], d.pool_truth[keep], gold, y, y, level=0.9, seed=0)
    assert rv.reverse == pytest.approx(2 / 3, abs=1e-4) and rv.difference == pytest.approx(-1 / 3, abs=1e-4)
    assert rv.upper == pytest.approx(-1 / 3, abs=1e-4)   # class 2's two samples are always both missed
    one = reverse_validation(d.features, d.pool_rows[d.pool_truth == 0], np.zeros(10, int), gold, y, y,
                             level=0.9, seed=0)
    assert one.reverse == pytest.approx(1 / 3, abs=1e-4)


def test_the_methods_options_are_validated_and_named_when_bad():
    for key, bad in (("balance", "spread"), ("guard", "strict"), ("guard_level", 0.5), ("guard_level", 1.0)):
        with pytest.raises(ConfigError, match=f"self_training.{key}"):
            FIXED.replace(**{f"self_training.{key}": bad})


class SplitVotes(Trainer):
    """Trainer whose first fold model votes for another class on the first ten pool rows."""

    def __call__(self, ts, n_classes, cfg, progress=None):
        result = super().__call__(ts, n_classes, cfg, progress)
        votes = result.checkpoint.fold_votes
        votes[0, :10] = (votes[0, :10] + 1) % n_classes
        return result


def test_the_folds_gate_takes_only_candidates_every_fold_model_votes_for():
    d = data()
    plain = SelfTrainer(FIXED, CLASSES, train=SplitVotes()).fit(d).choose(d.gold_labels)
    gated = SelfTrainer(FIXED.replace(**{"self_training.gate": "folds"}), CLASSES, train=SplitVotes()).fit(d)
    choice = gated.choose(d.gold_labels)
    split = d.pool_rows[:10]
    assert np.isin(split, plain.rows).sum() > 0   # the threshold alone takes some of them
    assert not np.isin(split, choice.rows).any()
    assert set(choice.rows.tolist()) == set(plain.rows.tolist()) - set(split.tolist())
    # the record says how many candidates the gate held back, per class, beside the candidates
    held = {c: int(np.isin(split, plain.rows[plain.labels == k]).sum()) for k, c in enumerate(CLASSES)}
    assert {c: p.disagreed for c, p in choice.why.classes.items()} == held
    assert {c: p.candidates for c, p in choice.why.classes.items()} == \
        {c: p.candidates for c, p in plain.why.classes.items()}
    assert all(p.disagreed == 0 for p in plain.why.classes.values())
