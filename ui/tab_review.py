"""The Review tab: one card at a time from the chosen queue, filtered by class and minimum
confidence; accept, reject, give a class (a label on a label card, a relabel on a verify
card), undo, accept all in the filter; per class the candidates left and the labels given.
Every value comes from an `AppActions` endpoint."""
from __future__ import annotations

import functools
import threading
from functools import partial
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from ..engine.thresholds import STEP
from ..engine.vocab import DEFAULT_QUEUE, POOL_SOURCES, Action, CardKind, MediaKind, QueueKind
from ..service.actions import AppActions

from .charts import md, probability_bars
from .widgets import ValueSlider

QUEUE_KINDS = {  # the review queues (engine/selection.py) and what each holds
    QueueKind.BOTH: "least sure first (below threshold), then the riskiest candidates",
    QueueKind.LABEL: "below threshold, least sure first: give them a class",
    QueueKind.VERIFY: "candidates, least confident first: accept or reject",
}
SHORTCUTS = ("**Keys:** `a` accept · `r` reject · `1`-`9` give class n (a label on a *label* card, a relabel on a "
             "*verify* card) · `u` undo · `p` play the clip · `←` `→` previous / next · `Esc` leaves a field "
             "(keys are ignored while typing in one)")
COUNTS_LABEL = ("Per class: candidates remaining (predicted as it), the pool labels given to it by people "
                "(verified, relabeled, labeled) and by the tool (pseudo), and predictions of it rejected")


def layout(actions: AppActions, banner: str) -> SimpleNamespace:
    classes = actions.project.classes
    review_banner = gr.Markdown(banner, elem_id="review-banner")
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Row():
                filter_cls = gr.Dropdown(["all", *classes], value="all", label="Class", min_width=140,
                                         elem_id="filter-class")
                filter_conf = ValueSlider(0, 1, value=0, step=STEP, label="Minimum confidence", min_width=200,
                                          elem_id="filter-conf")
                # no info line under it: at 1366x768 the clip must stay above the fold
                filter_kind = gr.Radio([str(k) for k in QUEUE_KINDS], value=str(DEFAULT_QUEUE), label="Queue",
                                       min_width=200, elem_id="filter-kind")
                accept_all_btn = gr.Button("Accept all in this filter…", size="sm", scale=0, min_width=200,
                                           elem_id="btn-accept-all")
            with gr.Group(visible=False, elem_id="confirm-group") as confirm_group:
                confirm_md = gr.Markdown(elem_id="confirm-text", padding=True)
                with gr.Row():
                    confirm_btn = gr.Button("Yes, accept them", variant="primary", size="md", elem_id="btn-confirm")
                    cancel_btn = gr.Button("Cancel", size="md", elem_id="btn-cancel")
            card_md = gr.Markdown(elem_id="card-title")
            with gr.Row(equal_height=True):
                with gr.Column(scale=3, min_width=300):
                    transcript = gr.Textbox(label="Transcript", interactive=False, lines=3, max_lines=6,
                                            elem_id="card-text")
                    audio = gr.Audio(type="filepath", interactive=False, visible=False,
                                     label="Clip (p plays / pauses)", elem_id="card-audio")
                    video = gr.Video(interactive=False, visible=False, height=200,
                                     label="Clip (p plays from the start)", elem_id="card-video")
                probs = gr.HTML(elem_id="card-probs", min_height=0, scale=2, min_width=260)
        with gr.Column(scale=2, min_width=360):
            with gr.Row():
                accept_btn = gr.Button("Accept (a)", variant="primary", elem_id="btn-accept")
                reject_btn = gr.Button("Reject (r)", variant="stop", elem_id="btn-reject")
            class_label = gr.Markdown("Give class:", elem_classes="compact", elem_id="class-keys-label")
            with gr.Row(elem_id="relabel-row"):
                class_btns = [gr.Button(f"{i + 1} {c}" if i < 9 else c, size="sm", min_width=60,
                                        elem_id=f"btn-relabel-{i + 1}") for i, c in enumerate(classes)]
            with gr.Row():
                prev_btn = gr.Button("← Previous", size="sm", elem_id="btn-prev")
                next_btn = gr.Button("Skip →", size="sm", elem_id="btn-next")
                undo_btn = gr.Button("Undo (u)", size="sm", elem_id="btn-undo")
            gr.Markdown(SHORTCUTS, elem_classes="compact", elem_id="shortcuts")
            review_msg = gr.Markdown(elem_id="review-message")
            counts_df = gr.Dataframe(label=COUNTS_LABEL, interactive=False, elem_id="review-counts")
    review_state = gr.State({"offset": 0, "name": None})
    pending_count = gr.State(0)
    return SimpleNamespace(
        review_banner=review_banner, filter_cls=filter_cls, filter_conf=filter_conf, filter_kind=filter_kind,
        accept_all_btn=accept_all_btn, confirm_group=confirm_group, confirm_md=confirm_md, confirm_btn=confirm_btn,
        cancel_btn=cancel_btn, card_md=card_md, transcript=transcript, audio=audio, video=video, probs=probs,
        accept_btn=accept_btn, reject_btn=reject_btn, class_label=class_label, class_btns=class_btns,
        prev_btn=prev_btn, next_btn=next_btn, undo_btn=undo_btn, review_msg=review_msg, counts_df=counts_df,
        review_state=review_state, pending_count=pending_count,
        act_btns=[accept_btn, reject_btn, *class_btns, prev_btn, next_btn, accept_all_btn])


def card_outputs(W: SimpleNamespace) -> list:
    """What drawing a card fills."""
    return [W.card_md, W.transcript, W.audio, W.video, W.probs, W.review_state, W.saved_position, W.counts_df,
            W.class_label, *W.act_btns]


def on_move(actions: AppActions, W: SimpleNamespace, cls: str, min_conf, state: dict, reviewer: str = "",
            step: int | None = None) -> dict:
    """step -1 / 0 / +1 moves from the current offset; None starts the (new) filter over. A
    minimum confidence outside [0, 1] is refused visibly and the last one goes back."""
    last = state.get("min_conf", 0.0)
    if min_conf is None or not 0.0 <= min_conf <= 1.0 or min_conf != min_conf:
        got = "nothing" if min_conf is None else f"{min_conf:g}"
        return {W.filter_conf: last,
                W.review_msg: f"**Not applied:** the minimum confidence must lie in [0, 1], got {got}; "
                              f"it stays {last:.3f}."}
    offset = 0 if step is None else max(0, state.get("offset", 0) + step)
    # a new card clears the last card's message; a filter change drops a pending accept-all
    hide = {W.confirm_group: gr.update(visible=False)} if step is None else {}
    moving = step in (-1, 1)   # previous / next only: nothing was decided
    return render_card(actions, W, cls, min_conf, offset, state, reviewer, moving) | {W.review_msg: ""} | hide


def on_kind(actions: AppActions, W: SimpleNamespace, kind: str, cls: str, min_conf, state: dict,
            reviewer: str = "") -> dict:
    """Another review queue: its first card."""
    kind = kind if kind in QUEUE_KINDS else str(DEFAULT_QUEUE)
    return on_move(actions, W, cls, min_conf, state | {"kind": kind}, reviewer, step=None) | {W.filter_kind: kind}


def on_restore(actions: AppActions, W: SimpleNamespace, tab: str, position: dict, tabs: tuple) -> dict:
    """A reload: back to the tab, the filter and the card the reviewer had (by name while it is
    still in the queue, by offset otherwise)."""
    tab = tab if tab in tabs else tabs[0]
    position = position if isinstance(position, dict) else {}
    cls = str(position["cls"]) if position.get("cls") in ["all", *actions.project.classes] else "all"
    given = position.get("min_conf")
    min_conf = float(given) if isinstance(given, (int, float)) and 0 <= given <= 1 else 0.0
    offset = int(position["offset"]) if isinstance(position.get("offset"), int) else 0
    kind = str(position["kind"]) if position.get("kind") in QUEUE_KINDS else str(DEFAULT_QUEUE)
    name = position.get("name")
    if isinstance(name, str) and name:
        pos = actions.position_of_name(name, cls, min_conf, kind=kind)
        offset = offset if pos is None else pos
    # The first tab is on screen already: selecting it again could undo a tab the reviewer
    # clicked while this answer was on its way.
    return render_card(actions, W, cls, min_conf, max(0, offset), {"kind": kind, "enabled": None}) | {
        W.tabs: gr.skip() if tab == tabs[0] else gr.update(selected=tab), W.filter_cls: cls, W.filter_kind: kind,
        W.filter_conf: min_conf, W.review_msg: "", W.confirm_group: gr.update(visible=False)}


def render_card(actions: AppActions, W: SimpleNamespace, cls: str, min_conf: float, offset: int,
                was: dict | None = None, reviewer: str = "", moving: bool = False) -> dict:
    """The card at `offset` of the queue `was["kind"]` (DEFAULT_QUEUE when not given), held for
    `reviewer` (when named) so that others get other cards. `was` (the state the page shows
    now) spares updates the page does not need: the buttons are sent only when they change
    between enabled and disabled."""
    kind = (was or {}).get("kind") or str(DEFAULT_QUEUE)
    out = actions.next_candidate(cls, min_conf, offset, reviewer, kind)
    # The per-class counts change with decisions and filters, not when the reviewer only moves
    # through the queue: a move skips them (about 10 ms at MER2024 pool scale).
    counts = {} if moving else {W.counts_df: counts_frame(actions)}
    has_card = bool(out["ok"] and out["candidate"] is not None)
    state = {"offset": 0, "name": None, "cls": cls, "min_conf": min_conf, "kind": kind, "enabled": has_card,
             "card": None}
    buttons = {} if was is not None and was.get("enabled", True) == has_card else {
        b: gr.update(interactive=has_card) for b in W.act_btns}
    if not has_card:
        return {W.card_md: empty_state(actions, cls, min_conf, out, kind), W.transcript: "",
                W.audio: gr.update(value=None, visible=False), W.video: gr.update(value=None, visible=False),
                W.probs: "", W.review_state: state, W.saved_position: state, W.class_label: "Give class:",
                **counts, **buttons}
    c = out["candidate"]
    card = "Label this" if c["kind"] == CardKind.LABEL else "Verify this"
    title = (f"### {md(c['name'])} — predicted **{md(c['predicted'])}** at {c['confidence']:.3f}\n"
             f"Card {out['offset'] + 1} of {out['total']} · **{card}**: {md(c['reason'])} · round {out['round']}")
    state |= {"offset": out["offset"], "name": c["name"], "card": c["kind"]}
    keys = "Label as:" if c["kind"] == CardKind.LABEL else "Relabel as:"
    return {W.card_md: title, W.transcript: c["text"] or "(no transcript)", W.audio: player(c, MediaKind.AUDIO),
            W.video: player(c, MediaKind.VIDEO), W.probs: probability_bars(c["probs"], c["predicted"]),
            W.review_state: state, W.saved_position: state, W.class_label: keys, **counts, **buttons}


def empty_state(actions: AppActions, cls: str, min_conf: float, out: dict, kind: str = DEFAULT_QUEUE) -> str:
    """No card: say why and what to do about it."""
    if out.get("error", "").startswith("no finished round"):
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
    what = {"verify": "No undecided candidate passes the thresholds here.",
            "label": "No undecided sample is below its threshold here.",
            }.get(kind, "No undecided pool sample here.")
    return (f"### No candidate in this filter\n{what}"
            + (" To see more: " + "; ".join(advice) + "." if advice else ""))


def player(card: dict, kind: str):
    """Show the clip in the player of its kind; hide the other player."""
    shown = card["media_kind"] == kind
    return gr.update(value=card["media"] if shown else None, visible=shown)


def on_decide(actions: AppActions, W: SimpleNamespace, action: str, label: str, cls: str, min_conf: float,
              state: dict, reviewer: str) -> dict:
    """A decision on the card on screen. A class key gives a label on a label card and a relabel on
    a verify card: what the reviewer means."""
    name = state.get("name")
    if not name:
        return {W.review_msg: "**Not recorded:** no candidate on screen"}
    if action == "class":
        action = Action.LABEL if state.get("card") == CardKind.LABEL else Action.RELABEL
    out = actions.decide(name, action, label, reviewer)
    if not out["ok"]:
        return {W.review_msg: f"**Not recorded:** {md(out['error'])}"}
    if out["replaced"]:
        gr.Info(out["message"])
    # The decided sample leaves the queue: the same offset now holds the next candidate.
    return render_card(actions, W, cls, min_conf, state.get("offset", 0), state, reviewer) | {
        W.review_msg: f"Saved: {md(out['message'])}"}


def on_undo(actions: AppActions, W: SimpleNamespace, cls: str, min_conf: float, state: dict,
            reviewer: str) -> dict:
    out = actions.undo(reviewer)
    if not out["ok"]:
        return {W.review_msg: f"**Not undone:** {md(out['error'])}"}
    offset = state.get("offset", 0)
    if out["sample_ids"]:
        pos = actions.position_of(out["sample_ids"][0], cls, min_conf, reviewer, kind=state.get("kind") or "")
        offset = offset if pos is None else pos  # show the candidate that came back
    return render_card(actions, W, cls, min_conf, offset, state, reviewer) | {W.review_msg: md(out["message"])}


def on_accept_all_ask(actions: AppActions, W: SimpleNamespace, cls: str, min_conf: float, reviewer: str) -> dict:
    out = actions.accept_all(cls, min_conf, reviewer)
    if "count" not in out:
        return {W.confirm_group: gr.update(visible=False), W.confirm_md: "", W.pending_count: 0,
                W.review_msg: f"**Nothing to accept:** {md(out['error'])}"}
    what = "all classes" if cls in (None, "", "all") else f"class **{md(cls)}**"
    text = (f"Accept **{out['count']}** candidates ({what}, confidence ≥ its class threshold and "
            f"≥ {min_conf:.3f}) as verified labels, recorded for **{md(reviewer.strip())}**? "
            f"One undo takes them all back.")
    return {W.confirm_group: gr.update(visible=True), W.confirm_md: text, W.pending_count: out["count"],
            W.review_msg: ""}


def on_accept_all_confirm(actions: AppActions, W: SimpleNamespace, cls: str, min_conf: float, reviewer: str,
                          count: int, state: dict | None = None) -> dict:
    out = actions.accept_all(cls, min_conf, reviewer, expected=count)
    if not out["ok"]:
        if "count" in out:  # the queue changed since the question: say so in the page's words
            why = (f"this filter now holds {out['count']} candidates, not the {count} you were asked about "
                   f"(decisions were made meanwhile). Press *Accept all in this filter…* again to see the "
                   f"new count.")
        else:
            why = md(out["error"])
        return {W.review_msg: f"**Nothing accepted:** {why}", W.confirm_group: gr.update(visible=False)}
    return render_card(actions, W, cls, min_conf, 0, state, reviewer) | {W.review_msg: md(out["message"]),
                                                                         W.confirm_group: gr.update(visible=False)}


def counts_frame(actions: AppActions) -> pd.DataFrame:
    rows = actions.candidate_counts().get("classes", [])
    out = [[r["class"], r["candidates"], *(r[s] for s in POOL_SOURCES), r["rejected"]] for r in rows]
    return pd.DataFrame(out, columns=["class", "remaining", *map(str, POOL_SOURCES), "rejected"])


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


def wire(actions: AppActions, W: SimpleNamespace, tab: gr.Tab, reviewer: gr.Textbox, private: dict) -> None:
    """A card is the entry at an offset of the filtered queue. Every event that draws the card
    skips Gradio's queue (a direct POST: ~65 ms less per key press) and runs one at a time
    (`serial`), so that a later event always computes on what an earlier one decided and its
    answer arrives after it: a move still on its way can never redraw a card that a decision
    has just taken away."""
    serial = one_at_a_time(threading.Lock())
    W.serial = serial
    on_card = {"queue": False, **private}
    card = card_outputs(W)
    moved = [*card, W.review_msg, W.confirm_group, W.filter_conf]
    inputs = [W.filter_cls, W.filter_conf, W.review_state, reviewer]
    move = serial(partial(on_move, actions, W))
    W.move = move
    # always_last: a second arrow press while the first is on its way moves again, never lost
    for trigger, step in ((tab.select, 0), (W.prev_btn.click, -1), (W.next_btn.click, 1)):
        trigger(partial(move, step=step), inputs, moved, trigger_mode="always_last", show_progress="hidden",
                **on_card)
    # .input, not .change: a value set by the page (a reload restoring the filter) is no new filter
    W.filter_cls.input(partial(move, step=None), inputs, moved, **on_card)
    W.filter_kind.input(serial(partial(on_kind, actions, W)), [W.filter_kind, *inputs], [*moved, W.filter_kind],
                        **on_card)
    W.filter_conf.release(partial(move, step=None), inputs, moved, trigger_mode="always_last", **on_card)
    # A name entered: the card on screen is claimed for it (or another, if someone holds it).
    reviewer.blur(partial(move, step=0), inputs, moved, **on_card)
    decided = [*card, W.review_msg]
    # No loading overlay on every output of a key press: the card changes in a blink.
    quick = {"show_progress": "hidden", **on_card}
    W.accept_btn.click(serial(partial(on_decide, actions, W, Action.ACCEPT, "")), inputs, decided, **quick)
    W.reject_btn.click(serial(partial(on_decide, actions, W, Action.REJECT, "")), inputs, decided, **quick)
    for c, btn in zip(actions.project.classes, W.class_btns):
        btn.click(serial(partial(on_decide, actions, W, "class", c)), inputs, decided, **quick)
    W.undo_btn.click(serial(partial(on_undo, actions, W)), inputs, decided, **quick)
    W.accept_all_btn.click(partial(on_accept_all_ask, actions, W), [W.filter_cls, W.filter_conf, reviewer],
                           [W.confirm_group, W.confirm_md, W.pending_count, W.review_msg], **private)
    W.confirm_btn.click(serial(partial(on_accept_all_confirm, actions, W)),
                        [W.filter_cls, W.filter_conf, reviewer, W.pending_count, W.review_state],
                        [*card, W.review_msg, W.confirm_group], **on_card)
    W.cancel_btn.click(lambda: gr.update(visible=False), None, W.confirm_group, **private)
