"""SoftMatch's soft weights as the suite tries them (bench/trial_weights.py): the weights, and
that they reach the fold targets the engine trains on, and only while the trial runs."""
from __future__ import annotations

import sys
from types import SimpleNamespace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from trial_weights import softmatch_weights, weighted_folds  # noqa: E402

import mersemi.engine.train as engine_train  # noqa: E402


def test_softmatch_weighs_one_above_the_mean_and_less_the_further_below():
    w = softmatch_weights(np.array([0.9, 0.8, 0.6, 0.3]))   # mean 0.65
    assert w[0] == w[1] == 1.0
    assert 1.0 > w[2] > w[3] > 0.0
    assert np.allclose(softmatch_weights(np.full(3, 0.7)), 1.0)   # no spread: all weigh 1


def test_the_weights_scale_the_pool_rows_targets_in_every_fold_and_only_while_open():
    gold = np.arange(8)
    data = SimpleNamespace(gold_rows=gold, gold_labels=np.repeat([0, 1], 4), extra_rows=np.array([20, 21]),
                           extra_labels=np.array([1, 0]), extra_from_model=np.array([True, True]), extra_targets=None)
    make = engine_train.make_folds
    with weighted_folds({20: 0.25}):
        folds = engine_train.make_folds(data, 2, 2, 0)
    assert engine_train.make_folds is make
    for f in folds:
        t = f.train_targets
        at = {r: t[i] for i, r in enumerate(f.train_rows.tolist())}
        assert np.allclose(at[20], [0, 0.25]) and np.allclose(at[21], [1, 0])   # 21 has no weight: 1
        assert all(np.isclose(at[r].sum(), 1.0) for r in gold.tolist() if r in at)
    assert all(f.train_targets is None for f in engine_train.make_folds(data, 2, 2, 0))
