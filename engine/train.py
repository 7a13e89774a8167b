"""One training round of MR-CCL: contrastive pre-training, K-fold fine-tuning, scoring.

Arrays in, arrays and metrics out; no database, no UI. The whole loop is in this file:

    1. put every needed feature row on the device once (one tensor per modality);
    2. contrastive pre-training (IMCL-AE + IMCL-NE) on labeled + unlabeled rows, no labels;
    3. for each of K stratified folds of the GOLD rows: start from the pre-trained weights,
       train on the fold's gold rows + all extra (pseudo/relabel) rows, oversampling minority
       classes; evaluate on the fold's gold rows only; keep the best epoch by eval WAF;
    4. out-of-fold probabilities of the gold rows, and the fold ensemble's mean probability
       for every row to score (pool + test).

Batches are drawn by index from the device tensors: no DataLoader, no per-batch
host-to-device copies. On CUDA the forward passes run under bf16 autocast.
"""
from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold

from .config import Config, from_dict
from .errors import InputError
from .metrics import classification_metrics, waf
from .models import build_model

ProgressFn = Callable[[str, float], None]


@dataclass
class TrainSet:
    features: dict[str, np.ndarray]  # modality -> [N, D] (np.memmap float16/32 is fine); row i = sample i
    gold_rows: np.ndarray            # rows with human gold labels: the only rows evaluation folds hold
    gold_labels: np.ndarray
    extra_rows: np.ndarray           # relabels / accepted pseudo-labels: every training fold, no eval fold
    extra_labels: np.ndarray
    pretrain_rows: np.ndarray        # rows for contrastive pre-training (labels unused)
    score_rows: np.ndarray           # rows scored by the fold ensemble (pool + test)


@dataclass
class RoundResult:
    score_probs: np.ndarray          # [len(score_rows), C]
    oof_probs: np.ndarray            # [len(gold_rows), C]
    metrics: dict
    state: dict = field(repr=False)  # {"config", "modalities", "n_classes", "folds": [state_dict]}


def pick_device(setting: str) -> torch.device:
    if setting == "cuda" and not torch.cuda.is_available():
        raise InputError("device: cuda requested but no CUDA device is available")
    if setting == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


# ---------------------------------------------------------------------- the round

def train_round(data: TrainSet, n_classes: int, cfg: Config,
                progress: ProgressFn | None = None) -> RoundResult:
    t_start = time.time()
    report = progress or (lambda msg, frac: None)
    notes = _validate(data, n_classes, cfg)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    folds = _stratified_folds(data.gold_labels, cfg.finetune.folds, cfg.seed, n_classes, notes)

    # -- 1. features on the device, once
    report("loading features", 0.0)
    bank = FeatureBank(data.features, [data.gold_rows, data.extra_rows, data.pretrain_rows, data.score_rows],
                       device)
    dims = {m: int(x.shape[1]) for m, x in data.features.items()}
    model = build_model(dims, n_classes, cfg).to(device)

    # Share of the progress bar per phase, by rough cost.
    pretraining = cfg.pretrain.enabled and cfg.model.kind == "mrccl" and len(data.pretrain_rows) >= 2
    span_pre = 0.25 if pretraining else 0.0
    span_fold = (0.95 - span_pre) / len(folds)

    # -- 2. contrastive pre-training
    t0 = time.time()
    if pretraining:
        _pretrain(model, bank, bank.local(data.pretrain_rows), cfg,
                  lambda msg, f: report(msg, span_pre * f))
    pretrained = _copy_state(model)
    t_pretrain = time.time() - t0

    # -- 3. K-fold fine-tuning on gold (+ extra in training folds)
    t0 = time.time()
    gold_local, extra_local = bank.local(data.gold_rows), bank.local(data.extra_rows)
    score_local = bank.local(data.score_rows)
    oof = np.zeros((len(data.gold_rows), n_classes), np.float32)
    score_sum = np.zeros((len(data.score_rows), n_classes), np.float64)
    fold_states, fold_info = [], []
    for k, (tr, ev) in enumerate(folds):
        model.load_state_dict(pretrained)
        train_idx = np.concatenate([gold_local[tr], extra_local])
        train_y = np.concatenate([data.gold_labels[tr], data.extra_labels])
        base = span_pre + k * span_fold
        best_state, best_waf, best_epoch, eval_probs = _finetune(
            model, bank, train_idx, train_y, gold_local[ev], data.gold_labels[ev], n_classes, cfg, rng,
            lambda msg, f, k=k, base=base: report(f"fold {k + 1}/{len(folds)}: {msg}", base + span_fold * f))
        model.load_state_dict(best_state)
        oof[ev] = eval_probs
        score_sum += _predict(model, bank, score_local, cfg.score_batch_size)
        fold_states.append(best_state)
        fold_info.append({"waf": best_waf, "best_epoch": best_epoch, "n_train": int(len(train_idx)),
                          "n_eval": int(len(ev))})
    t_finetune = time.time() - t0

    # -- 4. the ensemble's scores (already summed per fold above) and the CV metrics
    report("scoring done", 0.97)
    score_probs = (score_sum / len(folds)).astype(np.float32)
    cv = classification_metrics(data.gold_labels, oof.argmax(1), n_classes)
    metrics = {
        "cv_waf": cv["waf"], "cv_accuracy": cv["accuracy"], "cv_f1": cv["f1"], "cv_confusion": cv["confusion"],
        "folds": fold_info, "device": str(device), "warnings": notes,
        "timings": {"pretrain_s": round(t_pretrain, 2), "finetune_s": round(t_finetune, 2),
                    "total_s": round(time.time() - t_start, 2)},
        "n_train": {"gold": int(len(data.gold_rows)), "extra": int(len(data.extra_rows))},
    }
    state = {"config": cfg.to_dict(), "modalities": dims, "n_classes": n_classes,
             "folds": [{k: v.cpu() for k, v in s.items()} for s in fold_states]}
    report("done", 1.0)
    return RoundResult(score_probs, oof, metrics, state)


# ---------------------------------------------------------------------- phases

def _pretrain(model, bank: "FeatureBank", rows: np.ndarray, cfg: Config, report: ProgressFn) -> None:
    pc = cfg.pretrain
    weights = {"imcl_ae": 1.0, "imcl_ne": 1.0}
    opt = torch.optim.Adam(model.parameters(), lr=pc.lr, weight_decay=pc.weight_decay)
    per_epoch = min(len(rows), pc.max_samples_per_epoch or len(rows))
    rows_t = torch.as_tensor(rows, device=bank.device)
    model.train()
    for epoch in range(pc.epochs):
        order = rows_t[torch.randperm(len(rows_t), device=bank.device)[:per_epoch]]
        total, steps = 0.0, 0
        for idx in _batches(order, pc.batch_size):
            with bank.autocast():
                loss = sum(model.losses(bank.batch(idx), None, weights).values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, steps = total + loss.item(), steps + 1
        report(f"pre-training epoch {epoch + 1}/{pc.epochs}, loss {total / max(steps, 1):.3f}",
               (epoch + 1) / pc.epochs)


def _finetune(model, bank: "FeatureBank", train_idx: np.ndarray, train_y: np.ndarray,
              eval_idx: np.ndarray, eval_y: np.ndarray, n_classes: int, cfg: Config,
              rng: np.random.Generator, report: ProgressFn):
    """Train one fold; return (best state, best eval WAF, best epoch, eval probs at best)."""
    fc, lc = cfg.finetune, cfg.loss
    weights = {"ce": lc.ce, "imcl_ae": lc.imcl_ae, "imcl_ne": lc.imcl_ne}
    opt = torch.optim.Adam(model.parameters(), lr=fc.lr, weight_decay=fc.weight_decay)
    labels_t = torch.as_tensor(train_y, device=bank.device)
    idx_t = torch.as_tensor(train_idx, device=bank.device)
    best = (-1.0, None, 0, None)
    stale = 0
    for epoch in range(1, fc.epochs + 1):
        model.train()
        order = torch.as_tensor(_epoch_order(train_y, fc.oversample, n_classes, rng), device=bank.device)
        for pos in _batches(order, fc.batch_size):
            with bank.autocast():
                terms = model.losses(bank.batch(idx_t[pos]), labels_t[pos], weights)
                loss = sum(weights[k] * v for k, v in terms.items())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if fc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), fc.grad_clip)
            opt.step()
        probs = _predict(model, bank, eval_idx, cfg.score_batch_size)
        score = waf(eval_y, probs.argmax(1))
        if score > best[0]:
            best, stale = (score, _copy_state(model), epoch, probs), 0
        else:
            stale += 1
        report(f"epoch {epoch}/{fc.epochs}, eval WAF {score:.4f} (best {best[0]:.4f})", epoch / fc.epochs)
        if fc.patience and stale >= fc.patience:
            break
    return best[1], best[0], best[2], best[3]


@torch.inference_mode()
def _predict(model, bank: "FeatureBank", rows: np.ndarray, batch_size: int) -> np.ndarray:
    """Softmax of the voted logits for local rows, in large batches."""
    model.eval()
    out = np.zeros((len(rows), _n_out(model)), np.float32)
    rows_t = torch.as_tensor(rows, device=bank.device)
    for start in range(0, len(rows), batch_size):
        idx = rows_t[start:start + batch_size]
        with bank.autocast():
            logits = model(bank.batch(idx))
        out[start:start + len(idx)] = torch.softmax(logits.float(), dim=1).cpu().numpy()
    return out


def predict(state: dict, features: dict[str, np.ndarray], rows: np.ndarray,
            cfg: Config | None = None) -> np.ndarray:
    """Mean probabilities of a saved fold ensemble (RoundResult.state) for `rows`."""
    cfg = cfg or from_dict(state["config"])
    device = pick_device(cfg.device)
    dims = state["modalities"]
    if {m: int(features[m].shape[1]) for m in dims if m in features} != dims:
        raise InputError(f"features do not match the model's modalities {dims}")
    bank = FeatureBank({m: features[m] for m in dims}, [np.asarray(rows, np.int64)], device)
    local = bank.local(np.asarray(rows, np.int64))
    model = build_model(dims, state["n_classes"], cfg).to(device)
    total = np.zeros((len(local), state["n_classes"]), np.float64)
    for s in state["folds"]:
        model.load_state_dict(s)
        total += _predict(model, bank, local, cfg.score_batch_size)
    return (total / len(state["folds"])).astype(np.float32)


# ---------------------------------------------------------------------- data on the device

class FeatureBank:
    """The rows a round needs, one device tensor per modality, addressed by local index.

    Storage keeps the input dtype (float16 halves memory at MER2024 scale); each batch is
    cast to float32, or left to autocast on CUDA."""

    def __init__(self, features: dict[str, np.ndarray], row_sets: list[np.ndarray], device: torch.device):
        self.device = device
        self.rows = np.unique(np.concatenate([np.asarray(r, np.int64) for r in row_sets]))
        n = next(iter(features.values())).shape[0]
        whole = len(self.rows) == n  # every row: read the matrix straight through
        self.tensors = []
        for m, x in features.items():
            block = np.asarray(x) if whole else np.asarray(x[self.rows])
            self.tensors.append(torch.from_numpy(np.ascontiguousarray(block)).to(device))

    def local(self, rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.rows, np.asarray(rows, np.int64))

    def batch(self, idx: torch.Tensor) -> list[torch.Tensor]:
        return [t.index_select(0, idx).float() for t in self.tensors]

    def autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


# ---------------------------------------------------------------------- helpers

def _validate(data: TrainSet, n_classes: int, cfg: Config) -> list[str]:
    """Clear errors for inputs the trainer cannot use; returns warnings worth keeping."""
    if not data.features:
        raise InputError("no modality to train on")
    n = {int(x.shape[0]) for x in data.features.values()}
    if len(n) != 1:
        raise InputError(f"modalities have different row counts: {sorted(n)}")
    n_rows = n.pop()
    for name in ("gold_rows", "extra_rows", "pretrain_rows", "score_rows"):
        r = np.asarray(getattr(data, name))
        if r.ndim != 1 or (len(r) and (r.min() < 0 or r.max() >= n_rows)):
            raise InputError(f"{name}: rows must be a 1-d array within 0..{n_rows - 1}")
    for rows, labels, what in ((data.gold_rows, data.gold_labels, "gold"),
                               (data.extra_rows, data.extra_labels, "extra")):
        if len(rows) != len(labels):
            raise InputError(f"{what}: {len(rows)} rows but {len(labels)} labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
            raise InputError(f"{what} labels must lie in 0..{n_classes - 1}")
    if len(np.intersect1d(data.gold_rows, data.extra_rows)):
        raise InputError("a row is both gold and extra: gold rows must stay out of the extra set")
    counts = np.bincount(data.gold_labels, minlength=n_classes)
    if (counts == 0).any():
        raise InputError(f"class {int(np.argmin(counts))} has no gold-labeled sample; every class needs one")
    notes = []
    for c in np.flatnonzero(counts < cfg.finetune.folds):
        msg = (f"class {int(c)} has {int(counts[c])} gold samples, fewer than {cfg.finetune.folds} folds: "
               f"it is evaluated in {int(counts[c])} of them")
        warnings.warn(msg, stacklevel=3)
        notes.append(msg)
    if cfg.model.kind == "mrccl":
        named = set(cfg.model.vote_weights) - {"fusion"}
        unknown = sorted(named - set(data.features))
        if unknown:
            notes.append(f"model.vote_weights names {', '.join(unknown)}, not modalities of this data "
                         f"({', '.join(data.features)}); those get default_vote_weight")
    return notes


def _stratified_folds(y: np.ndarray, k: int, seed: int, n_classes: int, notes: list[str]):
    if len(y) < k:
        raise InputError(f"{len(y)} gold samples cannot make {k} folds")
    with warnings.catch_warnings():
        # The tiny-class warning is ours (named above); sklearn's says the same without names.
        warnings.filterwarnings("ignore", message=".*least populated class.*")
        return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def _epoch_order(y: np.ndarray, oversample: bool, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Positions into the training fold for one epoch, shuffled; with oversampling, every
    class is topped up (with replacement) to the largest class's count."""
    idx = np.arange(len(y))
    if oversample:
        counts = np.bincount(y, minlength=n_classes)
        extra = [rng.choice(np.flatnonzero(y == c), counts.max() - counts[c])
                 for c in range(n_classes) if 0 < counts[c] < counts.max()]
        idx = np.concatenate([idx, *extra])
    return rng.permutation(idx)


def _batches(order: torch.Tensor, size: int):
    """Consecutive slices; a trailing batch of one is dropped (batch norm needs two)."""
    for start in range(0, len(order), size):
        chunk = order[start:start + size]
        if len(chunk) >= 2:
            yield chunk


def _copy_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _n_out(model) -> int:
    last = model.classifier if hasattr(model, "classifier") else model.fusion[-1]
    return last.out_features
