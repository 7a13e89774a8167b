"""Contrastive losses: NT-Xent (SimCLR) with learnable, clamped temperatures, and the two
MR-CCL losses built on it, IMCL-AE (inter-modal) and IMCL-NE (clean vs noisy).

The reference code took the diagonal of the similarity matrix (each row with itself) as the
positive and divided by the temperature twice, so what it optimised was not contrastive.
Here the positive of row i is its counterpart in the other view, self-similarity is masked
out, and the temperature is applied once (tested against a hand computation).
"""
from __future__ import annotations

import math
from itertools import combinations

import torch
import torch.nn.functional as F
from torch import nn


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: torch.Tensor | float) -> torch.Tensor:
    """Normalised temperature-scaled cross-entropy between two views [N, D] of N samples:
    mean over the 2N rows of -log softmax(sim_i / t)[positive(i)], positive(i) = i +- N."""
    n = z1.shape[0]
    # In float32 even under bf16 autocast: bf16 cannot resolve similarities scaled by 1/t.
    with torch.autocast(z1.device.type, enabled=False):
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


class IMCLAE(nn.Module):
    """Inter-modal contrastive loss over the invariant features H_m of M modalities.

    Terms: NT-Xent for every pair (H_a, H_b); and, from three modalities on, each modality's
    projection proj_m(H_m) (hidden -> (M-1) hidden) against the concatenation of the other
    modalities' H (with two modalities that would be the pair again). The loss is the mean
    of all terms, each with its own temperature; 0 with a single modality."""

    def __init__(self, n_modalities: int, hidden: int, t_init: float, t_min: float, t_max: float) -> None:
        super().__init__()
        m = n_modalities
        self.pairs = list(combinations(range(m), 2))
        self.pair_temps = nn.ModuleList([Temperature(t_init, t_min, t_max) for _ in self.pairs])
        self.projs = nn.ModuleList([nn.Linear(hidden, (m - 1) * hidden) for _ in range(m)] if m >= 3 else [])
        self.proj_temps = nn.ModuleList([Temperature(t_init, t_min, t_max) for _ in self.projs])

    def forward(self, hs: list[torch.Tensor]) -> torch.Tensor:
        if len(hs) < 2:
            return hs[0].new_zeros((), dtype=torch.float32)
        terms = [nt_xent(hs[a], hs[b], t()) for (a, b), t in zip(self.pairs, self.pair_temps)]
        for i, (proj, t) in enumerate(zip(self.projs, self.proj_temps)):
            rest = torch.cat([h for j, h in enumerate(hs) if j != i], dim=1)
            terms.append(nt_xent(proj(hs[i]), rest, t()))
        return torch.stack(terms).mean()


class IMCLNE(nn.Module):
    """Noise contrastive loss: mean over modalities of NT-Xent(Fh_m, Nh_m), where Fh_m and
    Nh_m are the encoder's outputs for the clean and the noise-corrupted input."""

    def __init__(self, n_modalities: int, t_init: float, t_min: float, t_max: float) -> None:
        super().__init__()
        self.temps = nn.ModuleList([Temperature(t_init, t_min, t_max) for _ in range(n_modalities)])

    def forward(self, clean: list[torch.Tensor], noisy: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([nt_xent(f, n, t()) for f, n, t in zip(clean, noisy, self.temps)]).mean()
