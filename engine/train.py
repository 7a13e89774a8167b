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

import dataclasses
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from .bank import FeatureBank, pick_device
from .calibration import (apply_temperature, combine, ensemble_mean, expected_calibration_error, fit_temperature,
                          fold_term)
from .config import Config, checkpoint_config
from .distributed import Dist, gather
from .errors import InputError
from .folds import MIN_GOLD_PER_CLASS, eval_scheme, fold_key, gold_problem, make_folds
from .loops import copy_state, embed, fit_folds, fold_workers, predict_rows, pretrain, train_threads
from .metrics import classification_metrics, log_loss, waf
from .models import AttentionBaseline, MRCCL, build_model
from .progress import ProgressFn
from .round_graph import graph_for_round, join_weights, left_out, spread_labels as _spread_labels
from .vocab import Source

__all__ = ["MIN_GOLD_PER_CLASS", "ProgressFn", "TrainSet", "RoundResult", "train_round", "predict", "pick_device"]

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
    # The label-spreading graph's weight relative to the ensemble's, for a round whose folds train
    # on pseudo-labels without their predecessors' votes (Prior.fold_votes): its out-of-fold
    # predictions are optimistic, so the share is not fitted on them (engine/self_training.py).
    # Ignored, the share fitted, when the votes keep those predictions honest. None: fitted.
    graph_share: float | None = None
    # Per extra row: its label came from the model (an accepted pseudo-label). Such rows train
    # the folds but do not seed the graph, which spreads human labels only. None: none did.
    extra_from_model: np.ndarray | None = None
    # What the round may take from the round in force before it (Prior); None: nothing.
    prior: Prior | None = None
    # Per extra row, the class distribution it trains on ([len(extra_rows), C], rows summing to 1):
    # the votes of a card that several reviewers labeled (service/votes.py). None: each extra row
    # trains on its label alone (one-hot), as every round did before votes.
    extra_targets: np.ndarray | None = None


@dataclass
class Prior:
    """What a round takes from the round before it (service/rounds.py reads it from that
    round's checkpoint and the project's reuse file). Each part is used only when its key is
    this round's; otherwise the round says so in its notes and does without it."""
    fold_key: str | None = None              # the fold split (folds.fold_key) of the parts below
    # Per extra row and fold, the class that fold's previous model predicted for it (-1: none).
    # A label from the model trains fold k only where fold k's own predecessor voted for it, so
    # no fold learns its evaluation samples' labels through pseudo-labels that the other folds'
    # models chose: out-of-fold predictions stay honest, and rounds can be judged on them.
    fold_votes: np.ndarray | None = None
    # The previous fold models: with finetune.warm_epochs, fold k starts from its own.
    fold_states: list[dict] | None = None
    reuse_key: str | None = None             # reuse_key() of the round that made the two below
    pretrained: dict | None = None           # its pre-trained weights: pre-training is skipped
    graph: sp.csr_matrix | None = None       # its neighbour graph over the same rows


@dataclass
class RoundResult:
    score_probs: np.ndarray          # [len(score_rows), C] float32
    oof_probs: np.ndarray            # [len(gold_rows), C] float32, out-of-fold
    metrics: dict                    # JSON-serialisable
    state: dict = field(repr=False)  # {"config", "modalities", "n_classes", "folds": [state_dict], ...}
    fold_votes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int8), repr=False)
    # [K, len(score_rows)] int8: each fold model's predicted class (Prior.fold_votes)
    reusable: dict = field(default_factory=dict, repr=False)
    # what a later round on the same rows may reuse: {"reuse_key", "pretrained", "graph"}


def reuse_key(data: TrainSet, cfg: Config) -> str:
    """What pre-training and the neighbour graph depend on: the config that shapes them, the
    rows and the features' shapes (a project's features never change after import)."""
    h = hashlib.sha1(json.dumps([cfg.seed, cfg.device, cfg.model.model_dump(), cfg.noise.model_dump(),
                                 cfg.pretrain.model_dump(), cfg.propagation.neighbours, cfg.propagation.knn,
                                 {m: list(np.shape(x)) + [str(x.dtype)] for m, x in data.features.items()}],
                                sort_keys=True).encode())
    for rows in (data.pretrain_rows, np.unique(np.r_[data.gold_rows, data.extra_rows, data.pretrain_rows,
                                                     data.score_rows])):
        h.update(np.ascontiguousarray(rows, np.int64).tobytes())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------- the round

def train_round(data: TrainSet, n_classes: int, cfg: Config,
                progress: ProgressFn | None = None) -> RoundResult:
    """Train one round in this process (folds side by side on its CPU cores)."""
    return cast(RoundResult, _train(data, n_classes, cfg, progress, None))


def train_round_distributed(data: TrainSet, n_classes: int, cfg: Config, dist: Dist,
                            progress: ProgressFn | None = None) -> RoundResult | None:
    """One rank's part of a round across processes (engine/distributed.py): every rank calls it
    with the same `data`; rank 0 gets the round's result, the others None."""
    return _train(data, n_classes, cfg, progress if dist.leader else None, dist)


def _train(data: TrainSet, n_classes: int, cfg: Config, progress: ProgressFn | None,
           dist: Dist | None) -> RoundResult | None:
    t_start = time.time()
    data, notes = _validate(data, n_classes, cfg)  # raises before any work on bad input
    scheme = eval_scheme(np.bincount(data.gold_labels, minlength=n_classes), cfg.finetune)
    key = fold_key(data.gold_rows, data.gold_labels, scheme["folds"], cfg.seed)
    reuse = reuse_key(data, cfg)
    prior = _usable(data.prior, key, reuse, scheme["folds"], len(data.extra_rows), cfg, notes)
    folds = make_folds(data, n_classes, scheme["folds"], cfg.seed, prior.fold_votes)
    device = dist.device if dist else pick_device(cfg.device)
    leader = dist is None or dist.leader
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

    # Seeded here, and the caller's RNG state is restored afterwards.
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)

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

        # -- contrastive pre-training, once (or its result from an earlier round on the same rows)
        t0 = time.time()
        pretrain_samples = 0
        if pretraining and prior.pretrained is not None:
            model.load_state_dict(prior.pretrained)
            notes.append("pre-training" + (" and the neighbour graph" if prior.graph is not None else "")
                         + " taken from an earlier round on the same rows")
        elif pretraining:
            with train_threads(cfg, device):
                pretrain_samples = pretrain(model, bank, data.pretrain_rows, cfg,
                                            lambda msg, f: report(f"pre-training: {msg}", f_load + f_pre * f), dist)
        pretrained = copy_state(model)
        t_pretrain = time.time() - t0

        # -- the neighbour graph over the pre-trained (label-free) embedding: an earlier round's, or
        # built after the folds (engine/round_graph.py), whose out-of-fold predictions say whether it is needed
        graph, build_graph, t_graph = None, False, 0.0
        if cfg.propagation.enabled and not pretraining:
            notes.append("propagation skipped: it needs the pre-trained embedding, and pre-training did not run")
        elif cfg.propagation.enabled and prior.graph is not None:
            graph = prior.graph
            notes.append(f"neighbour graph over {len(bank.rows)} rows: the previous round's, same rows and "
                         "pre-training")
        else:
            build_graph = cfg.propagation.enabled and leader

        # -- K-fold fine-tuning on gold (+ extra rows in training folds), folds side by side
        t0 = time.time()
        warm = prior.fold_states is not None
        starts = prior.fold_states if warm else [pretrained] * len(folds)
        mine = fit_folds(model, cast(list, starts), warm, bank, folds, data.gold_rows, data.gold_labels,
                         data.score_rows, n_classes, cfg,
                         lambda msg, f: report(msg, f_load + f_pre + 0.9 * (0.99 - f_load - f_pre) * f), dist)
        gathered = gather(mine, dist)   # every rank's folds, on rank 0
        if gathered is None:
            return None
        by_fold = {k: fit for part in gathered for k, fit in part.items()}
        fits = [by_fold[k] for k in range(len(folds))]
        t_folds = time.time() - t0
        oof = np.zeros((len(data.gold_rows), n_classes), np.float32)
        score_sum = np.zeros((len(data.score_rows), n_classes), np.float64)
        votes = np.zeros((len(folds), len(data.score_rows)), np.int8)
        for k, (fold, fit) in enumerate(zip(folds, fits)):
            oof[fold.eval_pos] = fit.eval_probs
            score_sum += fold_term(fit.score_probs, cfg.finetune.average)
            votes[k] = fit.score_probs.argmax(1)
        fold_states, fold_info = [f.state for f in fits], [f.info for f in fits]
        # per-fold times summed, in the share of the folds' wall time they took
        busy = sum(f.train_s + f.score_s for f in fits) or 1.0
        t_finetune = t_folds * sum(f.train_s for f in fits) / busy
        t_score = t_folds * sum(f.score_s for f in fits) / busy

    # -- the ensemble's scores and the CV metrics (evaluation folds held gold rows only)
    score_probs = ensemble_mean(score_sum, len(folds), cfg.finetune.average)
    cv = classification_metrics(data.gold_labels, oof.argmax(1), n_classes)
    ece_raw = expected_calibration_error(oof, data.gold_labels)
    graph_weight, graph_cv, share_kept = None, None, False
    pseudo = data.extra_from_model is not None and bool(data.extra_from_model.any())
    # the graph's share is given only where pseudo-labels without their folds' votes make the
    # out-of-fold predictions optimistic (TrainSet.graph_share)
    share = data.graph_share if pseudo and prior.fold_votes is None else None
    if build_graph:
        t0 = time.time()
        report("label spreading: neighbour graph", 0.99)
        graph = graph_for_round(embed(cast(MRCCL, model), bank, cfg.score_batch_size), bank, data, folds, oof,
                                cv["waf"], share, n_classes, cfg, notes)
        t_graph = time.time() - t0
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
        # predictions of both, or the graph's share given and only the temperature fitted
        if share is not None:
            notes.append("pseudo-labels without their folds' votes: the graph keeps its share of the last round on "
                         "human labels")
            share_kept = True
        weights = join_weights(oof, oof_graph, data.gold_labels, share, cfg)
        joined_waf = left_out(oof, oof_graph, weights, data.gold_labels, cv["waf"], cfg)
        if joined_waf is not None:
            share_kept = False
            notes.append(f"label spreading left out: out-of-fold WAF {100 * joined_waf:.2f} with it, "
                         f"{100 * cv['waf']:.2f} without")
            temperature = fit_temperature(oof, data.gold_labels) if cfg.finetune.calibrate else 1.0
            oof, score_probs = apply_temperature(oof, temperature), apply_temperature(score_probs, temperature)
        else:
            temperature, graph_weight = 1.0 / float(weights[0]), round(float(weights[1]), 4)
            oof, score_probs = combine([oof, oof_graph], weights), combine([score_probs, score_graph], weights)
        t_graph += time.time() - t0
    metrics = {
        "cv_waf": cv["waf"], "cv_accuracy": cv["accuracy"], "cv_f1": cv["f1"], "cv_confusion": cv["confusion"],
        "temperature": round(temperature, 4), "oof_ece_raw": ece_raw,
        "graph_weight": graph_weight, "graph_cv_waf": graph_cv, "graph_share_kept": share_kept,
        "oof_ece": expected_calibration_error(oof, data.gold_labels),
        "oof_log_loss": log_loss(data.gold_labels, oof),
        "folds": fold_info, "eval_scheme": scheme, "device": str(device), "warnings": notes,
        "n_train": {Source.GOLD.value: int(len(data.gold_rows)), "extra": int(len(data.extra_rows))},
        "samples_trained": {"pretrain": pretrain_samples, "finetune": sum(f["samples"] for f in fold_info)},
        "timings": {"load_s": round(t_load, 2), "pretrain_s": round(t_pretrain, 2),
                    "finetune_s": round(t_finetune, 2), "score_s": round(t_score, 2),
                    "graph_s": round(t_graph, 2), "folds_s": round(t_folds, 2),
                    "total_s": round(time.time() - t_start, 2)},
        "fold_workers": dist.world if dist else fold_workers(cfg, device, len(folds)),
        "processes": dist.world if dist else 1,
    }
    state = {"config": cfg.to_dict(), "modalities": dims, "n_classes": n_classes, "folds": fold_states,
             "temperature": temperature, "graph_weight": graph_weight, "fold_key": key,
             "score_rows": torch.as_tensor(data.score_rows), "fold_votes": torch.as_tensor(votes)}
    reusable = {"reuse_key": reuse, "pretrained": pretrained if pretraining else None, "graph": graph}
    report("done", 1.0)  # not vocab: a progress message
    return RoundResult(score_probs, oof, metrics, state, votes, reusable)


def _usable(prior: Prior | None, key: str, reuse: str, k: int, n_extra: int, cfg: Config,
            notes: list[str]) -> Prior:
    """The parts of `prior` this round can use (see Prior), with a note for each part dropped."""
    if prior is None:
        return Prior()
    out = Prior()
    same_folds = prior.fold_key == key
    if prior.fold_votes is not None:
        if same_folds and np.shape(prior.fold_votes) == (n_extra, k):
            out.fold_votes = np.asarray(prior.fold_votes, np.int64)
        else:
            notes.append("the previous round split the folds otherwise: every pseudo-label trains every fold")
    if prior.fold_states is not None and cfg.finetune.warm_epochs:
        if same_folds and len(prior.fold_states) == k:
            out.fold_states = prior.fold_states
        else:
            notes.append("the previous round split the folds otherwise: every fold starts from the pre-trained "
                         "weights")
    if prior.reuse_key == reuse:
        out.pretrained, out.graph = prior.pretrained, prior.graph
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
        total += fold_term(predict_rows(model, bank, rows, run.score_batch_size), saved.finetune.average)
    probs = ensemble_mean(total, len(state["folds"]), saved.finetune.average)
    return apply_temperature(probs, float(state.get("temperature", 1.0)))


def _load_fold(model: nn.Module, fold_state: dict) -> None:
    """Load one fold's weights; a checkpoint from before input standardisation has no
    input_norm buffers and keeps the identity it was trained with."""
    missing, unexpected = model.load_state_dict(fold_state, strict=False)
    bad = [k for k in missing if not k.startswith("input_norm.")] + list(unexpected)
    if bad:
        raise InputError(f"checkpoint: weights do not match the saved model ({', '.join(bad[:3])})")


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
    if data.extra_targets is not None:
        targets = np.asarray(data.extra_targets, np.float32)
        if targets.shape != (len(data.extra_rows), n_classes) or not np.all(np.isfinite(targets)) or \
                (targets < 0).any() or not np.allclose(targets.sum(1), 1.0, atol=1e-4):
            raise InputError(f"extra_targets: expected one class distribution per extra row "
                             f"[{len(data.extra_rows)}, {n_classes}] (finite, >= 0, rows summing to 1), got "
                             f"{targets.dtype} {list(targets.shape)}")
        data = dataclasses.replace(data, extra_targets=targets)
    votes = None if data.prior is None else data.prior.fold_votes
    if votes is not None:
        votes = np.asarray(votes)
        if votes.ndim != 2 or len(votes) != len(data.extra_rows) or not np.issubdtype(votes.dtype, np.integer):
            raise InputError(f"prior.fold_votes: expected integer classes [{len(data.extra_rows)}, K], got "
                             f"{votes.dtype} {list(votes.shape)}")
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
    if problem := gold_problem(counts.tolist(), [str(c) for c in range(n_classes)]):
        raise InputError(problem)
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
