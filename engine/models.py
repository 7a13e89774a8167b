"""Models: MR-CCL (the paper's) and MERTools' attention-fusion baseline.

Both take a list of per-modality feature batches (in the project's modality order) and
share one small interface used by the trainer:

    model(xs) -> voted logits [N, C]
    model.losses(xs, y, weights) -> {term: tensor}   (only terms whose weight is > 0)

MR-CCL, per modality m (see METHOD.md):
    Fh_m = E_m(F_m)        Nh_m = E_m(noise_m(F_m))       H_m = Inv(Fh_m)
    logits = sum_m w_m * Clf_m(Fh_m) + w_fusion * Clf_fusion(concat_m Fh_m)
    IMCL-AE: NT-Xent over every pair (H_a, H_b), and (M >= 3) each proj_m(H_m) against the
             concatenation of the other modalities' H.  IMCL-NE: NT-Xent(Fh_m, Nh_m).
"""
from __future__ import annotations

from itertools import combinations

import torch
import torch.nn.functional as F
from torch import nn

from .config import Config
from .losses import Temperature, nt_xent
from .noise import NoiseScheduler


# ---------------------------------------------------------------------- encoders

class MLPEncoder(nn.Module):
    """Linear-ReLU-Dropout stack to the hidden size (as in MERTools' baseline encoders)."""

    def __init__(self, d_in: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        for i in range(layers):
            mods += [nn.Linear(d_in if i == 0 else hidden, hidden), nn.ReLU(), nn.Dropout(dropout)]
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TransformerVEncoder(nn.Module):
    """The paper's encoder: one post-norm Transformer encoder layer (d_model = input dim,
    ReLU feed-forward) over a length-1 sequence, then a Linear to the hidden size.

    Over a single token the attention weights are all 1, so self-attention is exactly
    out_proj(v_proj(x)): the query and key projections (2 d^2 parameters, 52 M for 5120-d
    text) never influence the output. This computes the same function without them;
    `tests/test_models.py` checks it against torch.nn.TransformerEncoderLayer."""

    def __init__(self, d_in: int, hidden: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.v_proj = nn.Linear(d_in, d_in)
        self.out_proj = nn.Linear(d_in, d_in)
        self.norm1 = nn.LayerNorm(d_in)
        self.linear1 = nn.Linear(d_in, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, d_in)
        self.norm2 = nn.LayerNorm(d_in)
        self.dropout = nn.Dropout(dropout)
        self.to_hidden = nn.Linear(d_in, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout(self.out_proj(self.v_proj(x))))
        x = self.norm2(x + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(x))))))
        return self.to_hidden(x)

    @torch.no_grad()
    def load_from_transformer_layer(self, layer: nn.TransformerEncoderLayer, to_hidden: nn.Linear) -> None:
        """Copy weights from a torch TransformerEncoderLayer (its value slice of in_proj)."""
        d = self.v_proj.in_features
        self.v_proj.weight.copy_(layer.self_attn.in_proj_weight[2 * d:])
        self.v_proj.bias.copy_(layer.self_attn.in_proj_bias[2 * d:])
        self.out_proj.load_state_dict(layer.self_attn.out_proj.state_dict())
        for name in ("norm1", "norm2", "linear1", "linear2"):
            getattr(self, name).load_state_dict(getattr(layer, name).state_dict())
        self.to_hidden.load_state_dict(to_hidden.state_dict())


def make_encoder(cfg: Config, d_in: int) -> nn.Module:
    m = cfg.model
    if m.encoder == "mlp":
        return MLPEncoder(d_in, m.hidden, m.mlp_layers, m.dropout)
    return TransformerVEncoder(d_in, m.hidden, m.ffn_dim, m.dropout)


def make_classifier(d_in: int, dims: list[int], n_classes: int, dropout: float) -> nn.Sequential:
    """MLP head (paper: 256-128) with batch norm and dropout."""
    mods: list[nn.Module] = []
    for d in dims:
        mods += [nn.Linear(d_in, d), nn.BatchNorm1d(d), nn.ReLU(), nn.Dropout(dropout)]
        d_in = d
    mods.append(nn.Linear(d_in, n_classes))
    return nn.Sequential(*mods)


# ---------------------------------------------------------------------- MR-CCL

class MRCCL(nn.Module):
    def __init__(self, dims: dict[str, int], n_classes: int, cfg: Config) -> None:
        super().__init__()
        m, h = cfg.model, cfg.model.hidden
        self.names = list(dims)
        M = len(self.names)
        self.encoders = nn.ModuleDict({n: make_encoder(cfg, d) for n, d in dims.items()})
        self.invariant = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, h))
        self.heads = nn.ModuleDict({n: make_classifier(h, m.classifier_dims, n_classes, m.dropout)
                                    for n in self.names})
        self.fusion = make_classifier(h * M, m.classifier_dims, n_classes, m.dropout)
        weights = [m.vote_weights.get(n, m.default_vote_weight) for n in self.names]
        weights.append(m.vote_weights.get("fusion", m.default_vote_weight))
        self.register_buffer("vote_weights", torch.tensor(weights, dtype=torch.float32))

        nz, lc = cfg.noise, cfg.loss
        self.noise = nn.ModuleDict({n: NoiseScheduler(nz.schedule, nz.steps, nz.beta_start, nz.beta_end,
                                                      nz.per_sample) for n in self.names})

        def temp() -> Temperature:
            return Temperature(lc.temperature_init, lc.temperature_min, lc.temperature_max)

        self.pairs = list(combinations(range(M), 2))
        self.pair_temps = nn.ModuleList([temp() for _ in self.pairs])
        # Each modality against the other modalities together; with two modalities that is
        # the pair again, so only from three on.
        self.rest_projs = nn.ModuleList([nn.Linear(h, (M - 1) * h) for _ in range(M)] if M >= 3 else [])
        self.rest_temps = nn.ModuleList([temp() for _ in self.rest_projs])
        self.noise_temps = nn.ModuleList([temp() for _ in range(M)])

    def encode(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.encoders[n](x) for n, x in zip(self.names, xs)]

    def head_logits(self, fh: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Per-modality logits, fusion logits, and their weighted vote."""
        per = [self.heads[n](f) for n, f in zip(self.names, fh)]
        fused = self.fusion(torch.cat(fh, dim=1))
        voted = sum(w * l for w, l in zip(self.vote_weights, per + [fused]))
        return per, fused, voted

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return self.head_logits(self.encode(xs))[2]

    def imcl_ae(self, fh: list[torch.Tensor]) -> torch.Tensor:
        hs = [self.invariant(f) for f in fh]
        terms = [nt_xent(hs[a], hs[b], t()) for (a, b), t in zip(self.pairs, self.pair_temps)]
        for i, (proj, t) in enumerate(zip(self.rest_projs, self.rest_temps)):
            rest = torch.cat([hs[j] for j in range(len(hs)) if j != i], dim=1)
            terms.append(nt_xent(proj(hs[i]), rest, t()))
        return torch.stack(terms).mean()

    def imcl_ne(self, xs: list[torch.Tensor], fh: list[torch.Tensor]) -> torch.Tensor:
        terms = [nt_xent(f, self.encoders[n](self.noise[n](x)), t())
                 for n, x, f, t in zip(self.names, xs, fh, self.noise_temps)]
        return torch.stack(terms).mean()

    def losses(self, xs: list[torch.Tensor], y: torch.Tensor | None,
               weights: dict[str, float]) -> dict[str, torch.Tensor]:
        fh = self.encode(xs)
        out: dict[str, torch.Tensor] = {}
        if y is not None and weights.get("ce", 0) > 0:
            per, fused, voted = self.head_logits(fh)
            heads = torch.stack([F.cross_entropy(l, y) for l in per + [fused]]).mean()
            out["ce"] = heads + F.cross_entropy(voted, y)
        if weights.get("imcl_ae", 0) > 0 and len(self.names) > 1:  # inter-modal needs two
            out["imcl_ae"] = self.imcl_ae(fh)
        if weights.get("imcl_ne", 0) > 0:
            out["imcl_ne"] = self.imcl_ne(xs, fh)
        return out


# ---------------------------------------------------------------------- baseline

class AttentionBaseline(nn.Module):
    """MERTools' "attention" model: per-modality MLP encoders (3 Linear+ReLU to hidden), an
    MLP over their concatenation giving one weight per modality (softmax), the hidden
    vectors combined by those weights, a Linear classifier. Cross-entropy only."""

    def __init__(self, dims: dict[str, int], n_classes: int, cfg: Config) -> None:
        super().__init__()
        h, p = cfg.model.hidden, cfg.model.dropout
        self.names = list(dims)
        self.encoders = nn.ModuleDict({
            n: nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                             nn.Linear(h, h), nn.ReLU(), nn.Dropout(p))
            for n, d in dims.items()})
        M = len(self.names)
        self.attention = nn.Sequential(nn.Linear(h * M, h), nn.ReLU(), nn.Dropout(p), nn.Linear(h, M))
        self.classifier = nn.Linear(h, n_classes)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        hs = [self.encoders[n](x) for n, x in zip(self.names, xs)]
        weights = torch.softmax(self.attention(torch.cat(hs, dim=1)), dim=1)   # [N, M]
        fused = (torch.stack(hs, dim=2) * weights.unsqueeze(1)).sum(dim=2)     # [N, h]
        return self.classifier(fused)

    def losses(self, xs: list[torch.Tensor], y: torch.Tensor | None,
               weights: dict[str, float]) -> dict[str, torch.Tensor]:
        if y is None or weights.get("ce", 0) <= 0:
            return {}
        return {"ce": F.cross_entropy(self(xs), y)}


def build_model(dims: dict[str, int], n_classes: int, cfg: Config) -> nn.Module:
    if not dims:
        raise ValueError("a model needs at least one modality")
    if cfg.model.kind == "attention_baseline":
        return AttentionBaseline(dims, n_classes, cfg)
    return MRCCL(dims, n_classes, cfg)
