"""The round trainer on small generated data: learning, fold bookkeeping, oversampling,
reproducibility, saved ensembles, bad input."""
from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch

from engine.config import load_config
from engine.errors import InputError
from engine.train import TrainSet, _epoch_order, predict, train_round

CFG = load_config().replace(**{
    "model.hidden": 32, "model.classifier_dims": [32, 16], "pretrain.epochs": 1,
    "pretrain.batch_size": 128, "finetune.folds": 3, "finetune.epochs": 8, "finetune.patience": 0,
    "finetune.batch_size": 16})


def clusters(n_per_class=(60, 50, 20), dims=(8, 12), seed=0, pool=200):
    """Gaussian classes visible in every modality; rows: gold, then pool."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    y_pool = rng.integers(0, len(n_per_class), pool)
    all_y = np.concatenate([y, y_pool])
    feats = {}
    for m, d in enumerate(dims):
        centers = rng.normal(0, 2.0, (len(n_per_class), d))
        feats[f"m{m}"] = (centers[all_y] + rng.normal(0, 1.0, (len(all_y), d))).astype(np.float16)
    n_gold = len(y)
    rows = np.arange(len(all_y))
    return feats, y, all_y, n_gold, rows


def trainset(feats, y, n_gold, rows, extra=None):
    extra_rows, extra_y = extra if extra else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    return TrainSet(features=feats, gold_rows=np.arange(n_gold), gold_labels=y.astype(np.int64),
                    extra_rows=extra_rows, extra_labels=extra_y, pretrain_rows=rows,
                    score_rows=rows[n_gold:])


def test_learns_separable_data_and_scores_the_pool():
    feats, y, all_y, n_gold, rows = clusters()
    steps = []
    r = train_round(trainset(feats, y, n_gold, rows), 3, CFG, progress=lambda m, f: steps.append(f))
    assert r.metrics["cv_waf"] > 0.9
    assert r.oof_probs.shape == (n_gold, 3) and r.score_probs.shape == (len(rows) - n_gold, 3)
    np.testing.assert_allclose(r.score_probs.sum(1), 1, atol=1e-5)
    assert (r.score_probs.argmax(1) == all_y[n_gold:]).mean() > 0.9
    assert steps == sorted(steps) and steps[-1] == 1.0  # progress is monotone and finishes
    assert sum(f["n_eval"] for f in r.metrics["folds"]) == n_gold


def test_extra_rows_join_training_folds_only():
    feats, y, all_y, n_gold, rows = clusters()
    pool = rows[n_gold:]
    extra = (pool[:50], all_y[pool[:50]].astype(np.int64))
    r = train_round(trainset(feats, y, n_gold, rows, extra), 3, CFG)
    for f in r.metrics["folds"]:
        assert f["n_train"] == n_gold - f["n_eval"] + 50
    # Out-of-fold predictions exist for exactly the gold rows, each evaluated once.
    assert r.oof_probs.shape[0] == n_gold and np.all(r.oof_probs.sum(1) > 0.99)


def test_oversampling_tops_every_class_up_to_the_largest():
    y = np.array([0] * 50 + [1] * 10 + [2] * 3)
    order = _epoch_order(y, True, 3, np.random.default_rng(0))
    assert np.bincount(y[order]).tolist() == [50, 50, 50]
    plain = _epoch_order(y, False, 3, np.random.default_rng(0))
    assert sorted(plain.tolist()) == list(range(len(y)))


def test_same_seed_same_probabilities():
    feats, y, _, n_gold, rows = clusters()
    a = train_round(trainset(feats, y, n_gold, rows), 3, CFG)
    b = train_round(trainset(feats, y, n_gold, rows), 3, CFG)
    np.testing.assert_array_equal(a.score_probs, b.score_probs)
    np.testing.assert_array_equal(a.oof_probs, b.oof_probs)


def test_saved_ensemble_predicts_the_same():
    feats, y, _, n_gold, rows = clusters()
    r = train_round(trainset(feats, y, n_gold, rows), 3, CFG)
    buf = io.BytesIO()
    torch.save(r.state, buf)
    buf.seek(0)
    state = torch.load(buf)
    np.testing.assert_allclose(predict(state, feats, rows[n_gold:]), r.score_probs, atol=1e-6)


@pytest.mark.parametrize("dims", [(8,), (8, 12, 6, 5)])
def test_one_and_four_modalities(dims):
    feats, y, _, n_gold, rows = clusters(dims=dims)
    r = train_round(trainset(feats, y, n_gold, rows), 3, CFG)
    assert r.metrics["cv_waf"] > 0.8


def test_baseline_model_trains():
    cfg = CFG.replace(**{"model.kind": "attention_baseline", "pretrain.enabled": False,
                         "loss.imcl_ae": 0.0, "loss.imcl_ne": 0.0})
    feats, y, _, n_gold, rows = clusters()
    assert train_round(trainset(feats, y, n_gold, rows), 3, cfg).metrics["cv_waf"] > 0.8


def test_tiny_class_warns_and_training_goes_on():
    feats, y, _, n_gold, rows = clusters(n_per_class=(60, 50, 2))
    with pytest.warns(UserWarning, match="class 2 has 2 gold samples"):
        r = train_round(trainset(feats, y, n_gold, rows), 3, CFG)
    assert any("class 2" in w for w in r.metrics["warnings"])
    assert r.oof_probs.shape == (n_gold, 3)


def test_class_without_gold_sample_is_an_error_before_training():
    feats, y, _, n_gold, rows = clusters()
    calls = []
    with pytest.raises(InputError, match="class 3 has no gold-labeled sample"):
        train_round(trainset(feats, y, n_gold, rows), 4, CFG.replace(**{"finetune.folds": 2}),
                    progress=lambda m, f: calls.append(m))
    assert calls == []


def test_no_pool_trains_and_scores_nothing():
    feats, y, _, n_gold, rows = clusters(pool=0)
    data = trainset(feats, y, n_gold, rows)
    r = train_round(data, 3, CFG)
    assert r.score_probs.shape == (0, 3)


def test_bad_rows_are_errors():
    feats, y, _, n_gold, rows = clusters()
    data = trainset(feats, y, n_gold, rows)
    data.score_rows = np.array([0, len(rows) + 5])
    with pytest.raises(InputError, match="score_rows"):
        train_round(data, 3, CFG)
    data = trainset(feats, y, n_gold, rows, (np.array([0]), np.array([1])))
    with pytest.raises(InputError, match="both gold and extra"):
        train_round(data, 3, CFG)
