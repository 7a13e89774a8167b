"""Models: MR-CCL (the paper's) and MERTools' attention-fusion baseline.

Both take a list of per-modality feature batches (in the project's modality order) and
share one small interface used by the trainer:

    model(xs) -> voted logits [N, C]
    model.losses(xs, y, weights) -> {term: tensor}   (only terms whose weight is > 0)
    model.n_classes

MR-CCL, per modality m (see docs/method.md):
    Fh_m = E_m(F_m)        Nh_m = E_m(noise_m(F_m))       H_m = Inv(Fh_m)
    logits = sum_m w_m * Clf_m(Fh_m) + w_fusion * Clf_fusion(concat_m Fh_m)
    IMCL-AE: NT-Xent over every pair (H_a, H_b), and (M >= 3) each proj_m(H_m) against the
             concatenation of the other modalities' H.  IMCL-NE: NT-Xent(Fh_m, Nh_m).
"""
from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from .config import Config
from .losses import IMCLAE, IMCLNE
from .noise import NoiseScheduler


# ---------------------------------------------------------------------- dropout

class Dropout(nn.Module):
    """nn.Dropout that draws from its own generator when one is set (`use_generator`): folds
    trained side by side in threads then draw the same masks whatever the threads' timing,
    so a round stays reproducible. Without one it is torch's own dropout."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.generator is None:
            return F.dropout(x, self.p, True)
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
        return x * keep / (1.0 - self.p)


def use_generator(model: nn.Module, generator: torch.Generator | None) -> None:
    """Every Dropout of `model` draws from `generator` (None: torch's global one)."""
    for module in model.modules():
        if isinstance(module, Dropout):
            module.generator = generator


# ---------------------------------------------------------------------- encoders

class MLPEncoder(nn.Module):
    """The light encoder: a Linear projection to the hidden size, LayerNorm, then `blocks`
    post-norm residual feed-forward blocks (the paper's Transformer layer without its
    attention, run at the hidden width instead of the input width).

    The residual path and the norms are what matter: a plain Linear-ReLU-Dropout stack of
    the same size scored lower (bench/results/README.md, Measurements behind the defaults)."""

    def __init__(self, d_in: int, hidden: int, blocks: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.proj = nn.Linear(d_in, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.blocks = nn.ModuleList(_FeedForwardBlock(hidden, ffn_dim, dropout) for _ in range(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.proj(x))
        for block in self.blocks:
            h = block(h)
        return h


class _FeedForwardBlock(nn.Module):
    def __init__(self, width: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(width, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, width)
        self.norm = nn.LayerNorm(width)
        self.dropout = Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.norm(h + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(h))))))


class TransformerVEncoder(nn.Module):
    """The paper's encoder: one post-norm Transformer encoder layer (d_model = input dim,
    ReLU feed-forward) over a length-1 sequence, then a Linear to the hidden size.

    Over a single token the attention weights are all 1, so self-attention is exactly
    out_proj(v_proj(x)): the query and key projections (2 d^2 parameters, 52 M for 5120-d
    text) never influence the output. This computes the same function without them;
    `tests/test_models.py` checks it against torch.nn.TransformerEncoderLayer in eval mode.
    (In training, torch's attention dropout would also drop that single weight of 1, i.e.
    the whole attention output now and then; we keep only the usual residual dropouts.)"""

    def __init__(self, d_in: int, hidden: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.v_proj = nn.Linear(d_in, d_in)
        self.out_proj = nn.Linear(d_in, d_in)
        self.norm1 = nn.LayerNorm(d_in)
        self.linear1 = nn.Linear(d_in, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, d_in)
        self.norm2 = nn.LayerNorm(d_in)
        self.dropout = Dropout(dropout)
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
        return MLPEncoder(d_in, m.hidden, m.mlp_blocks, m.mlp_ffn_dim, m.dropout)
    return TransformerVEncoder(d_in, m.hidden, m.ffn_dim, m.dropout)


def make_classifier(d_in: int, dims: list[int], n_classes: int, dropout: float) -> nn.Sequential:
    """MLP head (paper: 256-128) with batch norm and dropout."""
    mods: list[nn.Module] = []
    for d in dims:
        mods += [nn.Linear(d_in, d), nn.BatchNorm1d(d), nn.ReLU(), Dropout(dropout)]
        d_in = d
    mods.append(nn.Linear(d_in, n_classes))
    return nn.Sequential(*mods)


# ---------------------------------------------------------------------- input scaling

class InputNorm(nn.Module):
    """Per-dimension standardisation of each modality's input, (x - mean) / std, with the
    statistics the trainer measured on its unlabeled + labeled rows. Buffers, so that a saved
    ensemble scores new rows exactly as it was trained. Identity until `set_stats`."""

    def __init__(self, dims: dict[str, int]) -> None:
        super().__init__()
        self.names = list(dims)
        for n, d in dims.items():
            self.register_buffer(f"mean_{n}", torch.zeros(d))
            self.register_buffer(f"scale_{n}", torch.ones(d))

    @torch.no_grad()
    def set_stats(self, stats: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        for n, (mean, std) in stats.items():
            getattr(self, f"mean_{n}").copy_(mean)
            # Nearly constant dimensions (a pixel that is blank but for a few images, a padded
            # feature) are not blown up: every std is floored at a tenth of the modality's
            # typical (median) std.
            floor = max(float(std.median()) * 0.1, 1e-6)
            getattr(self, f"scale_{n}").copy_(1.0 / std.clamp_min(floor))

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [(x - getattr(self, f"mean_{n}")) * getattr(self, f"scale_{n}") for n, x in zip(self.names, xs)]


# ---------------------------------------------------------------------- MR-CCL

class MRCCL(nn.Module):
    vote_weights: torch.Tensor  # a buffer

    def __init__(self, dims: dict[str, int], n_classes: int, cfg: Config) -> None:
        super().__init__()
        m, h, lc, nz = cfg.model, cfg.model.hidden, cfg.loss, cfg.noise
        self.names = list(dims)
        self.n_classes = n_classes
        self.input_norm = InputNorm(dims)
        self.encoders = nn.ModuleDict({n: make_encoder(cfg, d) for n, d in dims.items()})
        self.invariant = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, h))
        self.heads = nn.ModuleDict({n: make_classifier(h, m.classifier_dims, n_classes, m.dropout)
                                    for n in self.names})
        self.fusion = make_classifier(h * len(dims), m.classifier_dims, n_classes, m.dropout)
        weights = [m.vote_weights.get(n, m.default_vote_weight) for n in self.names]
        weights.append(m.vote_weights.get("fusion", m.default_vote_weight))
        self.register_buffer("vote_weights", torch.tensor(weights, dtype=torch.float32))
        # One scheduler per modality (same settings, separate instances: the reference code
        # used the audio schedule for every modality).
        self.noise = nn.ModuleDict({n: NoiseScheduler(nz.schedule, nz.steps, nz.beta_start, nz.beta_end,
                                                      nz.per_sample) for n in self.names})
        temps = (lc.contrastive_temperature_init, lc.contrastive_temperature_min, lc.contrastive_temperature_max)
        self.imcl_ae = IMCLAE(len(dims), h, *temps)
        self.imcl_ne = IMCLNE(len(dims), *temps)

    def encode(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Fh_m = E_m(F_m) for every modality."""
        return [self.encoders[n](x) for n, x in zip(self.names, xs)]

    def head_logits(self, fh: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Per-modality logits, fusion logits, and their weighted vote."""
        per = [self.heads[n](f) for n, f in zip(self.names, fh)]
        fused = self.fusion(torch.cat(fh, dim=1))
        voted = cast(torch.Tensor, sum(w * logits for w, logits in zip(self.vote_weights, per + [fused])))
        return per, fused, voted

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return self.head_logits(self.encode(self.input_norm(xs)))[2]

    def losses(self, xs: list[torch.Tensor], y: torch.Tensor | None,
               weights: dict[str, float]) -> dict[str, torch.Tensor]:
        """Unweighted loss terms whose weight is > 0 (y=None: contrastive terms only):
        ce = mean CE over the modality heads and the fusion head + CE of the voted logits.
        The noise of IMCL-NE corrupts the standardised input, so its scale means the same
        for every modality."""
        xs = self.input_norm(xs)
        fh = self.encode(xs)
        out: dict[str, torch.Tensor] = {}
        if y is not None and weights.get("ce", 0) > 0:
            per, fused, voted = self.head_logits(fh)
            heads = torch.stack([cross_entropy(logits, y) for logits in per + [fused]]).mean()
            out["ce"] = heads + cross_entropy(voted, y)
        if weights.get("imcl_ae", 0) > 0 and len(self.names) > 1:  # inter-modal needs two
            out["imcl_ae"] = self.imcl_ae([self.invariant(f) for f in fh])
        if weights.get("imcl_ne", 0) > 0:
            noisy = [self.encoders[n](self.noise[n](x)) for n, x in zip(self.names, xs)]
            out["imcl_ne"] = self.imcl_ne(fh, noisy)
        return out


# ---------------------------------------------------------------------- baseline

class MERToolsMLP(nn.Sequential):
    """MERTools' MLPEncoder: dropout on the input, then three Linear+ReLU layers."""

    def __init__(self, d_in: int, hidden: int, dropout: float) -> None:
        super().__init__(Dropout(dropout), nn.Linear(d_in, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())


class AttentionBaseline(nn.Module):
    """MERTools' "attention" model: per-modality MLP encoders, an MLP over their
    concatenation giving one weight per modality (softmax), the hidden vectors combined by
    those weights, dropout and a Linear classifier. Cross-entropy only."""

    def __init__(self, dims: dict[str, int], n_classes: int, cfg: Config) -> None:
        super().__init__()
        h, p = cfg.model.hidden, cfg.model.dropout
        self.names = list(dims)
        self.n_classes = n_classes
        self.input_norm = InputNorm(dims)
        self.encoders = nn.ModuleDict({n: MERToolsMLP(d, h, p) for n, d in dims.items()})
        self.attention = nn.Sequential(MERToolsMLP(h * len(dims), h, p), nn.Linear(h, len(dims)))
        self.classifier = nn.Sequential(Dropout(p), nn.Linear(h, n_classes))

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        hs = [self.encoders[n](x) for n, x in zip(self.names, self.input_norm(xs))]
        weights = torch.softmax(self.attention(torch.cat(hs, dim=1)), dim=1)   # [N, M]
        fused = (torch.stack(hs, dim=2) * weights.unsqueeze(1)).sum(dim=2)     # [N, h]
        return self.classifier(fused)

    def losses(self, xs: list[torch.Tensor], y: torch.Tensor | None,
               weights: dict[str, float]) -> dict[str, torch.Tensor]:
        if y is None or weights.get("ce", 0) <= 0:
            return {}
        return {"ce": cross_entropy(self(xs), y)}


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The batch's mean cross-entropy against class ids, or against a target per row: a class
    distribution (votes), or the doubly robust loss's signed mixture (folds.doubly_robust_targets).
    A negative part pushes its class down only until the class is less likely than uniform: -log p
    has no floor, so an unbounded push would swamp every other term."""
    if y.ndim == 1 or y.dtype in (torch.int64, torch.int32):
        return F.cross_entropy(logits, y)
    logp = F.log_softmax(logits.float(), dim=1)
    floor = -math.log(logits.shape[1])
    return -(y.clamp(min=0) * logp + y.clamp(max=0) * logp.clamp(min=floor)).sum(1).mean()


def build_model(dims: dict[str, int], n_classes: int, cfg: Config) -> MRCCL | AttentionBaseline:
    """The model `cfg.model.kind` names, for modalities `dims` (name -> input dim, in order)."""
    if not dims:
        raise ValueError("a model needs at least one modality")
    if cfg.model.kind == "attention_baseline":
        return AttentionBaseline(dims, n_classes, cfg)
    return MRCCL(dims, n_classes, cfg)
