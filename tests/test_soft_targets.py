"""Votes as soft targets (issue 27, item 4): the round trainer takes an optional class
distribution per extra row (TrainSet.extra_targets). One-hot distributions train exactly as the
labels alone do; a split vote trains on both classes; a malformed one is a clear error."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mersemi.engine.config import load_config
from mersemi.engine.errors import InputError
from mersemi.engine.folds import make_folds
from mersemi.engine.train import train_round
from test_train import CFG, clusters, trainset


def with_extra(n_extra: int = 30):
    feats, y, all_y, n_gold, rows = clusters()
    extra_rows = rows[n_gold:n_gold + n_extra]
    return feats, y, all_y, n_gold, rows, extra_rows, all_y[extra_rows].astype(np.int64)


def test_one_hot_targets_train_exactly_as_the_labels_alone():
    feats, y, _, n_gold, rows, extra_rows, extra_y = with_extra()
    plain = trainset(feats, y, n_gold, rows, (extra_rows, extra_y))
    one_hot = dataclasses.replace(plain, extra_targets=np.eye(3, dtype=np.float32)[extra_y])
    folds = make_folds(one_hot, 3, 3, 0)
    assert all(f.train_targets is not None and (f.train_targets.argmax(1) == f.train_labels).all() for f in folds)
    assert make_folds(plain, 3, 3, 0)[0].train_targets is None
    a, b = train_round(plain, 3, CFG), train_round(one_hot, 3, CFG)
    np.testing.assert_array_equal(a.scores.pool, b.scores.pool)
    np.testing.assert_array_equal(a.scores.oof, b.scores.oof)


def test_split_votes_train_on_both_classes():
    feats, y, _, n_gold, rows, extra_rows, extra_y = with_extra()
    hard = trainset(feats, y, n_gold, rows, (extra_rows, extra_y))
    # every extra row's votes split between its class and the next one
    split = 0.5 * np.eye(3, dtype=np.float32)[extra_y] + 0.5 * np.eye(3, dtype=np.float32)[(extra_y + 1) % 3]
    soft = dataclasses.replace(hard, extra_targets=split)
    floors = load_config()                               # the default's step floors: 8 epochs move too little here
    cfg = CFG.replace(**{"pretrain.min_steps": floors.pretrain.min_steps,
                         "finetune.min_steps": floors.finetune.min_steps})
    a, b = train_round(hard, 3, cfg), train_round(soft, 3, cfg)
    at = np.arange(len(extra_rows))          # the extra rows are the first pool rows
    mass = lambda r: r.scores.pool[at, (extra_y + 1) % 3].mean()   # noqa: E731
    assert mass(b) > mass(a) + 0.05


@pytest.mark.parametrize("bad", [lambda t: t[:-1], lambda t: t * 2, lambda t: np.where(t > 0, np.nan, t),
                                 lambda t: t - 0.5 * (t == 0), lambda t: t[:, :2]],
                         ids=["a row short", "sums to 2", "NaN", "negative", "a class short"])
def test_malformed_targets_are_clear_errors(bad):
    feats, y, _, n_gold, rows, extra_rows, extra_y = with_extra()
    data = trainset(feats, y, n_gold, rows, (extra_rows, extra_y))
    data = dataclasses.replace(data, extra_targets=bad(np.eye(3, dtype=np.float32)[extra_y]))
    with pytest.raises(InputError, match=r"extra_targets: expected one class distribution per extra row \[30, 3\]"):
        train_round(data, 3, CFG)
