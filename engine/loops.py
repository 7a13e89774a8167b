"""The optimisation loops of a round: contrastive pre-training, one fold's fine-tuning (the best
epoch kept), scoring rows with a model, and the embedding label spreading works in."""
from __future__ import annotations

import contextlib
from typing import cast

import numpy as np
import torch
from torch import nn

from .bank import FeatureBank
from .config import Config
from .folds import Fold, epoch_order
from .metrics import log_loss, waf
from .models import AttentionBaseline, MRCCL
from .progress import ProgressFn

Model = MRCCL | AttentionBaseline


def pretrain(model: Model, bank: FeatureBank, rows: np.ndarray, cfg: Config, report: ProgressFn) -> int:
    """IMCL-AE + IMCL-NE (weighted) on `rows`, no labels; `max_samples_per_epoch` rows drawn
    per epoch. Returns the samples trained on."""
    pc = cfg.pretrain
    weights = {"imcl_ae": pc.imcl_ae, "imcl_ne": pc.imcl_ne}
    opt = torch.optim.Adam(model.parameters(), lr=pc.lr, weight_decay=pc.weight_decay, fused=True)
    local = torch.as_tensor(bank.local(rows), device=bank.device)
    per_epoch = min(len(local), pc.max_samples_per_epoch or len(local))
    # Small pools: draw more than one pass per epoch so that min_steps steps run in all.
    per_epoch = max(per_epoch, _min_epoch_samples(pc.min_steps, pc.epochs, pc.batch_size))
    model.train()
    samples = 0
    for epoch in range(1, pc.epochs + 1):
        passes = -(-per_epoch // len(local))
        perm = torch.cat([torch.randperm(len(local), device=bank.device) for _ in range(passes)])
        order = local[perm[:per_epoch]]
        total, steps = torch.zeros((), device=bank.device), 0
        for idx in _batches(order, pc.batch_size):
            with bank.autocast():
                terms = model.losses(bank.batch(idx), None, weights)
                loss = cast(torch.Tensor, sum(weights[name] * value for name, value in terms.items()))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, steps, samples = total + loss.detach(), steps + 1, samples + len(idx)
        report(f"epoch {epoch}/{pc.epochs}, loss {total.item() / max(steps, 1):.3f}", epoch / pc.epochs)
    return samples


def finetune(model: Model, bank: FeatureBank, fold: Fold, eval_rows: np.ndarray, eval_y: np.ndarray,
              n_classes: int, cfg: Config, rng: np.random.Generator, report: ProgressFn):
    """Train one fold; return (best state, best eval WAF, best epoch, eval probs at best,
    epochs run)."""
    fc, lc = cfg.finetune, cfg.loss
    weights = {"ce": lc.ce, "imcl_ae": lc.imcl_ae, "imcl_ne": lc.imcl_ne}
    opt = torch.optim.Adam(model.parameters(), lr=fc.lr, weight_decay=fc.weight_decay, fused=True)
    train_local = torch.as_tensor(bank.local(fold.train_rows), device=bank.device)
    train_y = torch.as_tensor(fold.train_labels, device=bank.device)
    best_score, best_state, best_epoch, best_probs, stale, samples = -np.inf, None, 0, None, 0, 0
    min_len = _min_epoch_samples(fc.min_steps, fc.epochs, fc.batch_size)
    select = selection_rule(fc.select, len(eval_rows))
    for epoch in range(1, fc.epochs + 1):
        model.train()
        order = torch.as_tensor(epoch_order(fold.train_labels, fc.oversample, n_classes, rng,
                                            limit=fc.max_samples_per_epoch, min_len=min_len),
                                device=bank.device)
        for pos in _batches(order, fc.batch_size):
            samples += len(pos)
            with bank.autocast():
                terms = model.losses(bank.batch(train_local[pos]), train_y[pos], weights)
                loss = cast(torch.Tensor, sum(weights[name] * value for name, value in terms.items()))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if fc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), fc.grad_clip)
            opt.step()

        probs = predict_rows(model, bank, eval_rows, cfg.score_batch_size)
        eval_waf, eval_loss = waf(eval_y, probs.argmax(1)), log_loss(eval_y, probs)
        score = {"waf": eval_waf, "loss": -eval_loss, "last": float(epoch)}[select]
        if score > best_score:
            best_score, best_state, best_epoch, best_probs, stale = score, copy_state(model), epoch, probs, 0
            best_waf = eval_waf
        else:
            stale += 1
        report(f"epoch {epoch}/{fc.epochs}, eval WAF {eval_waf:.4f}, loss {eval_loss:.3f}", epoch / fc.epochs)
        if fc.patience and stale >= fc.patience:
            break
    return best_state, best_waf, best_epoch, best_probs, epoch, samples


SELECT_AUTO_MIN_EVAL = 100


def selection_rule(select: str, n_eval: int) -> str:
    """The epoch-selection rule a fold uses: `select`, with "auto" resolved by the size of
    the fold's evaluation set (see FinetuneConfig.select)."""
    if select != "auto":
        return select
    return "waf" if n_eval >= SELECT_AUTO_MIN_EVAL else "last"


@torch.inference_mode()
def predict_rows(model: Model, bank: FeatureBank, rows: np.ndarray, batch_size: int) -> np.ndarray:
    """Softmax of the voted logits for global `rows`, in large batches."""
    model.eval()
    out = np.zeros((len(rows), model.n_classes), np.float32)
    local = torch.as_tensor(bank.local(rows), device=bank.device)
    for start in range(0, len(local), batch_size):
        idx = local[start:start + batch_size]
        with bank.autocast():
            logits = model(bank.batch(idx))
        out[start:start + len(idx)] = torch.softmax(logits.float(), dim=1).cpu().numpy()
    return out


@torch.inference_mode()
def embed(model: MRCCL, bank: FeatureBank, batch_size: int) -> torch.Tensor:
    """Every bank row's modality encodings, each L2-normalised, side by side (on the device):
    cosine similarity is then the mean of the modalities' similarities."""
    model.eval()
    out = []
    for start in range(0, len(bank.rows), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(bank.rows)), device=bank.device)
        with bank.autocast():
            encoded = model.encode(model.input_norm(bank.batch(idx)))
        out.append(torch.cat([nn.functional.normalize(e.float(), dim=1) for e in encoded], dim=1))
    return torch.cat(out)


def _min_epoch_samples(min_steps: int, epochs: int, batch_size: int) -> int:
    """Samples per epoch so that `epochs` epochs make at least `min_steps` steps."""
    return -(-min_steps // epochs) * batch_size if min_steps else 0


def _batches(order: torch.Tensor, size: int):
    """Consecutive slices; a trailing batch of one is dropped (batch norm needs two)."""
    for start in range(0, len(order), size):
        chunk = order[start:start + size]
        if len(chunk) >= 2:
            yield chunk


@contextlib.contextmanager
def train_threads(cfg: Config, device: torch.device):
    """Run training steps on `cfg.cpu_train_threads` CPU threads, then restore the setting."""
    if device.type != "cpu" or cfg.cpu_train_threads == 0:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(cfg.cpu_train_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def copy_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
