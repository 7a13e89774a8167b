"""Noise embedding enhancement: a diffusion-style forward process on feature vectors.

    N = sqrt(abar_k) * F + sqrt(1 - abar_k) * eps,   eps ~ N(0, I),   abar_k = prod_{i<=k} (1 - beta_i)

with k drawn uniformly from {0..K-1}, one per sample (vectorised), or one per batch as the
reference code does. Each modality owns its scheduler (the reference code applied the audio
schedule to every modality).
"""
from __future__ import annotations

import math

import torch
from torch import nn

SCHEDULES = ("linear", "scaled_linear", "cosine", "sigmoid")


def beta_schedule(kind: str, steps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """Betas of the forward process, float64 [steps]."""
    if kind == "linear":
        return torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
    if kind == "scaled_linear":
        return torch.linspace(beta_start ** 0.5, beta_end ** 0.5, steps, dtype=torch.float64) ** 2
    if kind == "sigmoid":
        return torch.sigmoid(torch.linspace(-6, 6, steps, dtype=torch.float64)) * (beta_end - beta_start) + beta_start
    if kind == "cosine":
        # Nichol & Dhariwal (2021): abar(t) = cos^2(((t/K + s) / (1 + s)) * pi/2), s = 0.008.
        # beta_start/beta_end do not apply; betas are capped at 0.999 as in the paper.
        s = 0.008
        t = torch.arange(steps + 1, dtype=torch.float64) / steps
        abar = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
    raise ValueError(f"unknown beta schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")


class NoiseScheduler(nn.Module):
    """Holds abar_k for one modality and corrupts batches of its features."""

    alphas_cumprod: torch.Tensor  # a buffer

    def __init__(self, kind: str, steps: int, beta_start: float, beta_end: float,
                 per_sample: bool = True) -> None:
        super().__init__()
        abar = torch.cumprod(1 - beta_schedule(kind, steps, beta_start, beta_end), dim=0)
        # Not persistent: it is a function of the config, which the checkpoint carries anyway.
        self.register_buffer("alphas_cumprod", abar.float(), persistent=False)
        self.per_sample = per_sample

    @property
    def steps(self) -> int:
        return self.alphas_cumprod.numel()

    def add_noise(self, x: torch.Tensor, k: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """sqrt(abar_k) x + sqrt(1 - abar_k) eps, with k of shape [N] or [1] (broadcast)."""
        abar = self.alphas_cumprod[k].to(x.dtype).unsqueeze(1)
        return abar.sqrt() * x + (1 - abar).sqrt() * eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """A noisy copy of a batch x [N, D], k drawn per sample (or once per batch)."""
        k = torch.randint(0, self.steps, (x.shape[0] if self.per_sample else 1,), device=x.device)
        return self.add_noise(x, k, torch.randn_like(x))
