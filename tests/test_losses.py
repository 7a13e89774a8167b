"""NT-Xent against a hand computation, the reference code's defect, IMCL-AE and IMCL-NE."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mersemi.engine.losses import IMCLAE, IMCLNE, Temperature, nt_xent


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


def test_reference_defect_gives_a_different_value_and_ignores_the_pairing():
    z1 = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    z2 = torch.tensor([[0.6, 0.8], [-0.8, 0.6]])
    t = 0.5
    # The defect by hand: row i's "positive" is itself (cos = 1), every logit is cos / t^2,
    # and the self-similarity stays in the denominator.
    rows = [(1.0, 0.0), (0.0, 1.0), (0.6, 0.8), (-0.8, 0.6)]
    losses = []
    for i in range(4):
        logits = [(rows[i][0] * r[0] + rows[i][1] * r[1]) / t ** 2 for r in rows]
        losses.append(-math.log(math.exp(logits[i]) / sum(math.exp(v) for v in logits)))
    defect = sum(losses) / 4
    assert reference_defect(z1, z2, t).item() == pytest.approx(defect, rel=1e-6)
    assert nt_xent(z1, z2, t).item() != pytest.approx(defect, rel=1e-3)

    # Swapping which sample of view 2 belongs to which sample of view 1 changes the
    # contrastive loss but not the defect's: it never looks at the pairs.
    swapped = z2.flip(0)
    assert reference_defect(z1, swapped, t).item() == pytest.approx(defect, rel=1e-6)
    assert nt_xent(z1, swapped, t).item() != pytest.approx(nt_xent(z1, z2, t).item(), rel=1e-3)


def test_nt_xent_stays_float32_under_autocast():
    z1, z2 = torch.randn(6, 4), torch.randn(6, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = nt_xent(z1, z2, 0.05)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(nt_xent(z1, z2, 0.05).item(), rel=1e-6)


def test_imcl_ae_is_zero_with_one_modality_and_the_pair_loss_with_two():
    torch.manual_seed(0)
    h = [torch.randn(8, 4), torch.randn(8, 4)]
    assert IMCLAE(1, 4, 0.1, 0.01, 1.0)(h[:1]).item() == 0.0
    two = IMCLAE(2, 4, 0.1, 0.01, 1.0)
    assert len(two.projs) == 0
    assert two(h).item() == pytest.approx(nt_xent(h[0], h[1], 0.1).item(), rel=1e-5)


@pytest.mark.parametrize("m", [3, 4])
def test_imcl_ae_averages_every_pair_and_each_modality_against_the_rest(m):
    torch.manual_seed(0)
    hidden = 4
    hs = [torch.randn(8, hidden) for _ in range(m)]
    loss = IMCLAE(m, hidden, 0.2, 0.01, 1.0)
    assert [p.out_features for p in loss.projs] == [(m - 1) * hidden] * m
    terms = [nt_xent(hs[a], hs[b], 0.2) for a in range(m) for b in range(a + 1, m)]
    for i in range(m):
        rest = torch.cat([hs[j] for j in range(m) if j != i], dim=1)
        terms.append(nt_xent(loss.projs[i](hs[i]), rest, 0.2))
    assert len(terms) == m * (m - 1) // 2 + m
    assert loss(hs).item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-5)


def test_imcl_ne_is_the_mean_over_modalities_of_clean_vs_noisy():
    torch.manual_seed(0)
    clean = [torch.randn(8, 4) for _ in range(3)]
    noisy = [c + 0.1 * torch.randn_like(c) for c in clean]
    expected = sum(nt_xent(c, n, 0.1) for c, n in zip(clean, noisy)) / 3
    assert IMCLNE(3, 0.1, 0.01, 1.0)(clean, noisy).item() == pytest.approx(expected.item(), rel=1e-5)


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
