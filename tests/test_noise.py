"""Noise embedding enhancement: beta schedules and the forward process."""
from __future__ import annotations

import math

import pytest
import torch

from mersemi.engine.noise import SCHEDULES, NoiseScheduler, beta_schedule


def test_scaled_linear_matches_the_paper_formula():
    betas = beta_schedule("scaled_linear", 100, 0.001, 0.1)
    assert betas[0].item() == pytest.approx(0.001)
    assert betas[-1].item() == pytest.approx(0.1)
    k = 37
    expected = (math.sqrt(0.001) + k * (math.sqrt(0.1) - math.sqrt(0.001)) / 99) ** 2
    assert betas[k].item() == pytest.approx(expected)


@pytest.mark.parametrize("kind", SCHEDULES)
def test_every_schedule_gives_valid_betas(kind):
    betas = beta_schedule(kind, 50, 0.001, 0.1)
    assert betas.shape == (50,)
    assert torch.all(betas > 0) and torch.all(betas < 1)
    abar = torch.cumprod(1 - betas, 0)
    assert torch.all(abar[1:] < abar[:-1])  # more noise at every step


def test_unknown_schedule_is_an_error():
    with pytest.raises(ValueError, match="unknown beta schedule"):
        beta_schedule("quadratic", 10, 0.001, 0.1)


def test_one_timestep_per_sample_is_vectorised():
    torch.manual_seed(0)
    sched = NoiseScheduler("scaled_linear", 100, 0.001, 0.1, per_sample=True)
    x = torch.ones(4096, 256)
    noisy = sched(x)
    assert noisy.shape == x.shape
    # With x = 1, each row's mean estimates sqrt(abar_k): rows differ because k differs.
    row_means = noisy.mean(1)
    assert row_means.std() > 0.1
    assert row_means.min() > 0 and row_means.max() < 1.3


def test_one_timestep_per_batch_shares_the_scale():
    torch.manual_seed(0)
    sched = NoiseScheduler("linear", 100, 0.001, 0.1, per_sample=False)
    x = torch.ones(64, 2048)
    row_means = sched(x).mean(1)
    assert row_means.std() < 0.05  # same k for every row: only eps varies


def test_noise_level_follows_the_schedule():
    sched = NoiseScheduler("scaled_linear", 10, 0.001, 0.1)
    abar = torch.cumprod(1 - beta_schedule("scaled_linear", 10, 0.001, 0.1), 0)
    torch.testing.assert_close(sched.alphas_cumprod, abar.float())
    # abar_0 = 1 - beta_0, abar_1 = (1 - beta_0)(1 - beta_1), written out:
    b0 = 0.001
    b1 = (math.sqrt(0.001) + (math.sqrt(0.1) - math.sqrt(0.001)) / 9) ** 2
    assert sched.alphas_cumprod[1].item() == pytest.approx((1 - b0) * (1 - b1), rel=1e-6)


def test_add_noise_is_the_forward_process_formula_with_one_k_per_row():
    sched = NoiseScheduler("linear", 100, 0.001, 0.1)
    x, eps = torch.randn(3, 5), torch.randn(3, 5)
    k = torch.tensor([0, 50, 99])
    abar = sched.alphas_cumprod
    expected = torch.stack([abar[k[i]].sqrt() * x[i] + (1 - abar[k[i]]).sqrt() * eps[i] for i in range(3)])
    torch.testing.assert_close(sched.add_noise(x, k, eps), expected)


def test_schedules_differ_and_cosine_ignores_the_beta_range():
    curves = {kind: torch.cumprod(1 - beta_schedule(kind, 100, 0.001, 0.1), 0) for kind in SCHEDULES}
    for a in SCHEDULES:
        for b in SCHEDULES:
            if a < b:
                assert not torch.allclose(curves[a], curves[b]), (a, b)
    torch.testing.assert_close(beta_schedule("cosine", 100, 0.001, 0.1), beta_schedule("cosine", 100, 0.01, 0.2))
