"""Models: the Transformer encoder without Q/K equals PyTorch's layer; any number of
modalities; voting weights; the baseline."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from mersemi.engine.config import load_config
from mersemi.engine.models import AttentionBaseline, MRCCL, TransformerVEncoder, build_model

CFG = load_config()


@pytest.mark.parametrize("d_in, nhead", [(16, 4), (12, 1)])
def test_transformer_v_equals_torch_encoder_layer_on_one_token(d_in, nhead):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d_in, nhead, dim_feedforward=32, dropout=0.1, batch_first=True)
    to_hidden = nn.Linear(d_in, 8)
    ours = TransformerVEncoder(d_in, 8, ffn_dim=32, dropout=0.1)
    ours.load_from_transformer_layer(layer, to_hidden)
    layer.eval(), ours.eval()
    x = torch.randn(5, d_in)
    expected = to_hidden(layer(x.unsqueeze(1)).squeeze(1))
    torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)
    # ...with 2 d^2 fewer parameters (the query and key projections).
    n_ref = sum(p.numel() for p in layer.parameters()) + sum(p.numel() for p in to_hidden.parameters())
    assert n_ref - sum(p.numel() for p in ours.parameters()) == 2 * d_in * d_in + 2 * d_in


@pytest.mark.parametrize("dims", [{"audio": 6}, {"audio": 6, "text": 10},
                                  {"audio": 6, "text": 10, "video": 4, "face": 5}])
@pytest.mark.parametrize("encoder", ["mlp", "transformer_v"])
def test_mrccl_works_with_any_number_of_modalities(dims, encoder):
    torch.manual_seed(0)
    cfg = CFG.replace(**{"model.encoder": encoder, "model.hidden": 16, "model.ffn_dim": 8, "model.mlp_ffn_dim": 8})
    model = MRCCL(dims, 3, cfg)
    xs = [torch.randn(8, d) for d in dims.values()]
    y = torch.randint(0, 3, (8,))
    assert model(xs).shape == (8, 3)
    terms = model.losses(xs, y, {"ce": 1.0, "imcl_ae": 1.0, "imcl_ne": 1.0})
    assert set(terms) == ({"ce", "imcl_ne"} | ({"imcl_ae"} if len(dims) > 1 else set()))
    sum(terms.values()).backward()
    assert all(torch.isfinite(t) for t in terms.values())
    # Pre-training asks for no labels.
    assert set(model.losses(xs, None, {"imcl_ae": 1.0, "imcl_ne": 1.0})) <= {"imcl_ae", "imcl_ne"}
    n_rest = len(dims) if len(dims) >= 3 else 0
    assert len(model.imcl_ae.projs) == n_rest
    assert len(model.imcl_ae.pair_temps) == len(dims) * (len(dims) - 1) // 2
    # Every parameter gets a gradient (temperatures, projections, encoders, heads); with one
    # modality there is no inter-modal loss, so the invariant encoder has nothing to learn.
    unused = {n.split(".")[0] for n, p in model.named_parameters() if p.grad is None}
    assert unused == (set() if len(dims) > 1 else {"invariant"})


def test_each_modality_has_its_own_noise_scheduler():
    model = MRCCL({"audio": 4, "text": 6, "video": 3}, 2, CFG)
    schedulers = list(model.noise.values())
    assert len({id(s) for s in schedulers}) == 3
    assert [s.steps for s in schedulers] == [CFG.noise.steps] * 3


def test_clean_and_noisy_inputs_share_one_encoder():
    torch.manual_seed(0)
    model = MRCCL({"audio": 4, "text": 6}, 2, CFG.replace(**{"model.hidden": 8}))
    xs = [torch.randn(6, 4), torch.randn(6, 6)]
    model.losses(xs, None, {"imcl_ne": 1.0})["imcl_ne"].backward()
    # IMCL-NE alone reaches the encoders through both the clean and the noisy pass; no
    # separate noisy-branch encoder exists.
    assert all(p.grad is not None for p in model.encoders.parameters())
    assert sum(1 for _ in model.encoders.children()) == 2


def test_voting_uses_weights_by_modality_name():
    cfg = CFG.replace(**{"model.vote_weights": {"audio": 0.7, "video": 0.4, "fusion": 0.7},
                         "model.default_vote_weight": 0.25})
    model = MRCCL({"video": 3, "audio": 4, "text": 5}, 2, cfg)
    assert model.vote_weights.tolist() == pytest.approx([0.4, 0.7, 0.25, 0.7])
    model.eval()
    xs = [torch.randn(3, d) for d in (3, 4, 5)]
    per, fused, voted = model.head_logits(model.encode(xs))
    manual = 0.4 * per[0] + 0.7 * per[1] + 0.25 * per[2] + 0.7 * fused
    torch.testing.assert_close(voted, manual)


def test_attention_baseline_trains_with_cross_entropy_only():
    cfg = CFG.replace(**{"model.kind": "attention_baseline", "pretrain.enabled": False,
                         "loss.imcl_ae": 0.0, "loss.imcl_ne": 0.0, "model.hidden": 16})
    model = build_model({"a": 6, "t": 10}, 4, cfg)
    assert isinstance(model, AttentionBaseline)
    xs, y = [torch.randn(8, 6), torch.randn(8, 10)], torch.randint(0, 4, (8,))
    assert model(xs).shape == (8, 4)
    assert set(model.losses(xs, y, {"ce": 1.0})) == {"ce"}
    assert model.losses(xs, None, {"imcl_ae": 1.0}) == {}
    # MERTools' encoders: three Linear+ReLU layers to hidden; one attention weight per modality.
    linears = [m for m in model.encoders["t"] if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(10, 16), (16, 16), (16, 16)]
    assert model.attention[-1].out_features == 2


def test_mlp_encoder_blocks_are_configurable_and_validated():
    from mersemi.engine.config import ConfigError
    from mersemi.engine.models import MLPEncoder
    x = torch.randn(5, 12)
    for blocks in (0, 1, 3):
        enc = MLPEncoder(12, 8, blocks, 16, 0.1)
        assert enc(x).shape == (5, 8) and len(enc.blocks) == blocks
    with pytest.raises(ConfigError, match="model.mlp_blocks: must be >= 0"):
        CFG.replace(**{"model.mlp_blocks": -1})
    with pytest.raises(ConfigError, match="model.mlp_ffn_dim: must be > 0"):
        CFG.replace(**{"model.mlp_ffn_dim": 0})
