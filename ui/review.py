"""What the reviewer sees of a round: candidate counts, expected precision, histograms,
suggested thresholds, the next card. Orchestration over the store; no Gradio here.

Expected precision of class c at threshold t comes from the round's out-of-fold
predictions of the gold samples: among those predicted c with confidence >= t, the share
whose gold label is c. It is what a pseudo-label of class c at that threshold is worth,
measured on samples the fold models did not train on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..db.store import Candidate
from ..engine.config import load_config

from .project import Project, ProjectError

HIST_BINS = 40
MIN_SUPPORT = 5   # OOF samples above a threshold before its precision estimate is trusted


@dataclass(frozen=True)
class RoundView:
    """Arrays of one finished round that never change: cached per (project, round)."""
    round_id: int
    n_classes: int
    oof_pred: np.ndarray
    oof_conf: np.ndarray
    oof_true: np.ndarray
    pool_pred: np.ndarray
    pool_conf: np.ndarray

    def precision(self, cls: int, threshold: float) -> tuple[float | None, int]:
        """(expected precision, OOF support) of class `cls` at `threshold`."""
        sel = (self.oof_pred == cls) & (self.oof_conf >= threshold)
        n = int(sel.sum())
        return (float(np.mean(self.oof_true[sel] == cls)) if n else None), n

    def histogram(self, cls: int, bins: int = HIST_BINS) -> tuple[np.ndarray, np.ndarray]:
        """Pool confidence histogram of samples predicted `cls` (all, decided or not)."""
        # The top probability of C classes is never below 1/C.
        return np.histogram(self.pool_conf[self.pool_pred == cls], bins=bins,
                            range=(1.0 / self.n_classes, 1.0))

    def suggest(self, cls: int, target: float, min_support: int = MIN_SUPPORT) -> float | None:
        """Lowest threshold whose expected precision reaches `target` with at least
        `min_support` OOF samples above it; None when no threshold does."""
        sel = self.oof_pred == cls
        conf = self.oof_conf[sel]
        hit = self.oof_true[sel] == cls
        order = np.argsort(-conf, kind="stable")
        conf, hit = conf[order], hit[order]
        n = np.arange(1, len(conf) + 1)
        prec = np.cumsum(hit) / n
        # A threshold equal to conf[k] admits every sample with the same confidence: use the
        # last index of each run of equal values.
        last_of_run = np.r_[conf[1:] != conf[:-1], True]
        ok = last_of_run & (prec >= target) & (n >= min_support)
        if not ok.any():
            return None
        return float(conf[np.flatnonzero(ok)[-1]])


_views: dict[tuple[str, int], RoundView] = {}


def round_view(project: Project, round_id: int | None = None) -> RoundView:
    rnd = project.store.round(round_id) if round_id is not None else project.store.current_round()
    if rnd is None or rnd.status != "done":
        raise ProjectError("no finished round yet: train round 0 first")
    key = (str(project.root.resolve()), rnd.id)
    if key not in _views:
        oof_ids, oof_probs = project.store.predictions(rnd.id, "oof")
        gold = _gold_of(project, oof_ids)
        _, pool_pred, pool_conf = project.store.pool_confidences(rnd.id)
        _views[key] = RoundView(rnd.id, len(project.classes), oof_probs.argmax(1) if len(oof_ids) else np.zeros(0, int),
                                oof_probs.max(1) if len(oof_ids) else np.zeros(0), gold,
                                pool_pred, pool_conf)
    return _views[key]


def _gold_of(project: Project, ids: np.ndarray) -> np.ndarray:
    gold_ids, gold_y, _ = project.store.split_arrays("labeled")
    lookup = dict(zip(gold_ids.tolist(), gold_y.tolist()))
    return np.array([lookup[i] for i in ids.tolist()], dtype=np.int64)


def split_histogram(view: RoundView, cls: int, threshold: float,
                    bins: int = HIST_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`view.histogram(cls)` in two parts: (edges, counts below the threshold, counts at or
    above it). A bin the threshold cuts counts in both, so the plot can show the cut."""
    conf = view.pool_conf[view.pool_pred == cls]
    span = (1.0 / view.n_classes, 1.0)
    below, edges = np.histogram(conf[conf < threshold], bins=bins, range=span)
    above, _ = np.histogram(conf[conf >= threshold], bins=bins, range=span)
    return edges, below, above


def class_table(project: Project, thresholds: dict[str, float] | None = None) -> list[dict]:
    """Per class: threshold, undecided candidates at it, expected precision and its support,
    and the decisions in force (accepted / rejected / relabelled into the class)."""
    view = round_view(project)
    th = thresholds or project.thresholds()
    values = [float(th[c]) for c in project.classes]
    counts = project.store.candidate_counts(view.round_id, values)
    decided = project.store.decision_counts()
    rows = []
    for c, name in enumerate(project.classes):
        prec, support = view.precision(c, values[c])
        rows.append({"class": name, "threshold": values[c], "candidates": counts[c],
                     "expected_precision": prec, "support": support,
                     "accepted": decided["accept"].get(c, 0), "rejected": decided["reject"].get(c, 0),
                     "relabeled": decided["relabel"].get(c, 0)})
    return rows


def suggest_thresholds(project: Project, target: float) -> dict[str, float | None]:
    """Per class, the lowest threshold whose expected precision reaches `target`."""
    if not 0.0 < target <= 1.0:
        raise ProjectError(f"target precision must lie in (0, 1], got {target}")
    view = round_view(project)
    return {name: view.suggest(c, target) for c, name in enumerate(project.classes)}


def next_candidates(project: Project, cls: str | None = None, min_confidence: float = 0.0,
                    limit: int = 1, offset: int = 0) -> list[Candidate]:
    """A page of the undecided candidates passing the thresholds, highest confidence first."""
    rnd = project.store.current_round()
    if rnd is None:
        raise ProjectError("no finished round yet: train round 0 first")
    cid = None if cls in (None, "", "all") else project.class_id(cls)
    th = project.store.thresholds()
    if cid is not None:
        return project.store.candidates(rnd.id, th, cls=cid, min_confidence=float(min_confidence),
                                        limit=limit, offset=offset)
    # All classes: the first offset + limit of each class (one index range scan each), merged
    # here in the store's order. The store's all-class query, an OR of per-class ranges, sorts
    # every row above the lowest threshold: 2-5x slower at 115k pool predictions.
    pages = [project.store.candidates(rnd.id, th, cls=c, min_confidence=float(min_confidence),
                                      limit=offset + limit) for c in range(len(th))]
    merged = sorted((c for page in pages for c in page), key=lambda c: (-c.confidence, c.sample_id))
    return merged[offset:offset + limit]


def paper_preset(project: Project) -> dict[str, float]:
    """The paper's thresholds (configs/default.yaml) for the project's classes."""
    st = load_config().self_training
    return dict(zip(project.classes, st.threshold_for(project.classes)))


# ---------------------------------------------------------------------- the review queue

AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".m4a")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm")


def filter_thresholds(project: Project, cls: str | None, min_confidence: float) -> dict[int, float]:
    """Class id -> lowest confidence admitted by a review filter: the class threshold, raised
    to the filter's minimum confidence; only the filtered class when one is named."""
    th = project.store.thresholds()
    ids = range(len(th)) if cls in (None, "", "all") else [project.class_id(cls)]
    return {c: max(th[c], float(min_confidence)) for c in ids}


def queue_size(project: Project, cls: str | None = None, min_confidence: float = 0.0) -> int:
    """Undecided candidates in a review filter: index range counts, never a scan of the pool."""
    rnd = project.store.current_round()
    if rnd is None:
        return 0
    limits = filter_thresholds(project, cls, min_confidence)
    return _count_above(project, rnd.id, limits)


def queue_position(project: Project, sample_id: int, cls: str | None = None,
                   min_confidence: float = 0.0) -> int | None:
    """Offset of an undecided candidate in the filter's queue (highest confidence first), or
    None when it is not in the queue. Candidates of exactly equal confidence are counted as
    coming after it, so among ties the offset is that of the first one."""
    rnd = project.store.current_round()
    if rnd is None:
        return None
    pred = project.store.prediction_of(rnd.id, [sample_id]).get(sample_id)
    limits = filter_thresholds(project, cls, min_confidence)
    if (pred is None or pred[0] != "pool" or pred[1] not in limits or pred[2] < limits[pred[1]]
            or project.store.current_decisions([sample_id])):
        return None
    above = float(np.nextafter(pred[2], np.inf))
    return _count_above(project, rnd.id, {c: max(t, above) for c, t in limits.items()})


def _count_above(project: Project, round_id: int, limits: dict[int, float]) -> int:
    # Classes outside the filter get a threshold no confidence reaches.
    values = [limits.get(c, 2.0) for c in range(len(project.classes))]
    return sum(n for c, n in enumerate(project.store.candidate_counts(round_id, values)) if c in limits)


def media_file(project: Project, media: str | None) -> tuple[Path | None, str | None]:
    """(path, "audio" | "video") of a sample's clip, only when it resolves to a file inside the
    project's media folder; (None, None) otherwise, so nothing outside it is ever served."""
    root = project.media_root
    if not media or root is None:
        return None, None
    root = root.resolve()
    path = (root / media).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None, None
    suffix = path.suffix.lower()
    kind = "audio" if suffix in AUDIO_SUFFIXES else "video" if suffix in VIDEO_SUFFIXES else None
    return (path, kind) if kind else (None, None)
