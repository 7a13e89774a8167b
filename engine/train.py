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

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from .bank import FeatureBank, pick_device
from .calibration import (apply_temperature, combine, ensemble_mean, expected_calibration_error, fit_temperature,
                          fold_term)
from .checkpoint import Checkpoint, Reusable
from .config import Config, checkpoint_config
from .distributed import Dist, gather
from .errors import InputError
from .folds import MIN_GOLD_PER_CLASS, eval_scheme, fold_key, make_folds
from .loops import copy_state, embed, fit_folds, fold_workers, predict_rows, pretrain, train_threads
from .metrics import log_loss, waf
from .models import AttentionBaseline, MRCCL, build_model
from .progress import ProgressFn
from .results import Calibration, RoundMetrics, SplitMetrics, Work
from .round_graph import graph_for_round, join_weights, left_out, spread_labels as _spread_labels
from .round_inputs import Prior, TrainSet, check_rows, validate
from .vocab import Source

__all__ = ["MIN_GOLD_PER_CLASS", "ProgressFn", "TrainSet", "Prior", "Scores", "RoundResult", "train_round", "predict",
           "pick_device"]

Model = MRCCL | AttentionBaseline


@dataclass
class Scores:
    """A round's calibrated probabilities by split, float32 [n, C], rows in the TrainSet's order."""
    pool: np.ndarray
    test: np.ndarray
    oof: np.ndarray          # out-of-fold, of the gold rows


@dataclass
class RoundResult:
    scores: Scores
    metrics: RoundMetrics
    checkpoint: Checkpoint = field(repr=False)
    reusable: Reusable = field(repr=False)   # what a later round on the same rows may reuse


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
    data, notes = validate(data, n_classes, cfg)  # raises before any work on bad input
    scheme = eval_scheme(np.bincount(data.gold_labels, minlength=n_classes), cfg.finetune)
    key = fold_key(data.gold_rows, data.gold_labels, scheme["folds"], cfg.seed)
    reuse = reuse_key(data, cfg)
    prior = _usable(data.prior, key, reuse, scheme["folds"], len(data.extra_rows), cfg, notes)
    folds = make_folds(data, n_classes, scheme["folds"], cfg.seed, prior.fold_votes, _teacher(data, cfg, notes))
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
    reused = prior.reuse
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
        if pretraining and reused is not None and reused.pretrained is not None:
            model.load_state_dict(reused.pretrained)
            notes.append("pre-training" + (" and the neighbour graph" if reused.graph is not None else "")
                         + " taken from an earlier round on the same rows")
        elif pretraining:
            with train_threads(cfg, device):
                pretrain_samples = pretrain(model, bank, data.pretrain_rows, cfg,
                                            lambda msg, f: report(f"pre-training: {msg}", f_load + f_pre * f), dist)
        pretrained = copy_state(model)
        t_pretrain = time.time() - t0

        # -- the neighbour graph over the pre-trained (label-free) embedding: an earlier round's, or
        # built after the folds (engine/round_graph.py), whose out-of-fold predictions say whether it is needed
        graph, build_graph = _graph_policy(cfg, pretraining, reused, leader, len(bank.rows), notes)
        t_graph = 0.0

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
    cv_pred = oof.argmax(1)    # the fold ensemble's classes: the CV metrics (the graph's own: graph_cv_waf)
    cv_waf = waf(data.gold_labels, cv_pred)
    ece_raw = expected_calibration_error(oof, data.gold_labels)
    graph_weight, graph_cv = None, None
    if build_graph:
        t0 = time.time()
        report("label spreading: neighbour graph", 0.99)
        graph = graph_for_round(embed(cast(MRCCL, model), bank, cfg.score_batch_size), bank, data, folds, oof,
                                cv_waf, n_classes, cfg, notes)
        t_graph = time.time() - t0
    if graph is not None:
        t0 = time.time()
        report("label spreading", 0.99)
        oof_graph, score_graph = _spread_labels(graph, bank, data, folds, n_classes, cfg)
        graph_cv = waf(data.gold_labels, oof_graph.argmax(1))
        graph_weight, temperature, oof, score_probs = _join_graph(oof, score_probs, oof_graph, score_graph,
                                                                  data.gold_labels, cv_waf, cfg, notes)
        t_graph += time.time() - t0
    else:
        # -- calibration: one temperature fitted on the honest (out-of-fold) predictions
        temperature = fit_temperature(oof, data.gold_labels) if cfg.finetune.calibrate else 1.0
        oof, score_probs = apply_temperature(oof, temperature), apply_temperature(score_probs, temperature)
    n_pool = len(data.pool_rows)
    scores = Scores(pool=score_probs[:n_pool], test=score_probs[n_pool:], oof=oof)
    metrics = RoundMetrics(
        cv=SplitMetrics.of(data.gold_labels, oof, n_classes, pred=cv_pred),
        test=_test_metrics(data, scores.test, n_classes),
        calibration=Calibration(temperature=round(temperature, 4), graph_weight=graph_weight, graph_cv_waf=graph_cv,
                                ece_before=ece_raw, log_loss=log_loss(data.gold_labels, oof)),
        eval_scheme=scheme,
        work=Work(device=str(device), processes=dist.world if dist else 1,
                  fold_workers=dist.world if dist else fold_workers(cfg, device, len(folds)),
                  n_train={Source.GOLD.value: int(len(data.gold_rows)), "extra": int(len(data.extra_rows))},
                  samples_trained={"pretrain": pretrain_samples, "finetune": sum(f["samples"] for f in fold_info)},
                  timings={"load_s": round(t_load, 2), "pretrain_s": round(t_pretrain, 2),
                           "finetune_s": round(t_finetune, 2), "score_s": round(t_score, 2),
                           "graph_s": round(t_graph, 2), "folds_s": round(t_folds, 2),
                           "total_s": round(time.time() - t_start, 2)},
                  folds=fold_info),
        notes=notes)
    saved = Checkpoint(config=cfg.to_dict(), modalities=dims, n_classes=n_classes, folds=fold_states,
                       temperature=temperature, graph_weight=graph_weight, fold_key=key,
                       score_rows=data.score_rows, fold_votes=votes)
    reusable = Reusable(reuse, pretrained if pretraining else None, graph)
    report("done", 1.0)  # not vocab: a progress message
    return RoundResult(scores, metrics, saved, reusable)


def _graph_policy(cfg: Config, pretraining: bool, reused: Reusable | None, leader: bool, n_rows: int,
                  notes: list[str]) -> tuple[sp.csr_matrix | None, bool]:
    """THE graph policy: (an earlier round's graph, whether to build one after the folds). No
    graph with propagation off or without a pre-trained (label-free) embedding to build it on; a
    round on the same rows as an earlier one takes that round's graph; only the leading process
    builds one (engine/round_graph.graph_for_round, which may leave it out on an estimate)."""
    if not cfg.propagation.enabled:
        return None, False
    if not pretraining:
        notes.append("propagation skipped: it needs the pre-trained embedding, and pre-training did not run")
        return None, False
    if reused is not None and reused.graph is not None:
        notes.append(f"neighbour graph over {n_rows} rows: the previous round's, same rows and pre-training")
        return reused.graph, False
    return None, leader


def _join_graph(oof: np.ndarray, score_probs: np.ndarray, oof_graph: np.ndarray, score_graph: np.ndarray,
                gold_labels: np.ndarray, cv_waf: float, cfg: Config,
                notes: list[str]) -> tuple[float | None, float, np.ndarray, np.ndarray]:
    """Calibration with the graph: the ensemble's and the graph's weights, fitted on the
    out-of-fold predictions of both (a plain product when calibration is off), and the graph
    left out where it costs out-of-fold classes. Returns (the graph's weight or None when left
    out, the ensemble's temperature, out-of-fold and score probabilities)."""
    weights = join_weights(oof, oof_graph, gold_labels, cfg)
    joined_waf = left_out(oof, oof_graph, weights, gold_labels, cv_waf, cfg)
    if joined_waf is not None:
        notes.append(f"label spreading left out: out-of-fold WAF {100 * joined_waf:.2f} with it, "
                     f"{100 * cv_waf:.2f} without")
        temperature = fit_temperature(oof, gold_labels) if cfg.finetune.calibrate else 1.0
        return None, temperature, apply_temperature(oof, temperature), apply_temperature(score_probs, temperature)
    return (round(float(weights[1]), 4), 1.0 / float(weights[0]), combine([oof, oof_graph], weights),
            combine([score_probs, score_graph], weights))


def _test_metrics(data: TrainSet, probs: np.ndarray, n_classes: int) -> SplitMetrics | None:
    """The test rows with a label against the round's scores; None without any."""
    if data.test_labels is None:
        return None
    known = data.test_labels >= 0
    return SplitMetrics.of(data.test_labels[known], probs[known], n_classes) if known.any() else None


def _teacher(data: TrainSet, cfg: Config, notes: list[str]) -> np.ndarray | None:
    """The out-of-fold classes the doubly robust loss needs, when it is configured and there are
    pseudo-labels; None (the plain loss) otherwise, with a note when it was wanted."""
    if cfg.self_training.pseudo_loss != "doubly_robust" or data.extra_from_model is None \
            or not data.extra_from_model.any():
        return None
    teacher = None if data.prior is None else data.prior.oof_classes
    if teacher is None or not (np.asarray(teacher) >= 0).any():
        notes.append("doubly robust loss: no out-of-fold classes of the gold samples from the round before; "
                     "the plain loss")
        return None
    teacher = np.asarray(teacher, np.int64)
    right = teacher[teacher >= 0] == data.gold_labels[teacher >= 0]
    notes.append(f"doubly robust loss: {int(data.extra_from_model.sum())} pseudo-labels against the round before's "
                 f"out-of-fold classes of {len(right)} gold samples ({right.mean():.0%} right)")
    return teacher


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
    if prior.reuse is not None and prior.reuse.key == reuse:
        out.reuse = prior.reuse
    return out


def predict(saved: Checkpoint, features: dict[str, np.ndarray], rows: np.ndarray,
            cfg: Config | None = None) -> np.ndarray:
    """Mean probabilities [len(rows), C] of a saved fold ensemble at the round's temperature.
    The ensemble alone: a round with label spreading (`saved.graph_weight` not None) also
    multiplied its stored scores by the graph's, which only exists over that round's rows.

    The model is rebuilt from the config saved with it; `cfg`, when given, only chooses the
    device and the scoring batch size."""
    trained = checkpoint_config(saved.config)
    run = cfg or trained
    dims, n_classes = dict(saved.modalities), saved.n_classes
    for m, d in dims.items():
        if m not in features:
            raise InputError(f"features: modality {m!r} missing (the ensemble was trained on {', '.join(dims)})")
        if features[m].ndim != 2 or features[m].shape[1] != d:
            raise InputError(f"features[{m!r}]: expected [N, {d}], got {list(features[m].shape)}")
    n_rows = {int(features[m].shape[0]) for m in dims}
    if len(n_rows) != 1:
        raise InputError(f"features: modalities have different row counts {sorted(n_rows)}")
    rows = check_rows(rows, "rows", n_rows.pop())
    device = pick_device(run.device)
    bank = FeatureBank({m: features[m] for m in dims}, [rows], device)
    model = build_model(dims, n_classes, trained).to(device)
    total = np.zeros((len(rows), n_classes), np.float64)
    for fold_state in saved.folds:
        _load_fold(model, fold_state)
        total += fold_term(predict_rows(model, bank, rows, run.score_batch_size), trained.finetune.average)
    probs = ensemble_mean(total, len(saved.folds), trained.finetune.average)
    return apply_temperature(probs, float(saved.temperature))


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
