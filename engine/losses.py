"""Contrastive losses: NT-Xent (SimCLR) with learnable, clamped temperatures.

The reference code took the diagonal of the similarity matrix (each row with itself) as the
positive and divided by the temperature twice, so what it optimised was not contrastive.
Here the positive of row i is its counterpart in the other view, self-similarity is masked
out, and the temperature is applied once (tested against a hand computation).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: torch.Tensor | float) -> torch.Tensor:
    """Normalised temperature-scaled cross-entropy between two views [N, D] of N samples."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, positives)


class Temperature(nn.Module):
    """A learnable temperature, kept positive through its log and clamped to [low, high]."""

    def __init__(self, init: float, low: float, high: float) -> None:
        super().__init__()
        self.log_t = nn.Parameter(torch.tensor(math.log(init)))
        self.low, self.high = low, high

    def forward(self) -> torch.Tensor:
        return self.log_t.exp().clamp(self.low, self.high)
