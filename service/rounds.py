"""One training round: read the labels, run the engine, write predictions, metrics and the
policy's thresholds.

The round is recorded as `running` before training and completed in one transaction at the
end (predictions, automatic decisions, the thresholds the policy may set, metrics). Anything
that stops it in between (an error, Ctrl-C, SIGTERM) marks it failed; a SIGKILL is caught at
the next start by `Project.mark_dead_rounds_failed`. Either way the previous round's
predictions and thresholds stay in force.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import time
import warnings
from pathlib import Path
from typing import cast

import numpy as np

from ..db.errors import RoundBusy, StoreBusy, StoreError
from ..db.store import Store
from ..db.writes import DecisionIn
from ..db.models import Round
from ..db.round_queries import RoundQueries
from ..engine import checkpoint, self_training
from ..engine.calibration import expected_calibration_error
from ..engine.config import Config, from_dict
from ..engine.disk import require_space
from ..engine.errors import InputError
from ..engine.metrics import classification_metrics
from ..engine.distributed import Dist, broadcast
from ..engine.features import FeatureStore
from ..engine.folds import gold_problem
from ..engine.progress import ProgressFn
from ..engine.train import (
    Prior, RoundResult, TrainSet, train_round as engine_train_round, train_round_distributed,
)
from ..engine.vocab import (
    HUMAN_SOURCES, POOL_SOURCES, Action, CardKind, PredictionKind, RoundStatus, Source, Split, Tool,
)

from .project import Project, ProjectError
from .votes import training_labels

# How often a training process records how far it is (which every page follows), and with it
# that it is alive (Project.HEARTBEAT_LIMIT is minutes).
PROGRESS_EVERY_S = 1.0


def run_round(project: Project, cfg: Config, config_name: str = "default",
              auto_accept: bool = False, progress: ProgressFn | None = None,
              skip_if_nothing_new: bool = False, dist: Dist | None = None) -> dict | None:
    """Train the next round and return its summary (as `status --json` shows it, plus the
    thresholds now in force). With `skip_if_nothing_new`, None without training when the
    automatic step finds no new candidate. With `dist` (rank 0 of a torchrun group), the other
    ranks, waiting in `follow_rounds`, train it with this process."""
    from .project import round_summary

    project.mark_dead_rounds_failed()
    store, classes = project.store, project.classes
    cfg.self_training.check_classes(classes)
    C = len(classes)
    if not project.features.exists():
        raise ProjectError(f"{project.root}: no features imported yet (run 'mersemi import')")
    project.features.check_finite()
    project.require_sound_store()

    gold_ids, gold_y, _ = store.samples.split_arrays(Split.LABELED)
    has_gold = gold_y >= 0
    gold_ids, gold_y = gold_ids[has_gold], gold_y[has_gold]
    counts = np.bincount(gold_y, minlength=C)
    if problem := gold_problem(counts.tolist(), classes):
        raise ProjectError(problem)
    pool_ids, _, pool_true = store.samples.split_arrays(Split.UNLABELED)
    test_ids, test_y, _ = store.samples.split_arrays(Split.TEST)

    # the labels in force, a card's votes read as config `votes:` says (service/votes.py)
    extra_ids, extra_y, sources, targets = training_labels(project, cfg.votes)
    st = cfg.self_training
    if not st.use_pseudo_labels:  # the "w/o pseudo labels" ablation keeps human labels only
        human = np.isin(np.asarray(sources, dtype=object), HUMAN_SOURCES)
        extra_ids, extra_y = extra_ids[human], extra_y[human]
        sources = [src for src, h in zip(sources, human) if h]
        targets = None if targets is None else targets[human]
    thresholds = store.thresholds.values()
    auto, auto_selection = (_auto_candidates(project, cfg, thresholds, gold_y, extra_y, sources)
                            if auto_accept and st.use_pseudo_labels else ([], None))
    if auto_accept and skip_if_nothing_new and not auto:
        return None
    if auto:
        extra_ids = np.concatenate([extra_ids, [d.sample_id for d in auto]]).astype(np.int64)
        extra_y = np.concatenate([extra_y, [d.label for d in auto]]).astype(np.int64)
        sources = sources + [Source.PSEUDO] * len(auto)
        if targets is not None:
            targets = np.concatenate([targets, np.eye(C, dtype=np.float32)[[d.label for d in auto]]])
    composition = _composition(classes, gold_y, extra_y, sources, new_pseudo=len(auto))
    composition["human_digest"] = _human_digest(extra_ids, extra_y, sources)
    from_model = np.asarray(sources, dtype=object) == Source.PSEUDO   # only the tool's labels
    share_from, share = (_graph_share(store) if from_model.any() else (None, None))
    previous = store.rounds.current()
    prior = _prior(project, previous, extra_ids, from_model.any(), cfg)
    fixed = st.threshold_for(classes) if st.policy == "fixed" else [1.0] * C

    _require_room(project, previous, len(gold_ids) + len(pool_ids) + len(test_ids), C)
    try:
        rid = store.rounds.create(config=cfg.to_dict(), config_name=config_name,
                                  thresholds=dict(zip(classes, thresholds)), auto_accept=auto_accept,
                                  pid=os.getpid(), host=socket.gethostname())
    except RoundBusy as e:
        raise ProjectError(f"{e}; wait for it to finish (see 'mersemi status')") from None

    saved = checkpoint.path(project.root / "checkpoints", rid)
    try:
        t0 = time.time()
        data = TrainSet(features=project.features.matrices(), gold_rows=gold_ids, gold_labels=gold_y,
                        extra_rows=extra_ids, extra_labels=extra_y,
                        pretrain_rows=np.concatenate([gold_ids, pool_ids]),
                        score_rows=np.concatenate([pool_ids, test_ids]), graph_share=share,
                        extra_from_model=from_model, prior=prior, extra_targets=targets)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the engine also lists its warnings in metrics
            beat = Heartbeat(store.rounds, rid, progress)
            if dist is None:
                result = engine_train_round(data, C, cfg, progress=beat)
            else:   # the features stay on disk: every rank maps them itself
                broadcast({"data": dataclasses.replace(data, features={}), "n_classes": C, "config": cfg.to_dict()},
                          dist)
                result = cast(RoundResult, train_round_distributed(data, C, cfg, dist, progress=beat))
        pool_probs, test_probs = result.score_probs[:len(pool_ids)], result.score_probs[len(pool_ids):]

        metrics = dict(result.metrics)
        _add_test_metrics(metrics, test_y, test_probs, C)
        metrics["auto_accept"] = auto_selection
        metrics["graph_share_from"] = share_from if metrics.get("graph_share_kept") else None
        metrics["pseudo_precision"] = _pseudo_precision(classes, extra_ids, extra_y, sources,
                                                        pool_ids, pool_true)
        # The policy proposes the next thresholds from this round's scores of the pool samples
        # still open after its automatic decisions; the store sets the classes it may set.
        decided = np.union1d(store.decisions.decided_ids(), [d.sample_id for d in auto])
        proposal, unreachable = self_training.propose_thresholds(
            pool_probs.argmax(1), pool_probs.max(1), ~np.isin(pool_ids, decided), C,
            policy=st.policy, target=st.target_precision, per=st.target_per, fixed=fixed)
        metrics["unreachable"] = unreachable
        metrics["wall_s"] = round(time.time() - t0, 2)
        discarded = _worse_than(previous, composition, metrics, gold_y) if auto else None
        if discarded is None:
            checkpoint.save(result.state, saved)
        if result.reusable.get("reuse_key") != prior.reuse_key:
            checkpoint.save_reuse(result.reusable, checkpoint.reuse_path(project.root / "checkpoints"))
        if progress:
            progress("writing predictions", 1.0)
        store.rounds.complete(
            rid, predictions=[(PredictionKind.POOL, pool_ids, pool_probs), (PredictionKind.TEST, test_ids, test_probs),
                              (PredictionKind.OOF, gold_ids, result.oof_probs)],
            decisions=auto, reviewer=Tool.AUTO, composition=composition, metrics=metrics,
            checkpoint=str(saved.relative_to(project.root)),
            thresholds=dict(enumerate(proposal)), everyone=st.policy_overrides_reviewers, discarded=discarded)
    except BaseException as e:
        saved.unlink(missing_ok=True)
        try:
            store.rounds.fail(rid, _describe(e))
        except StoreError:  # a full disk, a server gone: the next command marks the dead round failed
            pass
        if isinstance(e, InputError):
            raise ProjectError(str(e)) from None
        raise
    return round_summary(store.rounds.get(rid), classes) | {"thresholds_now": project.thresholds()}


def follow_rounds(root: Path, dist: Dist) -> int:
    """A rank other than 0 of a torchrun group: train every round rank 0 starts (`run_round`),
    on the features of the project folder `root`, until rank 0 says it is done. This process
    never opens the store. Returns the rounds it took part in."""
    features = FeatureStore(Path(root) / "features").matrices()
    done = 0
    while (job := broadcast(None, dist)) is not None:
        data = dataclasses.replace(job["data"], features=features)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            train_round_distributed(data, job["n_classes"], from_dict(job["config"]), dist)
        done += 1
    return done


class Heartbeat:
    """A progress callback that also records in the round's row, at most every PROGRESS_EVERY_S
    and in a short transaction of its own, how far the round is and so that its process is
    alive, then passes the progress on."""

    def __init__(self, rounds: RoundQueries, round_id: int, progress: ProgressFn | None) -> None:
        self.rounds, self.round_id, self.progress = rounds, round_id, progress
        self.last = time.monotonic()   # create_round recorded the first beat

    def __call__(self, message: str, fraction: float) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            try:
                self.rounds.heartbeat(self.round_id, fraction, message)
            except StoreBusy:
                pass  # another writer holds the lock; the next beat comes well within the limit
        if self.progress:
            self.progress(message, fraction)


def _auto_candidates(project: Project, cfg: Config, thresholds: list[float], gold_y: np.ndarray,
                     extra_y: np.ndarray, sources: list[str]) -> tuple[list[DecisionIn], dict | None]:
    """The automatic step: the current round's candidates at the project's thresholds, within
    the class-balance cap, become accepted pseudo-labels (engine/self_training.py). Samples with a
    decision in force, human or automatic, are never taken. Returns the decisions and what
    was selected per class (recorded with the round)."""
    from .review import auto_accept_selection

    if project.store.rounds.current() is None:
        return [], None
    st = cfg.self_training
    view, sel = auto_accept_selection(project, st.balance_cap, thresholds, labels=(gold_y, extra_y, sources))
    decisions = [DecisionIn(int(view.pool_ids[i]), Action.ACCEPT, int(view.pool_pred[i]), view.round_id, "auto-accept",
                            card=CardKind.VERIFY, confidence=float(view.pool_conf[i]))
                 for i in np.flatnonzero(sel.mask)]
    summary = {"policy": st.policy, "target_precision": st.target_precision, "target_per": st.target_per,
               "balance_cap": st.balance_cap,
               "from_round": view.round_id, "thresholds": dict(zip(project.classes, map(float, thresholds))),
               "classes": sel.as_dict(project.classes), "accepted": len(decisions)}
    return decisions, summary


def _graph_share(store: Store) -> tuple[int | None, float | None]:
    """The graph's share of the latest finished round trained on human labels only
    (engine/self_training.graph_share_from_history)."""
    history = [self_training.RoundRecord(r.id, r.status == RoundStatus.DONE,
                                         (r.composition or {}).get(Source.PSEUDO, 1) == 0, r.metrics or {})
               for r in store.rounds.all()]
    return self_training.graph_share_from_history(history)


def _composition(classes: list[str], gold_y: np.ndarray, extra_y: np.ndarray,
                 sources: list[str], new_pseudo: int = 0) -> dict:
    """The training set's make-up: per label source (engine/vocab.Source) the count and the
    count per class; `pseudo_new`: the pseudo-labels this round's automatic step added."""
    src = np.asarray(sources, dtype=object)
    out: dict = {Source.GOLD: int(len(gold_y)),
                 "gold_per_class": {c: int(np.sum(gold_y == i)) for i, c in enumerate(classes)}}
    for s in POOL_SOURCES:
        mask = src == s if len(src) else np.zeros(0, bool)
        out[s] = int(mask.sum())
        out[f"{s}_per_class"] = {c: int(np.sum(extra_y[mask] == i)) for i, c in enumerate(classes)}
    return out | {"pseudo_new": int(new_pseudo), "total": int(len(gold_y) + len(extra_y))}


def _add_test_metrics(metrics: dict, test_y: np.ndarray, test_probs: np.ndarray, C: int) -> None:
    labeled = test_y >= 0
    if not labeled.any():
        return
    m = classification_metrics(test_y[labeled], test_probs[labeled].argmax(1), C)
    metrics.update(test_waf=m["waf"], test_accuracy=m["accuracy"], test_f1=m["f1"],
                   test_n=int(labeled.sum()),
                   test_ece=expected_calibration_error(test_probs[labeled], test_y[labeled]))


def _pseudo_precision(classes: list[str], extra_ids: np.ndarray, extra_y: np.ndarray,
                      sources: list[str], pool_ids: np.ndarray, pool_true: np.ndarray) -> dict | None:
    """Share of the tool's pseudo-labels that match the pool's hidden truth, per class, when the
    truth is known (synthetic data). Evaluation only: nothing reads it back for training."""
    truth = dict(zip(pool_ids.tolist(), pool_true.tolist()))
    pseudo = [(i, y) for i, y, s in zip(extra_ids.tolist(), extra_y.tolist(), sources)
              if s == Source.PSEUDO and truth.get(i, -1) >= 0]
    if not pseudo or all(v < 0 for v in pool_true.tolist()):
        return None
    out: dict[str, float | None] = {}
    for c, name in enumerate(classes):
        hits = [truth[i] == y for i, y in pseudo if y == c]
        out[name] = round(float(np.mean(hits)), 4) if hits else None
    out["overall"] = round(float(np.mean([truth[i] == y for i, y in pseudo])), 4)
    return out


def _prior(project: Project, previous: Round | None, extra_rows: np.ndarray, pseudo: bool, cfg: Config) -> Prior:
    """What this round may take from the round in force (engine/train.Prior): its fold split,
    its fold models' votes for the pseudo-labels, its fold models (warm start), and the
    project's pre-trained weights and graph. The engine uses each part only where it fits."""
    reuse = checkpoint.load_reuse(checkpoint.reuse_path(project.root / "checkpoints")) or {}
    prior = Prior(reuse_key=reuse.get("reuse_key"), pretrained=reuse.get("pretrained"), graph=reuse.get("graph"))
    file = project.root / previous.checkpoint if previous is not None and previous.checkpoint else None
    if file is None or not file.is_file():
        return prior
    state = checkpoint.load(file)
    prior.fold_key = state.get("fold_key")
    if pseudo:
        prior.fold_votes = checkpoint.votes_for(state, extra_rows)
    if cfg.finetune.warm_epochs:
        prior.fold_states = state.get("folds")
    return prior


def _human_digest(ids: np.ndarray, labels: np.ndarray, sources: list[str]) -> str:
    """A fingerprint of the human labels a round trains on: two rounds with the same one differ
    only by the tool's pseudo-labels."""
    human = np.isin(np.asarray(sources, dtype=object), HUMAN_SOURCES)
    pairs = np.stack([ids[human], labels[human]], axis=1).astype(np.int64) if human.any() else np.zeros((0, 2))
    return hashlib.sha1(np.ascontiguousarray(pairs, np.int64).tobytes()).hexdigest()[:16]


def _worse_than(previous: Round | None, composition: dict, metrics: dict, gold_y: np.ndarray) -> str | None:
    """Why a round whose automatic step added pseudo-labels is not kept: its out-of-fold
    log-loss on the gold samples (evidence the test split never touches; honest, because each
    fold trains only on the pseudo-labels its own predecessor voted for) is worse than that of
    the round in force, trained on the same human labels. None: keep it (or no such round to
    compare with)."""
    if previous is None or previous.metrics is None or previous.composition is None:
        return None
    if previous.composition.get("human_digest") != composition["human_digest"] or \
            previous.composition.get(Source.GOLD) != composition[Source.GOLD]:
        return None   # new human labels since: the rounds are not comparable on pseudo-labels alone
    before, after = previous.metrics.get("oof_log_loss"), metrics.get("oof_log_loss")
    if before is None or after is None or after <= before:
        return None
    return (f"not kept: out-of-fold log-loss {before:.3f} -> {after:.3f} with {composition['pseudo_new']} new "
            f"pseudo-labels; round {previous.id} stays in force")


def _require_room(project: Project, previous: Round | None, rows: int, n_classes: int) -> None:
    """Refuse before training when the round's files cannot be written: a checkpoint the size of
    the last one, the reuse file rewritten beside the old, and on SQLite its predictions."""
    folder = project.root / "checkpoints"
    last = project.root / previous.checkpoint if previous is not None and previous.checkpoint else None
    need = sum(f.stat().st_size for f in (last, checkpoint.reuse_path(folder)) if f is not None and f.is_file())
    if project.store.db.engine.dialect.name == "sqlite":
        need += rows * (n_classes * 4 + 120) * 2   # the probability blobs and their index, then the WAL copy
    require_space(folder, need, "the round's checkpoint and predictions")


def _describe(e: BaseException) -> str:
    if isinstance(e, KeyboardInterrupt):
        return "interrupted"
    if isinstance(e, SystemExit):
        return e.code if isinstance(e.code, str) else f"stopped (exit {e.code})"
    return f"{e.__class__.__name__}: {e}"
