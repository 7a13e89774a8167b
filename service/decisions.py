"""The decisions as a reviewer looks back at them: the log, searched; who decided how much; and
the review's check of the model: per class, the share of verify cards reviewers accepted
against the precision the model claimed for them (the mean confidence it gave them). No Gradio.
"""
from __future__ import annotations

import numpy as np

from ..engine.selection import card_kind, card_reason
from ..engine.vocab import LOG_ACTIONS, Split

from .project import Project, ProjectError
from .review import THIN, Card, round_view, wilson_interval

MAX_ROWS = 1000   # a page of the log


def find(project: Project, sample: str = "", reviewer: str = "", cls: str = "", action: str = "",
         in_force: bool = False, limit: int = 100, offset: int = 0) -> dict:
    """A page of the decision log, newest first: `sample` part of a name, `reviewer` exact,
    `cls` a class the entry names or the model predicted, `action` one of the log's actions."""
    if action and action not in LOG_ACTIONS:
        raise ProjectError(f"action: one of {', '.join(LOG_ACTIONS)}, got {action!r}")
    label = project.class_id(cls) if cls and cls != "all" else None
    limit = max(1, min(int(limit), MAX_ROWS))
    rows, total = project.store.decisions.find(sample=sample, reviewer=reviewer, label=label, action=action,
                                               in_force=in_force, limit=limit, offset=offset)
    classes = project.classes
    in_force_ids = {c.decision_id for c in project.store.decisions.in_force([d.sample_id for d, _ in rows]).values()}

    def name_of(c: int | None) -> str | None:
        return None if c is None else classes[c]

    return {"total": total, "offset": offset, "rows": [
        {"id": d.id, "time": d.created_at.isoformat(timespec="seconds"), "name": name, "round": d.round_id,
         "action": d.action, "label": name_of(d.label), "predicted": name_of(d.predicted), "source": d.source,
         "card": d.card, "confidence": d.confidence, "reviewer": d.reviewer, "note": d.note,
         "undoes": d.undoes, "in_force": d.id in in_force_ids} for d, name in rows]}


def reviewers(project: Project) -> list[dict]:
    """Per reviewer: decisions made, those in force by action, the last one's time."""
    return project.store.decisions.reviewer_counts()


def review_check(project: Project) -> list[dict]:
    """Per class the model predicted: the verify cards people decided (in force), how many they
    accepted, the accepted share with its 95 % Wilson interval, and the precision the model
    claimed for those cards (their mean confidence then), and whether so few cards make the
    share `thin` (under review.THIN: its interval is wide). `verdict`: whether the claim lies
    inside the interval ("consistent"), above it ("overconfident") or below ("underconfident");
    None without cards."""
    by_class: dict[int, list[tuple[bool, float]]] = {}
    for predicted, right, confidence in project.store.decisions.verify_verdicts():
        by_class.setdefault(predicted, []).append((right, confidence))
    out = []
    for c, name in enumerate(project.classes):
        cards = by_class.get(c, [])
        n = len(cards)
        accepted = sum(ok for ok, _ in cards)
        claimed = float(np.mean([conf for _, conf in cards])) if n else None
        interval = wilson_interval(accepted, n)
        verdict = None
        if interval is not None and claimed is not None:
            verdict = ("overconfident" if claimed > interval[1] else
                       "underconfident" if claimed < interval[0] else "consistent")
        out.append({"class": name, "cards": n, "accepted": accepted,
                    "accepted_share": accepted / n if n else None,
                    "interval": None if interval is None else [round(interval[0], 4), round(interval[1], 4)],
                    "claimed_precision": claimed, "verdict": verdict, "thin": 0 < n < THIN})
    return out


def sample_card(project: Project, name: str) -> tuple[Card, dict | None]:
    """Any pool sample's card in the current round (whatever queue it is in, decided or not),
    and the decision in force on it (None when undecided)."""
    found = project.store.samples.by_name([name]).get(name)
    if found is None:
        raise ProjectError(f"unknown sample {name!r}")
    sid, split = found
    if split != Split.UNLABELED:
        raise ProjectError(f"{name}: not in the pool (it is a {split} sample)")
    view = round_view(project)
    at = np.flatnonzero(view.pool_ids == sid)
    if len(at) == 0:
        raise ProjectError(f"{name}: not scored in round {view.round_id}")
    i = int(at[0])
    probs = view.pool_probs[i]
    pred, conf = int(view.pool_pred[i]), float(view.pool_conf[i])
    smp = project.store.samples.by_id([sid])[sid]
    thresholds = project.store.thresholds.values()
    kind = card_kind(pred, conf, thresholds)
    card = Card(sid, smp.name, pred, conf, probs, smp.text, smp.media, kind, card_reason(kind, probs, thresholds[pred]))
    current = project.store.decisions.in_force([sid]).get(sid)
    d = None if current is None else project.store.decisions.get(current.decision_id)
    decision = None
    if d is not None:
        decision = {"action": d.action, "label": None if d.label is None else project.classes[d.label],
                    "source": d.source, "reviewer": d.reviewer, "at": d.created_at.isoformat(timespec="seconds")}
    return card, decision
