"""What the reviewer sees of a round: candidate counts, expected precision, histograms,
suggested thresholds, the review queues and their cards. Orchestration over the store and
engine/selection.py (the one definition of a candidate and of the queues); no Gradio here.

Expected precision of a class's candidates is their mean calibrated confidence
(engine/selection.py). The out-of-fold precision of the gold samples above the threshold is
shown next to it with its support: on a few-label project it rests on a handful of samples.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine import selection, self_training
from ..engine.config import Config, load_config, preset_path
from ..engine.loop import Choice, InForce, Labels, SelfTrainer
from ..engine.thresholds import check_target_precision, quantize
from ..engine.vocab import (
    DEFAULT_QUEUE, POOL_QUEUES, POOL_SOURCES, Action, QueueKind, Split, media_kind,
)

from .errors import NoRound
from .project import Project, ProjectError
from .round_views import HIST_BINS, RoundView, round_view
from .votes import tool_closed

THIN = 30   # a share or a precision resting on fewer samples than this is marked thin where it is shown


def open_mask(project: Project, view: RoundView, reviewer: str | None = None, tool: bool = False) -> np.ndarray:
    """Pool samples still open to a decision: no decision in force, not a voted card with all
    its votes and, when `reviewer` is given, not voted on by them nor held by another
    reviewer's claim. `tool` (the automatic step): no overlap card either, people vote on those."""
    closed = np.union1d(project.store.decisions.decided_ids(), project.store.votes.closed(reviewer, tool))
    if reviewer:
        closed = np.union1d(closed, np.fromiter(project.store.claims.held_by_others(reviewer), np.int64))
    return ~np.isin(view.pool_ids, closed)


def auto_accept_choice(project: Project, cfg: Config, thresholds: list[float] | None = None,
                       view: RoundView | None = None) -> Choice | None:
    """What the automatic step of `train --auto-accept` with `cfg` takes now: the one choice
    (engine/loop.SelfTrainer.choose) that the round's step makes, asked of the round in force
    (`view`, default the current round) at the project's thresholds; None when the config
    trains without pseudo-labels. Nothing is written and no trainer is imported (the gate's fold
    votes are read from the round's checkpoint, once per round)."""
    view = view if view is not None else round_view(project)
    store = project.store
    _, gold_y, _ = store.samples.split_arrays(Split.LABELED)
    ids, labels, sources = store.decisions.training_labels()
    votes = None
    if cfg.self_training.gate == "folds":   # the gate reads the fold models' votes, as the round's step does
        rnd = store.rounds.get(view.round_id)
        votes = view.fold_votes(project.root / rnd.checkpoint if rnd is not None and rnd.checkpoint else None)
    trainer = SelfTrainer(cfg, project.classes).resume(
        InForce(view.round_id, view.pool_ids, view.pool_pred, view.pool_conf, checkpoint=votes),
        Labels(ids, labels, np.asarray(sources, object)), closed=tool_closed(project))
    return trainer.choose(gold_y[gold_y >= 0], store.thresholds.values() if thresholds is None else thresholds)


def auto_accept_preview(project: Project, cfg: Config) -> dict:
    """What `train --auto-accept` with `cfg` would accept now, per class: the candidates, how
    many the gate holds back (disagreed), how many the class balance keeps of the rest (count)
    and their expected precision (mean calibrated confidence of the selected samples)."""
    if project.store.rounds.current() is None:
        return {"total": 0, "classes": [], "note": "no finished round yet: nothing to auto-accept"}
    choice = auto_accept_choice(project, cfg)
    if choice is None:
        return {"total": 0, "classes": [], "note": "this preset trains without pseudo-labels"}
    rows = [{"class": name, "candidates": pick.candidates, "disagreed": pick.disagreed, "count": pick.accepted,
             "expected_precision": pick.expected_precision} for name, pick in choice.why.classes.items()]
    return {"total": choice.why.accepted, "candidates": sum(r["candidates"] for r in rows),
            "disagreed": sum(r["disagreed"] for r in rows), "classes": rows,
            "balance": cfg.self_training.balance, "gate": cfg.self_training.gate, "note": ""}


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95 % Wilson score interval of a proportion hits/n; None when n is 0."""
    if n <= 0:
        return None
    p = hits / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def split_histogram(view: RoundView, cls: int, threshold: float, open_: np.ndarray,
                    bins: int = HIST_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`view.histogram(cls)` in three parts: (edges, undecided samples below the threshold,
    candidates: undecided at or above it, decided samples). `open_`: open_mask's samples still
    undecided. A bin the threshold cuts counts on both sides, so the plot can show the cut."""
    mine = view.pool_pred == cls
    conf, undecided = view.pool_conf[mine], open_[mine]
    span = (1.0 / view.n_classes, 1.0)
    below, edges = np.histogram(conf[undecided & (conf < threshold)], bins=bins, range=span)
    candidates, _ = np.histogram(conf[undecided & (conf >= threshold)], bins=bins, range=span)
    decided, _ = np.histogram(conf[~undecided], bins=bins, range=span)
    return edges, below, candidates, decided


def class_table(project: Project, thresholds: dict[str, float] | None = None,
                view: RoundView | None = None) -> list[dict]:
    """Per class: threshold, undecided candidates at it, their expected precision (mean
    calibrated confidence), the out-of-fold precision with its support, the pool labels in
    force of that class by source (verified, relabeled, labeled: a person's; pseudo: the
    tool's) and the rejections of predictions of it. `view`: the round a request resolved once
    (default: current)."""
    view = view or round_view(project)
    th = thresholds or project.thresholds()
    values = [float(th[c]) for c in project.classes]
    cand = selection.is_candidate(view.pool_pred, view.pool_conf, open_mask(project, view), values)
    expected, counts = selection.expected_precision(view.pool_pred, view.pool_conf, cand, view.n_classes)
    labels = project.store.decisions.source_counts()
    rejected = project.store.decisions.counts()[Action.REJECT]
    rows = []
    for c, name in enumerate(project.classes):
        oof_prec, oof_support = view.precision(c, values[c])
        rows.append({"class": name, "threshold": values[c], "candidates": counts[c],
                     "expected_precision": expected[c], "support": counts[c],
                     "oof_precision": oof_prec, "oof_support": oof_support,
                     **{str(src): labels[src].get(c, 0) for src in POOL_SOURCES},
                     "rejected": rejected.get(c, 0)})
    return rows


def suggest_thresholds(project: Project, target: float, per: str = "set") -> dict[str, float | None]:
    """Per class, the lowest threshold (quantized: engine/thresholds.py) whose undecided
    candidates' expected precision reaches `target` (`per`: see self_training.target_thresholds);
    None where none does."""
    try:
        target = check_target_precision(target)
    except ValueError as e:
        raise ProjectError(str(e)) from None
    view = round_view(project)
    found = self_training.target_thresholds(view.pool_pred, view.pool_conf, open_mask(project, view),
                                            view.n_classes, target, per)
    return {name: None if t is None else quantize(t) for name, t in zip(project.classes, found)}


@dataclass(frozen=True)
class Card:
    """One entry of a review queue, as the app and `mersemi queue` show it."""
    sample_id: int
    name: str
    predicted: int
    confidence: float
    probs: np.ndarray
    text: str | None
    media: str | None
    kind: str                     # engine/vocab.CardKind; on the voted queues their QueueKind
    reason: str
    votes: tuple[dict, ...] = ()  # the votes in force on it: reviewer, action, label (class name)
    gold: int | None = None       # an audit card's gold label


def queue_page(project: Project, kind: str | None = None, cls: str | None = None,
               min_confidence: float = 0.0, offset: int = 0, limit: int = 1,
               reviewer: str | None = None, view: RoundView | None = None,
               thresholds: list[float] | None = None) -> tuple[list[Card], int]:
    """(cards offset..offset+limit of a review queue, the queue's length). kind None is
    DEFAULT_QUEUE; `cls` keeps one predicted class ("all" / None: every class). `view` and
    `thresholds` (class order): what a request resolved once (default: read now). The queues of
    voted cards, adjudicate and audit, are service/vote_queues.py's (no class filter)."""
    from . import vote_queues

    kind = DEFAULT_QUEUE if kind in (None, "") else kind
    if kind not in tuple(QueueKind):
        raise ProjectError(f"queue kind must be one of {', '.join(QueueKind)}, got {kind!r}")
    view = view or round_view(project)
    if kind not in POOL_QUEUES:
        th = project.store.thresholds.values() if thresholds is None else thresholds
        return vote_queues.voted_page(project, kind, offset, limit, reviewer, view, th)
    view = vote_queues.with_probes(project, view)
    entries = _queue(project, kind, cls, min_confidence, reviewer, view, thresholds)
    page = entries[offset:offset + limit]
    samples = project.store.samples.by_id([int(view.pool_ids[e.index]) for e in page])
    cards = []
    for e in page:
        sid, probs = int(view.pool_ids[e.index]), view.pool_probs[e.index]
        smp = samples[sid]
        cards.append(Card(sid, smp.name, int(probs.argmax()), float(probs.max()), probs,
                          smp.text, smp.media, e.kind, e.reason))
    return cards, len(entries)


def _queue(project: Project, kind: str, cls: str | None, min_confidence: float,
           reviewer: str | None, view: RoundView | None = None,
           thresholds: list[float] | None = None) -> selection.ReviewQueue:
    view = view or round_view(project)
    cid = None if cls in (None, "", "all") else project.class_id(cls)
    th = project.store.thresholds.values() if thresholds is None else thresholds
    return selection.review_queue(view.pool_probs, open_mask(project, view, reviewer), th, kind,
                                  cls=cid, min_confidence=float(min_confidence), pred=view.pool_pred,
                                  orders=view.queue_orders(th, cid, min_confidence))


def next_candidates(project: Project, cls: str | None = None, min_confidence: float = 0.0,
                    limit: int = 1, offset: int = 0) -> list[Card]:
    """A page of the verify queue (candidates, least confident first)."""
    if project.store.rounds.current() is None:
        raise NoRound("no finished round yet: train round 0 first")
    return queue_page(project, QueueKind.VERIFY, cls, min_confidence, offset, limit)[0]


PAPER_PRESET = "paper_thresholds"   # the preset whose fixed thresholds are the paper's


def paper_preset(project: Project) -> dict[str, float]:
    """The paper's thresholds (configs/paper_thresholds.yaml) for the project's classes."""
    st = load_config(preset_path(PAPER_PRESET)).self_training
    return dict(zip(project.classes, st.threshold_for(project.classes)))


def queue_size(project: Project, cls: str | None = None, min_confidence: float = 0.0,
               kind: str = QueueKind.VERIFY) -> int:
    """Samples in a review queue (0 before the first round)."""
    if project.store.rounds.current() is None:
        return 0
    if kind not in POOL_QUEUES:
        return queue_page(project, kind, limit=0)[1]
    return len(_queue(project, kind, cls, min_confidence, None))


def queue_position(project: Project, sample_id: int, cls: str | None = None,
                   min_confidence: float = 0.0, kind: str = QueueKind.VERIFY, reviewer: str | None = None,
                   view: RoundView | None = None, thresholds: list[float] | None = None) -> int | None:
    """Offset of a sample in a review queue, or None when it is not in it."""
    from . import vote_queues

    if view is None:
        if project.store.rounds.current() is None:
            return None
        view = round_view(project)
    if kind not in POOL_QUEUES:
        cards, _ = queue_page(project, kind, offset=0, limit=1_000_000, reviewer=reviewer, view=view,
                              thresholds=thresholds)
        return next((k for k, c in enumerate(cards) if c.sample_id == sample_id), None)
    view = vote_queues.with_probes(project, view)
    at = np.flatnonzero(view.pool_ids == sample_id)
    if len(at) == 0:
        return None
    return _queue(project, kind, cls, min_confidence, reviewer, view, thresholds).position(int(at[0]))


# ---------------------------------------------------------------------- media

def media_file(project: Project, media: str | None) -> tuple[Path | None, str | None]:
    """(path, "audio" | "video") of a sample's clip, only when it resolves to a file inside the
    project's media folder and is of a kind the importer accepts; (None, None) otherwise, so
    nothing outside it is ever served."""
    root = project.media_root
    if not media or root is None:
        return None, None
    root = root.resolve()
    path = (root / media).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None, None
    kind = media_kind(path)
    return (path, kind) if kind else (None, None)
