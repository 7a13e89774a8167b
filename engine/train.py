"""One training round of MR-CCL: contrastive pre-training, K-fold fine-tuning, scoring.

Arrays in, arrays and metrics out; no database, no UI. The whole round reads top to bottom
in `train_round`:

    1. validate the inputs; split the GOLD rows into K stratified folds;
    2. put every needed feature row on the device once (one tensor per modality);
    3. contrastive pre-training (IMCL-AE + IMCL-NE) on labeled + unlabeled rows, no labels;
    4. per fold: start from the pre-trained weights, train on the fold's gold rows + every
       extra (relabel / pseudo-label) row with minority classes oversampled, evaluate on the
       fold's gold rows only, keep the best epoch by eval WAF (early stopping on patience);
       score the pool + test rows with that fold's best model;
    5. out-of-fold probabilities of the gold rows give the CV metrics; the fold models'
       mean probability is the ensemble's score;
    6. label spreading over the pre-trained embedding (engine/propagation.py) gives a second
       opinion per row; the two are joined, and calibrated, by weights fitted on the
       out-of-fold predictions (engine/calibration.py).

Batches are drawn by index from the device tensors: no DataLoader, no per-batch
host-to-device copies. On CUDA the forward passes run under bf16 autocast.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.model_selection import StratifiedKFold
from torch import nn

from .calibration import (apply_temperature, combine, ensemble_mean, expected_calibration_error, fit_temperature,
                          fit_weights, fold_term)
from .config import Config, FinetuneConfig, checkpoint_config
from .errors import InputError
from .metrics import classification_metrics, log_loss, waf
from .models import AttentionBaseline, MRCCL, build_model
from .progress import ProgressFn
from .propagation import knn_graph, spread

__all__ = ["ProgressFn", "TrainSet", "RoundResult", "train_round", "predict", "pick_device"]

Model = MRCCL | AttentionBaseline


@dataclass
class TrainSet:
    features: Mapping[str, np.ndarray]  # modality -> [N, D]; np.memmap float16/32 is fine; row i = sample i
    gold_rows: np.ndarray            # int64 rows with human gold labels: the only rows evaluation folds hold
    gold_labels: np.ndarray          # int64 class ids 0..C-1
    extra_rows: np.ndarray           # relabels / accepted pseudo-labels: every training fold, no eval fold
    extra_labels: np.ndarray
    pretrain_rows: np.ndarray        # rows for contrastive pre-training (labels unused)
    score_rows: np.ndarray           # rows scored by the fold ensemble (pool + test)
    # The label-spreading graph's weight relative to the ensemble's, fixed by the caller; None:
    # fitted on the out-of-fold predictions. Extra labels that came from the model (accepted
    # pseudo-labels) make those predictions optimistic, see engine/self_training.py.
    graph_share: float | None = None
    # Per extra row: its label came from the model (an accepted pseudo-label). Such rows train
    # the folds but do not seed the graph, which spreads human labels only. None: none did.
    extra_from_model: np.ndarray | None = None
    # Per extra row and fold, the class the previous round's model of that fold predicted for it
    # (`RoundResult.fold_votes`; -1 unknown). A label from the model trains fold k only where
    # fold k's own predecessor agrees with it, so no fold learns its evaluation samples' labels
    # through pseudo-labels that the other folds' models chose: the out-of-fold predictions
    # stay honest, and a round can be judged against the previous one on them. None: every
    # extra row trains every fold.
    extra_fold_votes: np.ndarray | None = None


@dataclass
class RoundResult:
    score_probs: np.ndarray          # [len(score_rows), C] float32
    oof_probs: np.ndarray            # [len(gold_rows), C] float32, out-of-fold
    metrics: dict                    # JSON-serialisable
    state: dict = field(repr=False)  # {"config", "modalities", "n_classes", "folds": [state_dict], ...}
    fold_votes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int8), repr=False)
    # [K, len(score_rows)] int8: each fold model's predicted class (TrainSet.extra_fold_votes)


@dataclass
class Fold:
    train_rows: np.ndarray    # global rows: the fold's gold training rows, then every extra row
    train_labels: np.ndarray
    eval_pos: np.ndarray      # positions into gold_rows/gold_labels held out in this fold


def pick_device(setting: str) -> torch.device:
    """"cpu", "cuda" (an error without CUDA) or "auto" (CUDA when present)."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise InputError("device: cuda requested but no CUDA device is available")
    if setting == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


# ---------------------------------------------------------------------- the round

def train_round(data: TrainSet, n_classes: int, cfg: Config,
                progress: ProgressFn | None = None) -> RoundResult:
    t_start = time.time()
    data, notes = _validate(data, n_classes, cfg)  # raises before any work on bad input
    scheme = eval_scheme(np.bincount(data.gold_labels, minlength=n_classes), cfg.finetune)
    folds = make_folds(data, n_classes, scheme["folds"], cfg.seed)
    notes += _check_votes(data, len(folds))
    device = pick_device(cfg.device)
    report = _Monotone(progress)
    pretraining = cfg.pretrain.enabled and cfg.model.kind == "mrccl"
    if pretraining and len(data.pretrain_rows) < 2:
        pretraining = False
        notes.append("pre-training skipped: fewer than 2 pretrain_rows")
    if pretraining and len(data.features) == 1 and cfg.pretrain.imcl_ne == 0:
        pretraining = False
        notes.append("pre-training skipped: one modality has no inter-modal loss and pretrain.imcl_ne is 0")
    # Shares of the progress bar, by rough cost.
    f_load, f_pre = 0.02, (0.22 if pretraining else 0.0)
    f_fold = (0.99 - f_load - f_pre) / len(folds)

    # Seeded here, and the caller's RNG state is restored afterwards.
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)

        # -- features on the device, once
        t0 = time.time()
        report("loading features", 0.0)
        bank = FeatureBank(data.features,
                           [data.gold_rows, data.extra_rows, data.pretrain_rows, data.score_rows], device)
        dims = {m: int(x.shape[1]) for m, x in data.features.items()}
        model = build_model(dims, n_classes, cfg).to(device)
        if cfg.model.standardize:
            model.input_norm.set_stats(dict(zip(dims, bank.stats(np.concatenate(
                [data.pretrain_rows, data.gold_rows, data.extra_rows])))))
        t_load = time.time() - t0

        # -- contrastive pre-training, once; every fold starts from its result
        t0 = time.time()
        pretrain_samples = 0
        if pretraining:
            with _train_threads(cfg, device):
                pretrain_samples = _pretrain(model, bank, data.pretrain_rows, cfg,
                                             lambda msg, f: report(f"pre-training: {msg}", f_load + f_pre * f))
        pretrained = _copy_state(model)
        t_pretrain = time.time() - t0

        # -- the neighbour graph over the pre-trained (label-free) embedding, once
        t0 = time.time()
        graph = None
        if cfg.propagation.enabled and not pretraining:
            notes.append("propagation skipped: it needs the pre-trained embedding, and pre-training did not run")
        elif cfg.propagation.enabled and len(bank.rows) > cfg.propagation.max_rows:
            notes.append(f"propagation skipped: {len(bank.rows)} rows exceed propagation.max_rows "
                         f"({cfg.propagation.max_rows}); the neighbour graph compares every pair")
        elif cfg.propagation.enabled:
            report("label spreading: neighbour graph", f_load + f_pre)
            graph = knn_graph(_embed(cast(MRCCL, model), bank, cfg.score_batch_size), cfg.propagation.neighbours)
        t_graph = time.time() - t0

        # -- K-fold fine-tuning on gold (+ extra rows in training folds), scoring per fold
        t_finetune = t_score = 0.0
        oof = np.zeros((len(data.gold_rows), n_classes), np.float32)
        score_sum = np.zeros((len(data.score_rows), n_classes), np.float64)
        votes = np.zeros((len(folds), len(data.score_rows)), np.int8)
        fold_states, fold_info = [], []
        for k, fold in enumerate(folds):
            base = f_load + f_pre + k * f_fold
            t0 = time.time()
            model.load_state_dict(pretrained)

            def fold_report(msg: str, f: float, k: int = k, base: float = base) -> None:
                report(f"fold {k + 1}/{len(folds)}: {msg}", base + 0.9 * f_fold * f)

            with _train_threads(cfg, device):
                best_state, best_waf, best_epoch, eval_probs, epochs_run, fold_samples = _finetune(
                    model, bank, fold, data.gold_rows[fold.eval_pos], data.gold_labels[fold.eval_pos],
                    n_classes, cfg, rng, fold_report)
            oof[fold.eval_pos] = eval_probs
            fold_states.append({name: v.cpu() for name, v in best_state.items()})
            fold_info.append({"waf": best_waf, "best_epoch": best_epoch, "epochs": epochs_run,
                              "select": selection_rule(cfg.finetune.select, len(fold.eval_pos)),
                              "n_train": int(len(fold.train_rows)), "n_eval": int(len(fold.eval_pos)),
                              "samples": fold_samples})
            t_finetune += time.time() - t0

            t0 = time.time()
            report(f"fold {k + 1}/{len(folds)}: scoring {len(data.score_rows)} rows", base + 0.9 * f_fold)
            model.load_state_dict(best_state)
            fold_probs = _predict(model, bank, data.score_rows, cfg.score_batch_size)
            score_sum += fold_term(fold_probs, cfg.finetune.average)
            votes[k] = fold_probs.argmax(1)
            t_score += time.time() - t0

    # -- the ensemble's scores and the CV metrics (evaluation folds held gold rows only)
    score_probs = ensemble_mean(score_sum, len(folds), cfg.finetune.average)
    cv = classification_metrics(data.gold_labels, oof.argmax(1), n_classes)
    ece_raw = expected_calibration_error(oof, data.gold_labels)
    graph_weight, graph_cv = None, None
    if graph is None:
        # -- calibration: one temperature fitted on the honest (out-of-fold) predictions
        temperature = fit_temperature(oof, data.gold_labels) if cfg.finetune.calibrate else 1.0
        oof, score_probs = apply_temperature(oof, temperature), apply_temperature(score_probs, temperature)
    else:
        t0 = time.time()
        report("label spreading", 0.99)
        oof_graph, score_graph = _spread_labels(graph, bank, data, folds, n_classes, cfg)
        graph_cv = waf(data.gold_labels, oof_graph.argmax(1))
        # -- calibration: the ensemble's and the graph's weights, fitted on the out-of-fold
        # predictions of both (a plain product when calibration is off)
        if data.graph_share is None:
            joint = len(data.gold_labels) >= cfg.propagation.joint_fit_min
            weights = fit_weights([oof, oof_graph], data.gold_labels, joint) if cfg.finetune.calibrate else np.ones(2)
        else:   # the share is given: only the temperature of the joined scores is fitted
            share = np.array([1.0, data.graph_share])
            joined = combine([oof, oof_graph], share)
            weights = share / (fit_temperature(joined, data.gold_labels) if cfg.finetune.calibrate else 1.0)
        temperature, graph_weight = 1.0 / float(weights[0]), round(float(weights[1]), 4)
        oof, score_probs = combine([oof, oof_graph], weights), combine([score_probs, score_graph], weights)
        t_graph += time.time() - t0
    metrics = {
        "cv_waf": cv["waf"], "cv_accuracy": cv["accuracy"], "cv_f1": cv["f1"], "cv_confusion": cv["confusion"],
        "temperature": round(temperature, 4), "oof_ece_raw": ece_raw,
        "graph_weight": graph_weight, "graph_cv_waf": graph_cv,
        "oof_ece": expected_calibration_error(oof, data.gold_labels),
        "oof_log_loss": log_loss(data.gold_labels, oof),
        "folds": fold_info, "eval_scheme": scheme, "device": str(device), "warnings": notes,
        "n_train": {"gold": int(len(data.gold_rows)), "extra": int(len(data.extra_rows))},
        "samples_trained": {"pretrain": pretrain_samples, "finetune": sum(f["samples"] for f in fold_info)},
        "timings": {"load_s": round(t_load, 2), "pretrain_s": round(t_pretrain, 2),
                    "finetune_s": round(t_finetune, 2), "score_s": round(t_score, 2),
                    "graph_s": round(t_graph, 2),
                    "total_s": round(time.time() - t_start, 2)},
    }
    state = {"config": cfg.to_dict(), "modalities": dims, "n_classes": n_classes, "folds": fold_states,
             "temperature": temperature, "graph_weight": graph_weight,
             "score_rows": torch.as_tensor(data.score_rows), "fold_votes": torch.as_tensor(votes)}
    report("done", 1.0)
    return RoundResult(score_probs, oof, metrics, state, votes)


# ---------------------------------------------------------------------- phases

def _pretrain(model: Model, bank: FeatureBank, rows: np.ndarray, cfg: Config, report: ProgressFn) -> int:
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


def _finetune(model: Model, bank: FeatureBank, fold: Fold, eval_rows: np.ndarray, eval_y: np.ndarray,
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

        probs = _predict(model, bank, eval_rows, cfg.score_batch_size)
        eval_waf, eval_loss = waf(eval_y, probs.argmax(1)), log_loss(eval_y, probs)
        score = {"waf": eval_waf, "loss": -eval_loss, "last": float(epoch)}[select]
        if score > best_score:
            best_score, best_state, best_epoch, best_probs, stale = score, _copy_state(model), epoch, probs, 0
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
def _embed(model: MRCCL, bank: FeatureBank, batch_size: int) -> torch.Tensor:
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


def _spread_labels(graph: sp.csr_matrix, bank: FeatureBank, data: TrainSet, folds: list[Fold], n_classes: int,
                   cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """The graph's class distributions from the human labels (gold and extra rows not from the
    model): out-of-fold for the gold rows (each fold hides its evaluation labels) and, from
    every human label, for the score rows.

    Pseudo-labels do not seed it: the model's errors would come back as the graph's, and a few
    hundred of them in the easy regions outweigh the classes with few labels (few-label digits,
    engine-level loop, 2 seeds, 3 automatic rounds: -1.7 test WAF seeded with them, +0.9 without)."""
    pc = cfg.propagation
    human = np.ones(len(data.extra_rows), bool) if data.extra_from_model is None else ~data.extra_from_model
    seeds = np.r_[data.gold_rows, data.extra_rows[human]]
    labels = np.r_[data.gold_labels, data.extra_labels[human]]

    def run(keep: np.ndarray) -> np.ndarray:
        return spread(graph, bank.local(seeds[keep]), labels[keep], n_classes, pc.alpha, pc.iterations,
                      pc.class_mass)

    oof = np.zeros((len(data.gold_rows), n_classes), np.float32)
    for fold in folds:
        keep = np.ones(len(seeds), bool)
        keep[fold.eval_pos] = False           # gold rows come first among the seeds
        oof[fold.eval_pos] = run(keep)[bank.local(data.gold_rows[fold.eval_pos])]
    every = run(np.ones(len(seeds), bool))
    return oof, every[bank.local(data.score_rows)]


@torch.inference_mode()
def _predict(model: Model, bank: FeatureBank, rows: np.ndarray, batch_size: int) -> np.ndarray:
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


def predict(state: dict, features: dict[str, np.ndarray], rows: np.ndarray,
            cfg: Config | None = None) -> np.ndarray:
    """Mean probabilities [len(rows), C] of a saved fold ensemble (RoundResult.state),
    at the round's temperature. The ensemble alone: a round with label spreading
    (state["graph_weight"] not None) also multiplied its stored scores by the graph's, which
    only exists over that round's rows.

    The model is rebuilt from the config saved in `state`; `cfg`, when given, only chooses
    the device and the scoring batch size."""
    saved = checkpoint_config(state["config"])
    run = cfg or saved
    dims, n_classes = dict(state["modalities"]), int(state["n_classes"])
    for m, d in dims.items():
        if m not in features:
            raise InputError(f"features: modality {m!r} missing (the ensemble was trained on {', '.join(dims)})")
        if features[m].ndim != 2 or features[m].shape[1] != d:
            raise InputError(f"features[{m!r}]: expected [N, {d}], got {list(features[m].shape)}")
    n_rows = {int(features[m].shape[0]) for m in dims}
    if len(n_rows) != 1:
        raise InputError(f"features: modalities have different row counts {sorted(n_rows)}")
    rows = _check_rows(rows, "rows", n_rows.pop())
    device = pick_device(run.device)
    bank = FeatureBank({m: features[m] for m in dims}, [rows], device)
    model = build_model(dims, n_classes, saved).to(device)
    total = np.zeros((len(rows), n_classes), np.float64)
    for fold_state in state["folds"]:
        _load_fold(model, fold_state)
        total += fold_term(_predict(model, bank, rows, run.score_batch_size), saved.finetune.average)
    probs = ensemble_mean(total, len(state["folds"]), saved.finetune.average)
    return apply_temperature(probs, float(state.get("temperature", 1.0)))


def _load_fold(model: nn.Module, fold_state: dict) -> None:
    """Load one fold's weights; a checkpoint from before input standardisation has no
    input_norm buffers and keeps the identity it was trained with."""
    missing, unexpected = model.load_state_dict(fold_state, strict=False)
    bad = [k for k in missing if not k.startswith("input_norm.")] + list(unexpected)
    if bad:
        raise InputError(f"checkpoint: weights do not match the saved model ({', '.join(bad[:3])})")


# ---------------------------------------------------------------------- data on the device

class FeatureBank:
    """The rows a round needs, one device tensor per modality, addressed by global row.

    Storage keeps float16 or float32 as given (float16 halves memory at MER2024 scale; a
    memory-map that covers every needed row is used in place, without a copy); each batch
    is cast to float32, or left to autocast on CUDA."""

    def __init__(self, features: Mapping[str, np.ndarray], row_sets: list[np.ndarray], device: torch.device):
        self.device = device
        self.rows = np.unique(np.concatenate([np.asarray(r, np.int64) for r in row_sets]))
        n = next(iter(features.values())).shape[0]
        whole = len(self.rows) == n  # every row: use the matrix (or its memory-map) as it is
        self.tensors = []
        for x in features.values():
            block = np.asarray(x) if whole else np.asarray(x[self.rows])
            if block.dtype not in (np.float16, np.float32):
                block = block.astype(np.float32)
            with warnings.catch_warnings():
                # A read-only memory-map: the tensor is only ever read.
                warnings.filterwarnings("ignore", message=".*not writable.*")
                self.tensors.append(torch.from_numpy(np.ascontiguousarray(block)).to(device))

    @torch.no_grad()
    def stats(self, rows: np.ndarray, chunk: int = 8192) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per modality, the mean and std of each dimension over global `rows` (float64
        sums in chunks, so float16 storage and 100k rows stay exact and small)."""
        local = torch.as_tensor(self.local(np.unique(rows)), device=self.device)
        out = []
        for t in self.tensors:
            s = torch.zeros(t.shape[1], dtype=torch.float64, device=self.device)
            s2 = torch.zeros_like(s)
            for start in range(0, len(local), chunk):
                block = t.index_select(0, local[start:start + chunk]).double()
                s += block.sum(0)
                s2 += (block * block).sum(0)
            n = max(len(local), 1)
            mean = s / n
            std = (s2 / n - mean * mean).clamp_min(0).sqrt()
            out.append((mean.float(), std.float()))
        return out

    def local(self, rows: np.ndarray) -> np.ndarray:
        """Positions of global rows in the bank's tensors."""
        return np.searchsorted(self.rows, np.asarray(rows, np.int64))

    def batch(self, idx: torch.Tensor) -> list[torch.Tensor]:
        return [t.index_select(0, idx).float() for t in self.tensors]

    def autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


# ---------------------------------------------------------------------- folds and sampling

MIN_GOLD_PER_CLASS = 2


def eval_scheme(counts: np.ndarray, fc: FinetuneConfig) -> dict:
    """The evaluation scheme a round's gold labels allow: stratified K folds, K at most
    `finetune.folds` and at most the count of the class `finetune.fold_cap` names (smallest:
    every fold evaluates every class; largest: a class with fewer samples than folds is
    evaluated in as many folds as it has samples, and the folds train on more). Recorded with
    the round, with a line that says it."""
    counts = np.asarray(counts)
    bound = int(counts.min() if fc.fold_cap == "smallest" else counts.max())
    k = max(2, min(fc.folds, bound))
    short = [int(c) for c in np.flatnonzero(counts < k)]
    text = f"stratified {k}-fold cross-validation on {int(counts.sum())} gold samples"
    if k < fc.folds:
        text += f" (finetune.folds {fc.folds}; the {fc.fold_cap} class has {bound})"
    if short:
        text += f"; {len(short)} class(es) with fewer samples than folds are evaluated in fewer folds"
    return {"folds": k, "fold_cap": fc.fold_cap, "smallest_class": int(counts.min()),
            "largest_class": int(counts.max()), "text": text}


def make_folds(data: TrainSet, n_classes: int, k: int, seed: int) -> list[Fold]:
    """Stratified K folds of the gold rows (shuffled, seeded). Evaluation folds hold gold
    rows only; every extra row joins every training fold, but a label from the model joins
    fold k only where fold k's predecessor agrees (TrainSet.extra_fold_votes)."""
    with warnings.catch_warnings():
        # Tiny classes are reported by _validate with their ids; sklearn's warning says the
        # same without them.
        warnings.filterwarnings("ignore", message=".*least populated class.*")
        splits = list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
                      .split(np.zeros(len(data.gold_labels)), data.gold_labels))
    folds = []
    for fold, (tr, ev) in enumerate(splits):
        keep = _extra_in_fold(data, fold)
        folds.append(Fold(train_rows=np.concatenate([data.gold_rows[tr], data.extra_rows[keep]]).astype(np.int64),
                          train_labels=np.concatenate([data.gold_labels[tr], data.extra_labels[keep]]).astype(np.int64),
                          eval_pos=ev))
    return folds


def _extra_in_fold(data: TrainSet, fold: int) -> np.ndarray:
    """Which extra rows train `fold`: every human label, and a label from the model where the
    fold's predecessor voted for it (all of them without votes)."""
    keep = np.ones(len(data.extra_rows), bool)
    if data.extra_fold_votes is not None and data.extra_from_model is not None:
        agree = data.extra_fold_votes[:, fold] == data.extra_labels
        keep = ~data.extra_from_model | agree
    return keep


def _check_votes(data: TrainSet, k: int) -> list[str]:
    """A note when votes were given for another number of folds (then they are not used)."""
    votes = data.extra_fold_votes
    if votes is None:
        return []
    if np.shape(votes) != (len(data.extra_rows), k):
        data.extra_fold_votes = None
        return [f"extra_fold_votes for {np.shape(votes)[1] if np.ndim(votes) == 2 else '?'} folds given to a round of "
                f"{k}: every pseudo-label trains every fold"]
    return []


def epoch_order(y: np.ndarray, oversample: bool, n_classes: int, rng: np.random.Generator,
                limit: int = 0, min_len: int = 0) -> np.ndarray:
    """Positions into a training fold for one epoch, shuffled. With oversampling every class
    present is topped up, drawing with replacement, to the largest class's count; `limit`
    (0 = none) keeps the first `limit` of the shuffled positions; `min_len` repeats fresh
    passes until the epoch is at least that long (tiny training sets)."""
    def one_pass() -> np.ndarray:
        idx = np.arange(len(y))
        if oversample and len(y):
            counts = np.bincount(y, minlength=n_classes)
            extra = [rng.choice(np.flatnonzero(y == c), counts.max() - counts[c])
                     for c in range(n_classes) if 0 < counts[c] < counts.max()]
            idx = np.concatenate([idx, *extra])
        return rng.permutation(idx)

    passes = [one_pass()]
    while len(y) and sum(map(len, passes)) < min_len:
        passes.append(one_pass())
    order = np.concatenate(passes)
    return order[:max(limit, min_len) or None] if limit else order


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
def _train_threads(cfg: Config, device: torch.device):
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


def _copy_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class _Monotone:
    """Forwards progress with a fraction that never goes back (early stopping skips ahead)."""

    def __init__(self, progress: ProgressFn | None) -> None:
        self.progress, self.last = progress, 0.0

    def __call__(self, message: str, fraction: float) -> None:
        self.last = max(self.last, min(fraction, 1.0))
        if self.progress:
            self.progress(message, self.last)


# ---------------------------------------------------------------------- input checks

def _validate(data: TrainSet, n_classes: int, cfg: Config) -> tuple[TrainSet, list[str]]:
    """Clear errors for inputs the trainer cannot use. Returns a copy of `data` with int64
    row and label arrays, and the warnings worth keeping."""
    if n_classes < 2:
        raise InputError(f"n_classes: need at least 2 classes, got {n_classes}")
    if not data.features:
        raise InputError("features: no modality to train on")
    for m, x in data.features.items():
        if getattr(x, "ndim", 0) != 2 or x.shape[1] < 1:
            raise InputError(f"features[{m!r}]: expected a [N, D] matrix, got shape {list(np.shape(x))}")
        if not np.issubdtype(x.dtype, np.floating):
            raise InputError(f"features[{m!r}]: expected floating-point values, got {x.dtype}")
    n = {int(x.shape[0]) for x in data.features.values()}
    if len(n) != 1:
        raise InputError(f"features: modalities have different row counts {sorted(n)}")
    n_rows = n.pop()
    checked: dict[str, Any] = {name: _check_rows(getattr(data, name), name, n_rows)
                               for name in ("gold_rows", "extra_rows", "pretrain_rows", "score_rows")}
    data = dataclasses.replace(data, **checked)
    if data.extra_from_model is not None:
        mask = np.asarray(data.extra_from_model)
        if mask.dtype != bool or mask.shape != (len(data.extra_rows),):
            raise InputError(f"extra_from_model: expected {len(data.extra_rows)} booleans (one per extra row), "
                             f"got {mask.dtype} {list(mask.shape)}")
        data = dataclasses.replace(data, extra_from_model=mask)
    if data.extra_fold_votes is not None:
        votes = np.asarray(data.extra_fold_votes)
        if votes.ndim != 2 or len(votes) != len(data.extra_rows) or not np.issubdtype(votes.dtype, np.integer):
            raise InputError(f"extra_fold_votes: expected integer classes [{len(data.extra_rows)}, K], got "
                             f"{votes.dtype} {list(votes.shape)}")
        data = dataclasses.replace(data, extra_fold_votes=votes.astype(np.int64))
    if data.graph_share is not None and not (np.isfinite(data.graph_share) and data.graph_share >= 0):
        raise InputError(f"graph_share: expected a finite number >= 0 or None, got {data.graph_share}")
    for rows, name in ((data.gold_rows, "gold_labels"), (data.extra_rows, "extra_labels")):
        labels = np.asarray(getattr(data, name))
        if (labels.ndim != 1 or len(labels) != len(rows)
                or (len(labels) and not np.issubdtype(labels.dtype, np.integer))):
            raise InputError(f"{name}: expected {len(rows)} integer class ids (one per row), "
                             f"got {labels.dtype} {list(labels.shape)}")
        if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
            raise InputError(f"{name}: class ids must lie in 0..{n_classes - 1}, "
                             f"found {labels.min()}..{labels.max()}")
        data = dataclasses.replace(data, **{name: cast(Any, labels.astype(np.int64))})
    for name in ("gold_rows", "extra_rows"):
        rows = getattr(data, name)
        if len(np.unique(rows)) != len(rows):
            raise InputError(f"{name}: a row appears more than once")
    both = np.intersect1d(data.gold_rows, data.extra_rows)
    if len(both):
        raise InputError(f"row {int(both[0])} is both gold and extra ({len(both)} such rows): "
                         f"a gold row's label must not also come from relabels or pseudo-labels")
    counts = np.bincount(data.gold_labels, minlength=n_classes)
    few = np.flatnonzero(counts < MIN_GOLD_PER_CLASS)
    if len(few):
        c = int(few[0])
        raise InputError(f"class {c} has {int(counts[c])} gold sample(s); every class needs at least "
                         f"{MIN_GOLD_PER_CLASS} (one to train on while another is held out)")
    notes = []
    if cfg.model.kind == "mrccl":
        unknown = sorted(set(cfg.model.vote_weights) - {"fusion"} - set(data.features))
        if unknown:
            notes.append(f"model.vote_weights names {', '.join(unknown)}, not modalities of this data "
                         f"({', '.join(data.features)}); those get default_vote_weight")
    return data, notes


def _check_rows(rows: np.ndarray, name: str, n_rows: int) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.ndim != 1 or (len(rows) and not np.issubdtype(rows.dtype, np.integer)):
        raise InputError(f"{name}: expected a 1-d array of integer rows, got {rows.dtype} {list(rows.shape)}")
    if len(rows) and (rows.min() < 0 or rows.max() >= n_rows):
        raise InputError(f"{name}: rows must lie in 0..{n_rows - 1}, found {rows.min()}..{rows.max()}")
    return rows.astype(np.int64)
