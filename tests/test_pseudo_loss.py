"""The doubly robust loss (self_training.pseudo_loss: doubly_robust; engine/folds.py): each fold
trains its gold rows once more with the round in force's out-of-fold classes, weighted so that a
gold row the teacher got right weighs as a pseudo-label and one it got wrong pushes away from the
wrong class; the loop hands the round in force's out-of-fold classes on; a real round says it used
them."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mersemi.engine.errors import InputError
from mersemi.engine.folds import make_folds
from mersemi.engine.loop import SelfTrainer
from mersemi.engine.models import cross_entropy
from mersemi.engine.train import Prior, RoundResult, Scores, TrainSet, train_round
from test_loop import CLASSES, FIXED, Trainer, data
from test_train import CFG, clusters, trainset

DR = {"self_training.pseudo_loss": "doubly_robust"}


def _with_pseudo(n_gold=30, n_pseudo=12, n_human=3) -> TrainSet:
    rng = np.random.default_rng(0)
    gold_labels = np.arange(n_gold) % 3
    extra = np.arange(n_gold, n_gold + n_pseudo + n_human)
    return TrainSet(features={"m": rng.normal(size=(n_gold + len(extra), 4)).astype(np.float32)},
                    gold_rows=np.arange(n_gold), gold_labels=gold_labels, extra_rows=extra,
                    extra_labels=extra % 3, pretrain_rows=np.arange(n_gold + len(extra)), pool_rows=extra,
                    extra_from_model=np.r_[np.ones(n_pseudo, bool), np.zeros(n_human, bool)])


def test_each_gold_row_trains_on_its_class_and_against_the_teacher_class_where_that_is_wrong():
    ts = _with_pseudo()
    teacher = ts.gold_labels.copy()
    teacher[::4] = (teacher[::4] + 1) % 3      # the teacher got every fourth gold row wrong
    teacher[5] = -1                           # and never saw one
    for fold in make_folds(ts, 3, 3, 0, teacher=teacher):
        tr = np.setdiff1d(np.arange(len(ts.gold_rows)), fold.eval_pos)
        assert not np.isin(ts.gold_rows[fold.eval_pos], fold.train_rows).any()
        t = fold.train_targets
        assert t.shape == (len(tr) + 15, 3)
        n_t, m, n = int((teacher[tr] >= 0).sum()), 12, len(tr) + 3
        labeled, against = (n_t + m) / n, 1 - (n_t + m) / n_t
        for i, r in enumerate(tr):
            expected = labeled * np.eye(3)[ts.gold_labels[r]]
            if teacher[r] >= 0:
                expected += against * np.eye(3)[teacher[r]]
            np.testing.assert_allclose(t[i], expected, rtol=1e-6, atol=1e-6)
        # pseudo-labels weigh 1 (as in plain training), human labels as gold ones
        np.testing.assert_allclose(t[len(tr):], np.r_[np.eye(3)[ts.extra_labels[:12]],
                                                      labeled * np.eye(3)[ts.extra_labels[12:]]], rtol=1e-6)


def test_a_gold_row_the_teacher_got_right_weighs_as_a_pseudo_label():
    ts = dataclasses.replace(_with_pseudo(n_human=0), extra_from_model=np.ones(12, bool),
                             extra_rows=np.arange(30, 42), extra_labels=np.arange(30, 42) % 3)
    teacher = ts.gold_labels.copy()
    teacher[:6] = (teacher[:6] + 1) % 3
    fold = make_folds(ts, 3, 3, 0, teacher=teacher)[0]
    tr = np.setdiff1d(np.arange(30), fold.eval_pos)
    t = fold.train_targets[:len(tr)]
    right, wrong = tr >= 6, tr < 6
    np.testing.assert_allclose(t[right], np.eye(3)[ts.gold_labels[tr[right]]], rtol=1e-5, atol=1e-6)
    assert (t[wrong][np.arange(wrong.sum()), ts.gold_labels[tr[wrong]]] > 1).all()
    assert (t[wrong][np.arange(wrong.sum()), teacher[tr[wrong]]] < 0).all()


def test_without_pseudo_labels_or_a_teacher_class_the_folds_are_plain():
    ts = _with_pseudo()
    no_pseudo = dataclasses.replace(ts, extra_from_model=np.zeros(15, bool))
    blind = np.full(30, -1)
    for a, b in ((make_folds(no_pseudo, 3, 3, 0, teacher=ts.gold_labels), make_folds(no_pseudo, 3, 3, 0)),
                 (make_folds(ts, 3, 3, 0, teacher=blind), make_folds(ts, 3, 3, 0))):
        for fa, fb in zip(a, b):
            assert fa.train_targets is None
            np.testing.assert_array_equal(fa.train_rows, fb.train_rows)


def test_the_push_from_a_wrong_class_stops_below_uniform():
    """-log p of a class the row must not be has no floor; the loss stops pushing once p < 1/C."""
    target = torch.tensor([[0.0, -1.0, 0.0]])
    pushed = torch.tensor([[0.0, -30.0, 0.0]], requires_grad=True)   # class 1 already far below 1/3
    loss = cross_entropy(pushed, target)
    loss.backward()
    assert (pushed.grad == 0).all() and loss.item() == pytest.approx(-np.log(3))
    mild = torch.tensor([[0.0, 1.0, 0.0]], requires_grad=True)       # class 1 above 1/3: pushed down
    cross_entropy(mild, target).backward()
    assert mild.grad[0, 1] > 0
    probs = torch.tensor([[0.2, 0.5, 0.3]])
    np.testing.assert_allclose(cross_entropy(torch.log(probs), probs).item(),
                               torch.nn.functional.cross_entropy(torch.log(probs), probs).item(), rtol=1e-6)


class Teacher(Trainer):
    """Trainer whose out-of-fold class is wrong on every fourth gold row (the next class)."""

    def __call__(self, ts, n_classes, cfg, progress=None) -> RoundResult:
        r = super().__call__(ts, n_classes, cfg, progress)
        wrong = np.where(np.arange(len(ts.gold_rows)) % 4 == 0, (ts.gold_labels + 1) % n_classes, ts.gold_labels)
        return dataclasses.replace(r, scores=Scores(r.scores.pool, r.scores.test,
                                                    np.eye(n_classes, dtype=np.float32)[wrong]))


def test_the_loop_hands_the_round_in_force_out_of_fold_classes_to_the_next_round():
    d, trainer = data(), Teacher()
    SelfTrainer(FIXED.replace(**DR), CLASSES, train=trainer).fit(d).step(d)
    first, second = trainer.calls
    expected = np.where(np.arange(len(d.gold_rows)) % 4 == 0, (d.gold_labels + 1) % 3, d.gold_labels)
    np.testing.assert_array_equal(second.prior.oof_classes, expected)
    assert first.prior.oof_classes is None


def test_a_round_on_the_doubly_robust_loss_trains_and_says_so():
    feats, y, all_y, n_gold, rows = clusters(pool=120)
    pool = rows[n_gold:]
    extra = pool[:40]
    teacher = y.copy()
    teacher[::5] = (teacher[::5] + 1) % 3
    ts = TrainSet(features=feats, gold_rows=np.arange(n_gold), gold_labels=y.astype(np.int64), extra_rows=extra,
                  extra_labels=all_y[extra].astype(np.int64), pretrain_rows=rows, pool_rows=pool,
                  extra_from_model=np.ones(len(extra), bool), prior=Prior(oof_classes=teacher))
    cfg = CFG.replace(**{"pretrain.enabled": False})
    plain, robust = train_round(ts, 3, cfg), train_round(ts, 3, cfg.replace(**DR))
    assert not any("doubly robust" in n for n in plain.metrics.notes)
    assert f"doubly robust loss: 40 pseudo-labels against the round before's out-of-fold classes of {n_gold} " \
           f"gold samples (80% right)" in robust.metrics.notes
    assert not np.allclose(plain.scores.pool, robust.scores.pool)
    assert robust.metrics.cv.waf > 0.9
    # no teacher: the plain loss, and the note says why
    blind = train_round(dataclasses.replace(ts, prior=None), 3, cfg.replace(**DR))
    np.testing.assert_array_equal(blind.scores.pool, plain.scores.pool)
    assert any("doubly robust loss: no out-of-fold classes" in n for n in blind.metrics.notes)


@pytest.mark.parametrize("scale, learns", [(0.0, False), (1.0, True)])
def test_the_folds_targets_reach_the_loss(monkeypatch, scale, learns):
    """Every row's target scaled by 0: the classifier learns nothing; by 1: it learns."""
    import mersemi.engine.train as train_module

    real = train_module.make_folds

    def weighted(*args, **kwargs):
        return [dataclasses.replace(f, train_targets=scale * np.eye(3, dtype=np.float32)[f.train_labels])
                for f in real(*args, **kwargs)]

    monkeypatch.setattr(train_module, "make_folds", weighted)
    feats, y, all_y, n_gold, rows = clusters()
    cfg = CFG.replace(**{"pretrain.enabled": False, "loss.imcl_ae": 0.0, "loss.imcl_ne": 0.0})
    waf = train_round(trainset(feats, y, n_gold, rows), 3, cfg).metrics.cv.waf
    assert (waf > 0.9) if learns else (waf < 0.7), waf


@pytest.mark.parametrize("bad", [np.zeros(3, np.int64), np.full(130, 3), np.full(130, 0.5)])
def test_malformed_out_of_fold_classes_are_one_clear_error(bad):
    feats, y, all_y, n_gold, rows = clusters()
    ts = TrainSet(features=feats, gold_rows=np.arange(n_gold), gold_labels=y.astype(np.int64),
                  extra_rows=np.zeros(0, np.int64), extra_labels=np.zeros(0, np.int64), pretrain_rows=rows,
                  pool_rows=rows[n_gold:], prior=Prior(oof_classes=bad))
    with pytest.raises(InputError, match=r"prior.oof_classes: expected 130 class ids in -1..2"):
        train_round(ts, 3, CFG)
