"""One training round: read the labels and the round in force from the store, drive the
self-training loop (engine/loop.py) one round, write predictions, the round's record and the
policy's thresholds.

The round is recorded as `running` before training and completed in one transaction at the
end (predictions, automatic decisions, the thresholds the policy may set, metrics). Anything
that stops it in between (an error, Ctrl-C, SIGTERM) marks it failed; a SIGKILL is caught at
the next start by `Project.mark_dead_rounds_failed`. Either way the previous round's
predictions and thresholds stay in force.
"""
from __future__ import annotations

import dataclasses
import os
import socket
import time
import warnings
from pathlib import Path
from typing import cast

import numpy as np

from ..db.errors import RoundBusy, StoreBusy, StoreError
from ..db.models import Round
from ..db.round_queries import RoundQueries
from ..db.writes import DecisionIn
from ..engine import checkpoint
from ..engine.checkpoint import Checkpoint, Reusable
from ..engine.config import Config, from_dict
from ..engine.disk import require_space
from ..engine.distributed import Dist, broadcast
from ..engine.errors import InputError
from ..engine.features import FeatureStore
from ..engine.folds import gold_problem
from ..engine.loop import InForce, Labels, LoopData, LoopRound, SelfTrainer, TrainFn
from ..engine.progress import ProgressFn
from ..engine.round_inputs import TrainSet
from ..engine.train import RoundResult, train_round as engine_train_round, train_round_distributed
from ..engine.vocab import Action, CardKind, PredictionKind, Split, Tool

from .project import Project, ProjectError
from .round_summary import RoundSummary
from .votes import tool_closed, training_labels

# How often a training process records how far it is (which every page follows), and with it
# that it is alive (Project.HEARTBEAT_LIMIT is minutes).
PROGRESS_EVERY_S = 1.0


def run_round(project: Project, cfg: Config, config_name: str = "default",
              auto_accept: bool = False, progress: ProgressFn | None = None,
              skip_if_nothing_new: bool = False, dist: Dist | None = None) -> RoundSummary | None:
    """Train the next round (a step of the self-training loop, engine/loop.py, against the
    store) and return its summary with the thresholds now in force. With `auto_accept` the
    step first takes the undecided candidates of the round in force as pseudo-labels; with
    `skip_if_nothing_new`, None without training when there is none. With `dist` (rank 0 of a
    torchrun group), the other ranks, waiting in `follow_rounds`, train it with this process."""
    project.mark_dead_rounds_failed()
    store, classes = project.store, project.classes
    try:   # the config against the project first (a threshold for a class it lacks)
        trainer = SelfTrainer(cfg, classes, train=_train_fn(dist))
    except InputError as e:
        raise ProjectError(str(e)) from None
    if not project.features.exists():
        raise ProjectError(f"{project.root}: no features imported yet (run 'mersemi import')")
    project.features.check_finite()
    project.require_sound_store()
    data = _loop_data(project)
    folder = project.root / "checkpoints"
    previous = store.rounds.current()
    # the labels in force, a card's votes read as config `votes:` says (service/votes.py)
    ids, labels, sources, targets = training_labels(project, cfg.votes)
    reuse = Reusable.load(checkpoint.reuse_path(folder))
    trainer.resume(_in_force(project, previous), Labels(ids, labels, np.asarray(sources, object), targets), reuse,
                   closed=tool_closed(project))
    thresholds = store.thresholds.values()
    choice = trainer.choose(data.gold_labels, thresholds) if auto_accept else None
    if auto_accept and skip_if_nothing_new and (choice is None or not len(choice.rows)):
        return None

    _require_room(project, previous, len(data.gold_rows) + len(data.pool_rows) + len(data.test_rows), len(classes))
    try:
        rid = store.rounds.create(config=cfg.to_dict(), config_name=config_name,
                                  thresholds=dict(zip(classes, thresholds)), auto_accept=auto_accept,
                                  pid=os.getpid(), host=socket.gethostname())
    except RoundBusy as e:
        raise ProjectError(f"{e}; wait for it to finish (see 'mersemi status')") from None

    saved = checkpoint.path(folder, rid)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the engine also lists its warnings in metrics
            beat = Heartbeat(store.rounds, rid, progress)
            if choice is None:
                r = trainer.fit(data, progress=beat, round_id=rid).history_[-1]
            else:
                r = cast(LoopRound, trainer.step(data, choice, train_if_nothing_new=True, progress=beat,
                                                 round_id=rid))
        if r.kept:
            r.result.checkpoint.save(saved)
        if reuse is None or r.result.reusable.key != reuse.key:
            r.result.reusable.save(checkpoint.reuse_path(folder))
        if progress:
            progress("writing predictions", 1.0)
        scores = r.result.scores
        accepted = [] if r.choice is None else [
            DecisionIn(int(i), Action.ACCEPT, int(y), r.choice.why.from_round, "auto-accept", card=CardKind.VERIFY,
                       confidence=float(c)) for i, y, c in zip(r.choice.rows, r.choice.labels, r.choice.confidence)]
        store.rounds.complete(
            rid, predictions=[(PredictionKind.POOL, data.pool_rows, scores.pool),
                              (PredictionKind.TEST, data.test_rows, scores.test),
                              (PredictionKind.OOF, data.gold_rows, scores.oof)],
            decisions=accepted, reviewer=Tool.AUTO, composition=r.composition.to_json(), metrics=r.record.to_json(),
            checkpoint=str(saved.relative_to(project.root)) if r.kept else None,
            thresholds=dict(enumerate(r.thresholds)), everyone=cfg.self_training.policy_overrides_reviewers,
            discarded=not r.kept)
    except BaseException as e:
        saved.unlink(missing_ok=True)
        try:
            store.rounds.fail(rid, _describe(e))
        except StoreError:  # a full disk, a server gone: the next command marks the dead round failed
            pass
        if isinstance(e, InputError):
            raise ProjectError(str(e)) from None
        raise
    return project.round(rid).with_thresholds_now(project.thresholds())


def _loop_data(project: Project) -> LoopData:
    """The project's samples as the loop's arrays (a sample's id is its feature row)."""
    store = project.store
    gold_ids, gold_y, _ = store.samples.split_arrays(Split.LABELED)
    has_gold = gold_y >= 0
    gold_ids, gold_y = gold_ids[has_gold], gold_y[has_gold]
    if problem := gold_problem(np.bincount(gold_y, minlength=len(project.classes)).tolist(), project.classes):
        raise ProjectError(problem)
    pool_ids, _, pool_true = store.samples.split_arrays(Split.UNLABELED)
    test_ids, test_y, _ = store.samples.split_arrays(Split.TEST)
    return LoopData(features=project.features.matrices(), gold_rows=gold_ids, gold_labels=gold_y, pool_rows=pool_ids,
                    test_rows=test_ids, test_labels=test_y, pool_truth=pool_true)


def _in_force(project: Project, previous: Round | None) -> InForce | None:
    """The round in force as the loop needs it: its pool predictions, its checkpoint (fold votes
    and models) and what it is judged by."""
    if previous is None:
        return None
    ids, pred, conf = project.store.rounds.pool_confidences(previous.id)
    summary = project.round(previous.id)
    file = project.root / previous.checkpoint if previous.checkpoint else None
    # the reverse guard's reference and the doubly robust loss's teacher
    oof_ids, oof = project.store.rounds.predictions(previous.id, PredictionKind.OOF)
    return InForce(previous.id, ids, pred, conf,
                   checkpoint=Checkpoint.load(file) if file is not None and file.is_file() else None,
                   log_loss=None if summary.record is None else summary.record.metrics.calibration.log_loss,
                   human_digest=None if summary.composition is None else summary.composition.human_digest,
                   gold=None if summary.composition is None else summary.composition.gold,
                   oof_rows=oof_ids if len(oof_ids) else None, oof_pred=oof.argmax(1) if len(oof_ids) else None)


def _train_fn(dist: Dist | None) -> TrainFn:
    """One round here, or across the torchrun group (the other ranks wait in `follow_rounds`)."""
    if dist is None:
        return engine_train_round

    def distributed(data: TrainSet, n_classes: int, cfg: Config, progress: ProgressFn | None) -> RoundResult:
        # the features stay on disk: every rank maps them itself
        broadcast({"data": dataclasses.replace(data, features={}), "n_classes": n_classes, "config": cfg.to_dict()},
                  dist)
        return cast(RoundResult, train_round_distributed(data, n_classes, cfg, dist, progress=progress))
    return distributed


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


def _describe(e: BaseException) -> str:
    if isinstance(e, KeyboardInterrupt):
        return "interrupted"
    if isinstance(e, SystemExit):
        return e.code if isinstance(e.code, str) else f"stopped (exit {e.code})"
    return f"{e.__class__.__name__}: {e}"


def _require_room(project: Project, previous: Round | None, rows: int, n_classes: int) -> None:
    """Refuse before training when the round's files cannot be written: a checkpoint the size of
    the last one, the reuse file rewritten beside the old, and on SQLite its predictions."""
    folder = project.root / "checkpoints"
    last = project.root / previous.checkpoint if previous is not None and previous.checkpoint else None
    need = sum(f.stat().st_size for f in (last, checkpoint.reuse_path(folder)) if f is not None and f.is_file())
    if project.store.db.engine.dialect.name == "sqlite":
        need += rows * (n_classes * 4 + 120) * 2   # the probability blobs and their index, then the WAL copy
    require_space(folder, need, "the round's checkpoint and predictions")
