"""The gates tried on the suite (bench/trial_gates.py) hold back what they say, through the loop's
one gate hook, so the suite measures them with the product's step, balance and guard."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from trial_gates import GatedTrainer, density_scale  # noqa: E402

from mersemi.engine.config import load_config  # noqa: E402
from mersemi.engine.loop import InForce, Labels, LoopData, SelfTrainer  # noqa: E402

CLASSES = ["a", "b"]


def _two_blobs():
    """Class a around (0, 0), class b around (10, 0), three views of the same points; 4 gold
    samples per class; the model calls six of a's pool samples b with high confidence."""
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0, 1, (60, 2)), rng.normal(0, 1, (60, 2)) + [10, 0]]
    y = np.repeat([0, 1], 60)
    gold = np.r_[0:4, 60:64]
    pool = np.setdiff1d(np.arange(120), gold)
    data = LoopData(features={v: x.copy() for v in ("audio", "text", "video")}, gold_rows=gold,
                    gold_labels=y[gold], pool_rows=pool, test_rows=np.zeros(0, np.int64),
                    test_labels=np.zeros(0, np.int64))
    pred = y[pool].copy()
    wrong = pool[(y[pool] == 0)][:6]
    pred[np.isin(pool, wrong)] = 1
    inf = InForce(round_id=0, pool_rows=pool, pool_pred=pred, pool_conf=np.full(len(pool), 0.95))
    return data, inf, wrong


def _choose(trainer: SelfTrainer, data: LoopData, inf: InForce):
    trainer.resume(inf, Labels())
    trainer.thresholds_ = [0.9, 0.9]
    return trainer.choose(data.gold_labels)


def _config():
    return load_config(ROOT / "configs" / "default.yaml").replace(
        **{"self_training.balance": "cap", "self_training.balance_cap": 0.0})


def test_the_spreading_gate_holds_back_what_the_neighbours_call_otherwise():
    data, inf, wrong = _two_blobs()
    plain = _choose(SelfTrainer(_config(), CLASSES), data, inf)
    assert np.isin(wrong, plain.rows).all()            # without a gate the threshold alone decides
    gated = _choose(GatedTrainer(_config(), CLASSES, gate="spreading", data=data), data, inf)
    assert not np.isin(wrong, gated.rows).any()
    assert gated.why.classes["b"].disagreed == len(wrong) and gated.why.classes["a"].disagreed == 0
    assert len(gated.rows) == len(plain.rows) - len(wrong)


def test_the_density_gate_scales_confidence_down_away_from_the_class_labels():
    data, inf, wrong = _two_blobs()
    gated = _choose(GatedTrainer(_config(), CLASSES, gate="density", data=data), data, inf)
    # the six called b sit among a's gold samples, far from b's: their confidence falls below 0.9
    assert not np.isin(wrong, gated.rows).any()
    assert gated.why.classes["b"].disagreed >= len(wrong)


def test_density_scale_keeps_the_dense_half_and_gives_nothing_to_a_class_without_labels():
    x_lab, y_lab = np.array([[0.0, 0.0], [0.1, 0.0]]), np.array([0, 0])
    x_pool = np.array([[0.0, 0.1], [0.05, 0.0], [3.0, 0.0], [4.0, 0.0], [0.0, 0.0]])
    pred = np.array([0, 0, 0, 0, 1])
    s = density_scale(x_pool, pred, x_lab, y_lab)
    assert s[0] == s[1] == 1.0                  # the denser half of class 0's pool keeps its confidence
    assert 0 <= s[3] < s[2] < 1.0               # farther from 0's labels, lower
    assert s[4] == 0.0                          # class 1 has no labeled sample
