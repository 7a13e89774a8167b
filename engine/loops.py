"""The optimisation loops of a round: contrastive pre-training, the folds' fine-tuning (the best
epoch kept, folds side by side on the CPU cores), scoring rows with a model, and the embedding
label spreading works in."""
from __future__ import annotations

import contextlib
import copy
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch import nn

from .bank import FeatureBank
from .config import Config
from .crashpoints import crash_point
from .distributed import Dist
from .folds import Fold, epoch_order
from .metrics import log_loss, waf
from .models import AttentionBaseline, MRCCL, use_generator
from .progress import ProgressFn

Model = MRCCL | AttentionBaseline


class _Losses(nn.Module):
    """The pre-training loss as a module's forward, which DistributedDataParallel wraps (it
    averages the gradients of every rank's share of a batch)."""

    def __init__(self, model: Model, weights: dict[str, float]) -> None:
        super().__init__()
        self.model, self.weights = model, weights

    def forward(self, batch: list[torch.Tensor]) -> torch.Tensor:
        terms = self.model.losses(batch, None, self.weights)
        return cast(torch.Tensor, sum(self.weights[name] * value for name, value in terms.items()))


def pretrain(model: Model, bank: FeatureBank, rows: np.ndarray, cfg: Config, report: ProgressFn,
             dist: Dist | None = None) -> int:
    """IMCL-AE + IMCL-NE (weighted) on `rows`, no labels; `max_samples_per_epoch` rows drawn
    per epoch. With `dist`, every rank takes its share of each batch (the same batches: every
    rank draws the same order) under DistributedDataParallel. Returns the samples trained on."""
    pc = cfg.pretrain
    weights = {"imcl_ae": pc.imcl_ae, "imcl_ne": pc.imcl_ne}
    losses: nn.Module = _Losses(model, weights)
    world, rank = (dist.world, dist.rank) if dist else (1, 0)
    if dist is not None:
        from torch.nn.parallel import DistributedDataParallel

        # the classifier heads take no part in pre-training: their gradients never come
        losses = DistributedDataParallel(losses, device_ids=[dist.device.index] if dist.device.type == "cuda"
                                         else None, find_unused_parameters=True)
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
            idx = idx[rank::world] if world > 1 else idx
            with bank.autocast():
                loss = losses(bank.batch(idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, steps, samples = total + loss.detach(), steps + 1, samples + len(idx)
        report(f"epoch {epoch}/{pc.epochs}, loss {total.item() / max(steps, 1):.3f}", epoch / pc.epochs)
    return samples


@dataclass
class FoldFit:
    """One fold's result: its best model, its out-of-fold probabilities, its scores."""
    state: dict[str, torch.Tensor]
    info: dict
    eval_probs: np.ndarray
    score_probs: np.ndarray
    train_s: float
    score_s: float


def fold_workers(cfg: Config, device: torch.device, n_folds: int) -> int:
    """Folds trained side by side: finetune.parallel_folds, 0 = one per CPU core this process
    may use (one at a time on a GPU)."""
    if cfg.finetune.parallel_folds:
        return max(1, min(cfg.finetune.parallel_folds, n_folds))
    if device.type != "cpu":
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), n_folds))


def fit_folds(model: Model, starts: list[dict], warm: bool, bank: FeatureBank, folds: list[Fold],
              gold_rows: np.ndarray, gold_labels: np.ndarray, score_rows: np.ndarray, n_classes: int,
              cfg: Config, report: ProgressFn, dist: Dist | None = None) -> dict[int, FoldFit]:
    """Fine-tune every fold from its start state (the pre-trained weights, or with `warm` the
    fold's own predecessor, for finetune.warm_epochs epochs) and score `score_rows` with its
    best model. Folds run side by side in threads, one CPU thread each (small batches are
    latency-bound: two threads on one step were slower than one); each fold draws its batches
    and its dropout from generators of its own, so the result does not depend on the threads'
    timing. With `dist`, this rank fits the folds rank, rank + world, ... Returns the fits by
    fold index."""
    fc = cfg.finetune
    epochs = fc.warm_epochs if warm else fc.epochs
    done, lock = [0.0] * len(folds), threading.Lock()

    def one(k: int) -> FoldFit:
        t0 = time.time()
        m = copy.deepcopy(model)
        m.load_state_dict(starts[k])
        gen = torch.Generator(device=bank.device)
        gen.manual_seed(cfg.seed * 1009 + k)
        use_generator(m, gen)
        rng = np.random.default_rng([cfg.seed, k])
        fold = folds[k]

        def fold_report(msg: str, f: float) -> None:
            with lock:
                done[k] = f
                report(f"fold {k + 1}/{len(folds)}: {msg}", sum(done) / len(folds))

        best, waf_, epoch, eval_probs, ran, samples = finetune(
            m, bank, fold, gold_rows[fold.eval_pos], gold_labels[fold.eval_pos], n_classes, cfg, rng,
            fold_report, epochs)
        t1 = time.time()
        m.load_state_dict(best)
        scores = predict_rows(m, bank, score_rows, cfg.score_batch_size)
        info = {"waf": waf_, "best_epoch": epoch, "epochs": ran, "warm": warm,
                "select": selection_rule(fc.select, len(fold.eval_pos)), "n_train": int(len(fold.train_rows)),
                "n_eval": int(len(fold.eval_pos)), "samples": samples}
        return FoldFit({n: v.cpu() for n, v in best.items()}, info, eval_probs, scores, t1 - t0, time.time() - t1)

    mine = list(range(dist.rank, len(folds), dist.world)) if dist else list(range(len(folds)))
    if dist is not None:
        crash_point(f"rank{dist.rank}:fine-tune")   # a rank killed here: the tests' dead rank
    workers = 1 if dist else fold_workers(cfg, bank.device, len(folds))
    with train_threads(cfg, bank.device):
        if workers == 1:
            return {k: one(k) for k in mine}
        with ThreadPoolExecutor(workers, thread_name_prefix="mersemi-fold") as pool:
            return dict(zip(mine, pool.map(one, mine)))


def finetune(model: Model, bank: FeatureBank, fold: Fold, eval_rows: np.ndarray, eval_y: np.ndarray,
             n_classes: int, cfg: Config, rng: np.random.Generator, report: ProgressFn, epochs: int | None = None):
    """Train one fold for `epochs` (finetune.epochs when None); return (best state, best eval
    WAF, best epoch, eval probs at best, epochs run, samples trained on)."""
    fc, lc = cfg.finetune, cfg.loss
    epochs = epochs or fc.epochs
    weights = {"ce": lc.ce, "imcl_ae": lc.imcl_ae, "imcl_ne": lc.imcl_ne}
    opt = torch.optim.Adam(model.parameters(), lr=fc.lr, weight_decay=fc.weight_decay, fused=True)
    train_local = torch.as_tensor(bank.local(fold.train_rows), device=bank.device)
    # class distributions where a fold has them (votes as soft targets: cross-entropy takes
    # probabilities as well as class ids), the class ids otherwise
    train_y = torch.as_tensor(fold.train_labels if fold.train_targets is None else fold.train_targets,
                              device=bank.device)
    best_score, best_state, best_epoch, best_probs, stale, samples = -np.inf, None, 0, None, 0, 0
    # min_steps is for a whole fit: a warm start's fewer epochs take their share of it
    min_len = _min_epoch_samples(fc.min_steps * epochs // fc.epochs, epochs, fc.batch_size)
    select = selection_rule(fc.select, len(eval_rows))
    for epoch in range(1, epochs + 1):
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
        report(f"epoch {epoch}/{epochs}, eval WAF {eval_waf:.4f}, loss {eval_loss:.3f}", epoch / epochs)
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
    out = None   # filled in place: a list of blocks joined at the end would need the whole twice
    for start in range(0, len(bank.rows), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(bank.rows)), device=bank.device)
        with bank.autocast():
            encoded = model.encode(model.input_norm(bank.batch(idx)))
        block = torch.cat([nn.functional.normalize(e.float(), dim=1) for e in encoded], dim=1)
        if out is None:
            out = torch.empty((len(bank.rows), block.shape[1]), device=bank.device)
        out[start:start + len(idx)] = block
    return out if out is not None else torch.zeros((0, 0), device=bank.device)


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
