"""How a Review card looks: its decision buttons as the card's kind asks, the line an empty queue
shows, the clip's player; and `one_at_a_time`, which serializes the card's events. Plain functions
of values and of the tab's components (ui/tab_review.py)."""
from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING

import gradio as gr

from ..engine.errors import Refusal
from ..engine.vocab import DEFAULT_QUEUE, Action, CardKind, QueueKind
from ..service.actions import AppActions

from .charts import md

if TYPE_CHECKING:
    from .review_parts import ReviewTab

VOTED_KINDS = (QueueKind.ADJUDICATE, QueueKind.AUDIT)   # queues of cards people vote on: a class key decides


def vote_lines(card: dict) -> str:
    """Under an adjudicate or audit card's title: the gold label (audit), and every vote in force
    on it, reviewer and class; nothing on a pool card."""
    if card["kind"] not in VOTED_KINDS:
        return ""
    def said(v: dict) -> str:   # a rejection names no class
        return Action.REJECT.value if v["action"] == Action.REJECT else md(v["label"])

    shown = " · ".join(f"{md(v['reviewer'])}: **{said(v)}**" for v in card["votes"]) or "none yet"
    if card["kind"] == QueueKind.AUDIT:
        return (f"\n\nGold label **{md(card['gold'])}** · the bars: the round's out-of-fold probabilities (it did "
                f"not train on this sample) · votes so far: {shown}")
    return f"\n\nVotes: {shown} · the bars: the model's probabilities"


def class_keys_label(card: dict) -> str:
    """What the class keys do on this card."""
    return {CardKind.LABEL: "Label as (the model's guess is below its threshold):",
            QueueKind.ADJUDICATE: "Decide the class (your decision is the label):",
            QueueKind.AUDIT: "Your vote on the class:"}.get(card["kind"], "Relabel as:")


def card_buttons(parts: ReviewTab, card: dict, was: str | None) -> dict:
    """The decision buttons as the card's kind asks. A verify card: Accept and Reject lead. A
    label card: the class keys lead (primary), and Accept asks the question it answers, since
    the model's guess is below its threshold: "Is it joy? Yes". Sent when the kind changes, and
    on every label card (the question names its class)."""
    label = card["kind"] in (CardKind.LABEL, *VOTED_KINDS)   # the class keys lead
    if not label and was == card["kind"]:
        return {}
    out = {b: gr.update(variant="primary" if label else "secondary") for b in parts.class_btns}
    if label:
        return out | {parts.accept_btn: gr.update(value=f"Is it {card['predicted']}? Yes (a)", variant="secondary",
                                                  size="md"),
                      parts.reject_btn: gr.update(value="No (r)", variant="secondary", size="md")}
    return out | {parts.accept_btn: gr.update(value="Accept (a)", variant="primary", size="lg"),
                  parts.reject_btn: gr.update(value="Reject (r)", variant="stop", size="lg")}


def merge_updates(*updates: dict) -> dict:
    """Updates of the same components, merged per component (gr.update's dicts)."""
    out: dict = {}
    for part in updates:
        for component, update in part.items():
            out[component] = {**out.get(component, {}), **update}
    return out


def empty_state(actions: AppActions, cls: str, min_conf: float, out: dict, kind: str = DEFAULT_QUEUE) -> str:
    """No card: say why and what to do about it."""
    if out.get("code") == Refusal.NO_ROUND:
        return "### No candidate yet\nNo round has finished: train round 0 on the **Train** tab first."
    if not out["ok"]:
        return f"### No candidate\n{md(out['error'])}"
    advice = {"verify": ["lower a class's threshold on the **Thresholds** tab (candidates are at or above it)",
                         "switch the queue to **label** (samples below their threshold)"],
              "label": ["switch the queue to **verify** (the candidates)",
                        "raise a class's threshold on the **Thresholds** tab"],
              }.get(kind, [])
    if min_conf > 0:
        advice.insert(0, f"lower the minimum confidence (now {min_conf:.3f})")
    if cls not in (None, "", "all"):
        advice.insert(0, "choose class **all**")
    if kind in VOTED_KINDS:   # no class or confidence filter: the service says why the queue is empty
        return f"### No {kind} card\n{md(out.get('message') or '')}." + (
            " Ties arise on the overlap share: set it on the **Decisions** tab (votes per card, share)."
            if kind == QueueKind.ADJUDICATE else "")
    what = {"verify": "No undecided candidate passes the thresholds here.",
            "label": "No undecided sample is below its threshold here.",
            }.get(kind, "No undecided pool sample here.")
    return (f"### No candidate in this filter\n{what}"
            + (" To see more: " + "; ".join(advice) + "." if advice else ""))


def player(card: dict, kind: str):
    """Show the clip in the player of its kind; hide the other player."""
    shown = card["media_kind"] == kind
    return gr.update(value=card["media"] if shown else None, visible=shown)


def one_at_a_time(lock: threading.Lock):
    """A decorator: the handlers it wraps run one at a time (under `lock`). Gradio's queue did
    this for the card's events; off the queue they would run side by side."""
    def wrap(fn):
        @functools.wraps(fn)
        def serial(*args, **kwargs):
            with lock:
                return fn(*args, **kwargs)
        return serial
    return wrap
