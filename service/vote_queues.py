"""The queues of voted cards, which `service/review.queue_page` (the one queue function) serves
besides the pool queues: `adjudicate` (ties of votes, each card with every vote and the model's
probabilities, for a reviewer who did not vote) and `audit` (gold labels flagged as likely wrong,
with the gold label and the out-of-fold probabilities); and the gold probes, which join the pool
queues as ordinary cards (their probabilities: the round's out-of-fold ones). No Gradio."""
from __future__ import annotations

import numpy as np

from ..engine.selection import card_kind, card_reason
from ..engine.vocab import Action, QueueKind, VotePurpose

from .audit import audit_queue, oof_predictions
from .project import Project, ProjectError
from .review import Card, RoundView

_with_probes: dict[tuple, RoundView] = {}


def with_probes(project: Project, view: RoundView) -> RoundView:
    """`view` with the gold probes appended to its pool rows (out-of-fold probabilities), for the
    pool queues only: counts, histograms and the automatic step read `view` itself."""
    probes = sorted(project.store.votes.cards(VotePurpose.PROBE))
    if not probes:
        return view
    key = (id(view), tuple(probes))
    if key not in _with_probes:
        if len(_with_probes) > 8:
            _with_probes.pop(next(iter(_with_probes)))
        ids, probs = oof_predictions(project, view.round_id)
        at = np.flatnonzero(np.isin(ids, probes))
        _with_probes[key] = RoundView(view.round_id, view.n_classes, view.oof_pred, view.oof_conf, view.oof_true,
                                      np.r_[view.pool_ids, ids[at]],
                                      np.concatenate([view.pool_probs, probs[at]]).astype(np.float32))
    return _with_probes[key]


def voted_page(project: Project, kind: str, offset: int, limit: int, reviewer: str | None,
               view: RoundView, thresholds: list[float]) -> tuple[list[Card], int]:
    """(cards offset..offset+limit of the adjudicate or audit queue, the queue's length)."""
    if kind == QueueKind.ADJUDICATE:
        ids = project.store.votes.ties()
        if reviewer:   # a voter does not decide their own tie
            ballots = project.store.votes.on(ids)
            ids = [i for i in ids if all(b.reviewer != reviewer for b in ballots.get(i, []))]
        rows, probs = view.pool_ids, view.pool_probs
    elif kind == QueueKind.AUDIT:
        ids = audit_queue(project, reviewer)
        rows, probs = oof_predictions(project, view.round_id)
    else:
        raise ProjectError(f"not a queue of voted cards: {kind!r}")
    page = ids[offset:offset + limit]
    at = {int(s): i for i, s in enumerate(rows.tolist())}
    samples = project.store.samples.by_id(page)
    ballots = project.store.votes.on(page)
    classes = project.classes
    cards = []
    for sid in page:
        p = probs[at[sid]]
        pred, conf = int(p.argmax()), float(p.max())
        votes = tuple({"reviewer": b.reviewer, "action": b.action,
                       "label": None if b.label is None else classes[b.label]} for b in ballots.get(sid, []))
        smp = samples[sid]
        if kind == QueueKind.ADJUDICATE:
            shown = ", ".join(f"{v['label'] if v['action'] != Action.REJECT else Action.REJECT.value} ({v['reviewer']})"
                              for v in votes)
            reason = f"votes tie: {shown}"
            gold = None
        else:
            gold = int(smp.gold_label if smp.gold_label is not None else pred)
            reason = f"gold {classes[gold]}: out-of-fold {p[gold]:.2f}, {classes[pred]} {conf:.2f}"
            if votes:
                reason += f"; {len(votes)} vote(s) so far"
        base = card_kind(pred, conf, thresholds)
        cards.append(Card(sid, smp.name, pred, conf, p, smp.text, smp.media, kind,
                          reason if kind == QueueKind.AUDIT or votes else card_reason(base, p, thresholds[pred]),
                          votes=votes, gold=gold))
    return cards, len(ids)

