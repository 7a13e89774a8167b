"""NT-Xent against a hand computation, and the reference code's defect."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine.losses import Temperature, nt_xent


def test_nt_xent_matches_a_hand_computation():
    # Two samples, two views, 2-d vectors. After L2 normalisation:
    #   z1 = [(1, 0), (0, 1)],  z2 = [(0.6, 0.8), (-0.8, 0.6)] (already unit length)
    z1 = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    z2 = torch.tensor([[0.6, 0.8], [-0.8, 0.6]])
    t = 0.5
    rows = [(1.0, 0.0), (0.0, 1.0), (0.6, 0.8), (-0.8, 0.6)]

    def cos(a, b):
        return a[0] * b[0] + a[1] * b[1]

    positive = {0: 2, 1: 3, 2: 0, 3: 1}
    losses = []
    for i in range(4):
        logits = {j: cos(rows[i], rows[j]) / t for j in range(4) if j != i}
        denom = sum(math.exp(v) for v in logits.values())
        losses.append(-math.log(math.exp(logits[positive[i]]) / denom))
    expected = sum(losses) / 4
    assert nt_xent(z1, z2, t).item() == pytest.approx(expected, rel=1e-6)


def test_identical_views_score_lower_than_shuffled_ones():
    torch.manual_seed(0)
    z = torch.randn(16, 8)
    assert nt_xent(z, z, 0.1) < nt_xent(z, z[torch.randperm(16)], 0.1)


def reference_defect(z1, z2, t):
    """The published code: positive = each row's similarity with itself, temperature twice."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / t
    logits = sim / t
    return F.cross_entropy(logits, torch.arange(len(z)))


def test_reference_defect_gives_a_different_value():
    torch.manual_seed(1)
    z1, z2 = torch.randn(8, 4), torch.randn(8, 4)
    ours, theirs = nt_xent(z1, z2, 0.5), reference_defect(z1, z2, 0.5)
    assert not torch.isclose(ours, theirs)


def test_temperature_is_learnable_positive_and_clamped():
    t = Temperature(0.1, 0.05, 0.2)
    assert t().item() == pytest.approx(0.1)
    loss = nt_xent(torch.randn(4, 3), torch.randn(4, 3), t())
    loss.backward()
    assert t.log_t.grad is not None
    with torch.no_grad():
        t.log_t.fill_(math.log(10.0))
    assert t().item() == pytest.approx(0.2)
    with torch.no_grad():
        t.log_t.fill_(math.log(1e-6))
    assert t().item() == pytest.approx(0.05)
