"""One training round: read the decisions, run the engine, write predictions and metrics.

The round is recorded as `running` before training and completed in one transaction at the
end (predictions, automatic decisions, metrics). Anything that stops it in between (an
error, Ctrl-C, SIGTERM) marks it failed; a SIGKILL is caught at the next start by
`Project.mark_dead_rounds_failed`. Either way the previous round's predictions stay in force.
"""
from __future__ import annotations

import os
import socket
import time
import warnings
from pathlib import Path

import numpy as np

from ..db.errors import StoreBusy
from ..db.store import DecisionIn, RoundBusy, Store
from ..engine import selection
from ..engine.config import Config
from ..engine.errors import InputError
from ..engine.calibration import expected_calibration_error
from ..engine.metrics import classification_metrics
from ..engine.vocab import Tool
from ..engine.train import TrainSet, graph_share, train_round as engine_train_round

from .project import Project, ProjectError, ProgressFn
from .review import HUMAN_LABELS

# How often a training process records that it is alive (Project.HEARTBEAT_LIMIT is minutes).
HEARTBEAT_EVERY_S = 15.0


def run_round(project: Project, cfg: Config, config_name: str = "default",
              auto_accept: bool = False, progress: ProgressFn | None = None,
              skip_if_nothing_new: bool = False) -> dict | None:
    """Train the next round and return its summary (as `status --json` shows it, plus the
    thresholds now in force). With `skip_if_nothing_new`, None without training when the
    automatic step finds no new candidate."""
    from .project import round_summary

    project.mark_dead_rounds_failed()
    store, classes = project.store, project.classes
    C = len(classes)
    if not project.features.exists():
        raise ProjectError(f"{project.root}: no features imported yet (run 'mersemi import')")

    gold_ids, gold_y, _ = store.split_arrays("labeled")
    has_gold = gold_y >= 0
    gold_ids, gold_y = gold_ids[has_gold], gold_y[has_gold]
    missing = [classes[c] for c in range(C) if not np.any(gold_y == c)]
    if missing:
        raise ProjectError(f"class {missing[0]!r} has no labeled sample; every class needs at least one "
                           f"(missing: {', '.join(missing)})")
    pool_ids, _, pool_true = store.split_arrays("unlabeled")
    test_ids, test_y, _ = store.split_arrays("test")

    extra_ids, extra_y, sources = store.training_labels()
    use_pseudo = cfg.self_training.use_pseudo_labels
    if not use_pseudo:  # the "w/o pseudo labels" ablation keeps human labels only
        human = np.isin(np.asarray(sources), HUMAN_LABELS)
        extra_ids, extra_y = extra_ids[human], extra_y[human]
        sources = [src for src, h in zip(sources, human) if h]
    thresholds = store.thresholds()
    auto, auto_selection = (_auto_candidates(project, cfg, thresholds, gold_y, extra_y, sources)
                            if auto_accept and use_pseudo else ([], None))
    if auto_accept and skip_if_nothing_new and not auto:
        return None
    if auto:
        extra_ids = np.concatenate([extra_ids, [d.sample_id for d in auto]]).astype(np.int64)
        extra_y = np.concatenate([extra_y, [d.label for d in auto]]).astype(np.int64)
        sources = sources + ["auto"] * len(auto)
    composition = _composition(classes, gold_y, extra_y, sources)
    from_model = ~np.isin(np.asarray(sources, dtype=object), HUMAN_LABELS)   # accepted pseudo-labels
    share_from, share = _graph_share(store) if from_model.any() else (None, None)

    try:
        rid = store.create_round(config=cfg.to_dict(), config_name=config_name,
                                 thresholds=dict(zip(classes, thresholds)), auto_accept=auto_accept,
                                 pid=os.getpid(), host=socket.gethostname())
    except RoundBusy as e:
        raise ProjectError(f"{e}; wait for it to finish (see 'mersemi status')") from None

    checkpoint = project.root / "checkpoints" / f"round-{rid}.pt"
    try:
        t0 = time.time()
        data = TrainSet(features=project.features.matrices(), gold_rows=gold_ids, gold_labels=gold_y,
                        extra_rows=extra_ids, extra_labels=extra_y,
                        pretrain_rows=np.concatenate([gold_ids, pool_ids]),
                        score_rows=np.concatenate([pool_ids, test_ids]), graph_share=share,
                        extra_from_model=from_model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the engine also lists its warnings in metrics
            result = engine_train_round(data, C, cfg, progress=Heartbeat(store, rid, progress))
        pool_probs, test_probs = result.score_probs[:len(pool_ids)], result.score_probs[len(pool_ids):]

        metrics = dict(result.metrics)
        _add_test_metrics(metrics, test_y, test_probs, C)
        metrics["auto_accept"] = auto_selection
        metrics["graph_share_from"] = share_from
        metrics["pseudo_precision"] = _pseudo_precision(classes, extra_ids, extra_y, sources,
                                                        pool_ids, pool_true)
        _save_checkpoint(result.state, checkpoint)
        if progress:
            progress("writing predictions", 1.0)
        metrics["wall_s"] = round(time.time() - t0, 2)
        store.complete_round(
            rid, predictions=[("pool", pool_ids, pool_probs), ("test", test_ids, test_probs),
                              ("oof", gold_ids, result.oof_probs)],
            decisions=auto, reviewer=Tool.AUTO, composition=composition, metrics=metrics,
            checkpoint=str(checkpoint.relative_to(project.root)))
    except BaseException as e:
        store.fail_round(rid, _describe(e))
        checkpoint.unlink(missing_ok=True)
        if isinstance(e, InputError):
            raise ProjectError(str(e)) from None
        raise
    _apply_policy(project, cfg)
    return round_summary(store.round(rid), classes) | {"thresholds_now": project.thresholds()}


def _apply_policy(project: Project, cfg: Config) -> None:
    """The self-training policy sets the thresholds the next review and the next automatic
    step use: per class the target-precision threshold of the round just finished (a class
    that cannot reach the target gets 1.0, and the round's summary says so)."""
    st = cfg.self_training
    if st.policy != "target_precision":
        return
    from .review import suggest_thresholds  # review imports this module's siblings only

    found = suggest_thresholds(project, st.target_precision, st.target_per)
    project.set_thresholds({c: selection.closed_if_unreachable(t) for c, t in found.items()}, by=Tool.POLICY)


class Heartbeat:
    """A progress callback that also records, at most every HEARTBEAT_EVERY_S and in a short
    transaction of its own, that the round's process is alive, then passes the progress on."""

    def __init__(self, store: Store, round_id: int, progress: ProgressFn | None) -> None:
        self.store, self.round_id, self.progress = store, round_id, progress
        self.last = time.monotonic()   # create_round recorded the first beat

    def __call__(self, message: str, fraction: float) -> None:
        now = time.monotonic()
        if now - self.last >= HEARTBEAT_EVERY_S:
            self.last = now
            try:
                self.store.heartbeat(self.round_id)
            except StoreBusy:
                pass  # another writer holds the lock; the next beat comes well within the limit
        if self.progress:
            self.progress(message, fraction)


def _auto_candidates(project: Project, cfg: Config, thresholds: list[float], gold_y: np.ndarray,
                     extra_y: np.ndarray, sources: list[str]) -> tuple[list[DecisionIn], dict | None]:
    """The automatic step: the current round's candidates at the project's thresholds, within
    the class-balance cap, become accepted pseudo-labels (engine/selection.py). Samples with a
    decision in force, human or automatic, are never taken. Returns the decisions and what
    was selected per class (recorded with the round)."""
    from .review import auto_accept_selection

    if project.store.current_round() is None:
        return [], None
    st = cfg.self_training
    view, sel = auto_accept_selection(project, st.balance_cap, thresholds, labels=(gold_y, extra_y, sources))
    decisions = [DecisionIn(int(view.pool_ids[i]), "accept", int(view.pool_pred[i]), view.round_id, "auto-accept")
                 for i in np.flatnonzero(sel.mask)]
    summary = {"policy": st.policy, "target_precision": st.target_precision, "target_per": st.target_per,
               "balance_cap": st.balance_cap,
               "from_round": view.round_id, "thresholds": dict(zip(project.classes, map(float, thresholds))),
               "classes": sel.as_dict(project.classes), "accepted": len(decisions)}
    return decisions, summary


def _graph_share(store: Store) -> tuple[int | None, float | None]:
    """The label-spreading graph's weight relative to the ensemble's for a round trained on
    accepted pseudo-labels: that of the latest finished round trained on human labels only,
    and that round's id; (None, None) when there is none (the round fits it afresh).

    Accepted pseudo-labels around a held-out gold sample carry that sample's label (the round
    that predicted them knew it), so such a round's out-of-fold predictions are optimistic:
    fitted on them, the graph's weight fell to 0 (few-label digits, 3 automatic rounds)."""
    for r in reversed(store.rounds()):
        human_only = (r.composition or {}).get("pseudo", 1) == 0
        share = graph_share(r.metrics or {}) if r.status == "done" and human_only else None
        if share is not None:
            return r.id, share
    return None, None


def _composition(classes: list[str], gold_y: np.ndarray, extra_y: np.ndarray,
                 sources: list[str]) -> dict:
    src = np.asarray(sources)

    def per_class(mask: np.ndarray) -> dict[str, int]:
        return {c: int(np.sum(extra_y[mask] == i)) for i, c in enumerate(classes)}

    pseudo = np.isin(src, ["accept", "auto"]) if len(src) else np.zeros(0, bool)
    return {
        "gold": int(len(gold_y)), "relabel": int(np.sum(src == "relabel")), "label": int(np.sum(src == "label")),
        "pseudo": int(pseudo.sum()), "auto": int(np.sum(src == "auto")),
        "total": int(len(gold_y) + len(extra_y)),
        "gold_per_class": {c: int(np.sum(gold_y == i)) for i, c in enumerate(classes)},
        "pseudo_per_class": per_class(pseudo),
        "relabel_per_class": per_class(src == "relabel") if len(src) else {c: 0 for c in classes},
        "label_per_class": per_class(src == "label") if len(src) else {c: 0 for c in classes},
    }


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
    """Share of accepted pseudo-labels that match the pool's hidden truth, per class, when the
    truth is known (synthetic data). Evaluation only: nothing reads it back for training."""
    truth = dict(zip(pool_ids.tolist(), pool_true.tolist()))
    pseudo = [(i, y) for i, y, s in zip(extra_ids.tolist(), extra_y.tolist(), sources)
              if s in ("accept", "auto") and truth.get(i, -1) >= 0]
    if not pseudo or all(v < 0 for v in pool_true.tolist()):
        return None
    out: dict[str, float | None] = {}
    for c, name in enumerate(classes):
        hits = [truth[i] == y for i, y in pseudo if y == c]
        out[name] = round(float(np.mean(hits)), 4) if hits else None
    out["overall"] = round(float(np.mean([truth[i] == y for i, y in pseudo])), 4)
    return out


def _save_checkpoint(state: dict, path: Path) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _describe(e: BaseException) -> str:
    if isinstance(e, KeyboardInterrupt):
        return "interrupted"
    if isinstance(e, SystemExit):
        return f"stopped (exit {e.code})"
    return f"{e.__class__.__name__}: {e}"
