"""The Review tab: one card at a time from the chosen queue, filtered by class and minimum
confidence; accept, reject, give a class (a label on a label card, a relabel on a verify
card), undo, accept all in the filter; per class the candidates left and the labels given.
Every value comes from an `AppActions` endpoint."""
from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from functools import partial

import gradio as gr
import pandas as pd

from ..engine.errors import Refusal
from ..engine.thresholds import STEP
from ..engine.vocab import DEFAULT_QUEUE, Action, CardKind, MediaKind, QueueKind, RoundStatus
from ..service.actions import AppActions
from ..service.round_summary import RoundSummary

from .charts import md, probability_bars, source_counts, widths
from .follow import Follower
from .review_card import (
    VOTED_KINDS, card_buttons, class_keys_label, empty_state, merge_updates, one_at_a_time, player, vote_lines,
)
from .review_parts import ReviewTab
from .widgets import ValueSlider

# Per page (an id each page's first card gets), the state of its last card drawn: `latest`.
_drawn: OrderedDict[str, dict] = OrderedDict()
_drawn_lock = threading.Lock()
DRAWN_PAGES = 10_000   # pages remembered (a few hundred bytes each)

QUEUE_KINDS = {  # the review queues (engine/selection.py) and what each holds
    QueueKind.BOTH: "least sure first (below threshold), then the riskiest candidates",
    QueueKind.LABEL: "below threshold, least sure first: give them a class",
    QueueKind.VERIFY: "candidates, least confident first: accept or reject",
    QueueKind.ADJUDICATE: "cards whose votes tie, for a reviewer who did not vote: give the class",
    QueueKind.AUDIT: "gold labels the round flags as likely wrong: vote the class (K votes change one)",
}
SHORTCUTS = ("**Keys:** `a` accept · `r` reject · `1`-`9` give class n (a label on a *label* card, a relabel on a "
             "*verify* card) · `u` undo · `p` play the clip · `←` `→` previous / next · `Esc` leaves a field "
             "(keys are ignored while typing in one)")
# relative widths, about each header's pixels: eight columns fit the card's column at 1366 px
CARD_TASKS = {CardKind.LABEL: "Label this", CardKind.VERIFY: "Verify this",
              QueueKind.ADJUDICATE: "Adjudicate this tie", QueueKind.AUDIT: "Audit this gold label"}
COUNTS_COLUMNS = {"class": 48, "left": 44, "verified": 74, "relabeled": 80, "labeled": 66, "voted": 50,
                  "pseudo": 58, "rejected": 74}
COUNTS_LABEL = ("Per class: candidates left (predicted as it), the pool labels given to it by people "
                "(verified, relabeled, labeled, voted: a consensus of votes or an adjudication) and by the tool "
                "(pseudo), and predictions of it rejected")


def build(actions: AppActions, saved_position: gr.BrowserState) -> ReviewTab:
    """The tab's components (inside `with gr.Tab(...)`)."""
    classes = actions.project.classes
    review_banner = gr.Markdown(elem_id="review-banner")   # drawn when the page's poll first looks
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Row():
                filter_cls = gr.Dropdown(["all", *classes], value="all", label="Class", min_width=120,
                                         elem_id="filter-class")
                filter_conf = ValueSlider(0, 1, value=0, step=STEP, label="Minimum confidence", min_width=200,
                                          elem_id="filter-conf")
                # no info line under it: at 1366x768 the clip must stay above the fold
                filter_kind = gr.Radio([str(k) for k in QUEUE_KINDS], value=str(DEFAULT_QUEUE), label="Queue",
                                       min_width=300, elem_id="filter-kind")   # five queues on two lines
                accept_all_btn = gr.Button("Accept all in this filter…", size="sm", scale=0, min_width=110,
                                           elem_id="btn-accept-all")
            with gr.Column(visible=False, variant="panel", elem_id="confirm-group") as confirm_group:
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
        # On a label card the class keys lead (app.css puts them first while they are primary).
        with gr.Column(scale=2, min_width=360, elem_id="card-actions"):
            with gr.Row(elem_id="decide-row"):
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
            counts_df = gr.Dataframe(label=COUNTS_LABEL, interactive=False, elem_id="review-counts", wrap=True,
                                     column_widths=widths(COUNTS_COLUMNS))
    review_state = gr.State({"offset": 0, "name": None})
    pending_count = gr.State(0)
    return ReviewTab(
        review_banner=review_banner, filter_cls=filter_cls, filter_conf=filter_conf, filter_kind=filter_kind,
        accept_all_btn=accept_all_btn, confirm_group=confirm_group, confirm_md=confirm_md, confirm_btn=confirm_btn,
        cancel_btn=cancel_btn, card_md=card_md, transcript=transcript, audio=audio, video=video, probs=probs,
        accept_btn=accept_btn, reject_btn=reject_btn, class_label=class_label, class_btns=class_btns,
        prev_btn=prev_btn, next_btn=next_btn, undo_btn=undo_btn, review_msg=review_msg, counts_df=counts_df,
        review_state=review_state, pending_count=pending_count, store_mark=gr.State(None),
        saved_position=saved_position)


def card_outputs(parts: ReviewTab) -> list:
    """What drawing a card fills."""
    return [parts.card_md, parts.transcript, parts.audio, parts.video, parts.probs, parts.review_state,
            parts.saved_position, parts.counts_df, parts.class_label, *parts.act_btns]


def on_move(actions: AppActions, parts: ReviewTab, cls: str, min_conf, state: dict, reviewer: str = "",
            step: int | None = None) -> dict:
    """step -1 / 0 / +1 moves from the current offset; None starts the (new) filter over. A
    minimum confidence outside [0, 1] is refused visibly and the last one goes back."""
    last = state.get("min_conf", 0.0)
    if min_conf is None or not 0.0 <= min_conf <= 1.0 or min_conf != min_conf:
        got = "no number" if min_conf is None else f"{min_conf:g}"
        return {parts.filter_conf: last,
                parts.review_msg: f"**Not applied:** the minimum confidence must lie in [0, 1], got {got}; "
                              f"it stays {last:.3f}."}
    offset = 0 if step is None else max(0, state.get("offset", 0) + step)
    # a new card clears the last card's message; a filter change drops a pending accept-all
    hide = {parts.confirm_group: gr.update(visible=False)} if step is None else {}
    moving = step in (-1, 1)   # previous / next only: nothing was decided
    return render_card(actions, parts, cls, min_conf, offset, state, reviewer, moving) | {parts.review_msg: ""} | hide


def on_min_conf(actions: AppActions, parts: ReviewTab, cls: str, min_conf, state: dict, reviewer: str = "") -> dict:
    """The minimum confidence's slider released: a new value starts the filter over; the value
    the box already had (a click into it and out) changes nothing."""
    if min_conf is not None and min_conf == state.get("min_conf", 0.0):
        return {parts.review_state: gr.skip()}
    return on_move(actions, parts, cls, min_conf, state, reviewer, step=None)


def on_kind(actions: AppActions, parts: ReviewTab, kind: str, cls: str, min_conf, state: dict,
            reviewer: str = "") -> dict:
    """Another review queue: its first card."""
    kind = kind if kind in QUEUE_KINDS else str(DEFAULT_QUEUE)
    return (on_move(actions, parts, cls, min_conf, state | {"kind": kind}, reviewer, step=None)
            | {parts.filter_kind: kind})


def on_restore(actions: AppActions, parts: ReviewTab, page_tabs: gr.Tabs, tabs: tuple[str, ...], tab: str,
               position: dict) -> dict:
    """A reload: back to the tab (one of `tabs`, the ids of `page_tabs`), the filter and the card
    the reviewer had (by name while it is still in the queue, by offset otherwise)."""
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
    return render_card(actions, parts, cls, min_conf, max(0, offset), {"kind": kind, "enabled": None}) | {
        page_tabs: gr.skip() if tab == tabs[0] else gr.update(selected=tab), parts.filter_cls: cls,
        parts.filter_kind: kind, parts.filter_conf: min_conf, parts.review_msg: "",
        parts.confirm_group: gr.update(visible=False)}


def on_store_changed(actions: AppActions, parts: ReviewTab, cls: str, min_conf, state: dict,
                     reviewer: str = "") -> dict:
    """Decisions were recorded or a round finished (here, on another server, from the command
    line). A card of an older round starts its filter over on the new round's cards; otherwise
    the card on screen stays while it is still in the queue (its place and the count follow),
    and one decided by someone else gives way to the next, saying so. A page that has drawn no
    card yet (a reload restores it) stays as it is. The filter is the one the card on screen was
    drawn with (the page's last card, `latest`): the filter's boxes may not show it yet (a
    reload), and `state` itself, read before this event waited for its turn, may be older than
    a card a new filter drew meanwhile. So may the name: the card follows the reviewer it was
    drawn for, not a name the page had when the poll fired (another's claims would show); a card
    drawn with no name (a reload) follows the name box."""
    state = latest(state)
    reviewer = state.get("reviewer") or reviewer
    if "round" not in state:
        return {parts.review_state: gr.skip()}
    cls, min_conf, name = state["cls"], state["min_conf"], state.get("name")
    where = None if not name else actions.position_of_name(name, cls, min_conf, kind=state.get("kind") or "",
                                                           reviewer=reviewer)
    offset = state.get("offset", 0) if where is None else where
    drawn = render_card(actions, parts, cls, min_conf, offset, state, reviewer, moving=True)
    if drawn[parts.review_state]["round"] != state["round"]:
        return on_move(actions, parts, cls, min_conf, state, reviewer, step=None)
    if drawn[parts.review_state] == state:
        return {parts.review_state: gr.skip()}
    decided = actions.sample_card(name).get("decision") if name and where is None else None
    if decided and decided["reviewer"] != (reviewer or "").strip():
        drawn[parts.review_msg] = (f"{md(name)} was just decided by {md(decided['reviewer'])} "
                                   f"({decided['action']}): here is the next card.")
    return drawn


def render_card(actions: AppActions, parts: ReviewTab, cls: str, min_conf: float, offset: int,
                was: dict | None = None, reviewer: str = "", moving: bool = False) -> dict:
    """The card at `offset` of the queue `was["kind"]` (DEFAULT_QUEUE when not given), held for
    `reviewer` (when named) so that others get other cards. `was` (the state the page shows
    now) spares updates the page does not need: the buttons are sent only when they change
    between enabled and disabled."""
    kind = (was or {}).get("kind") or str(DEFAULT_QUEUE)
    out = actions.next_candidate(cls, min_conf, offset, reviewer, kind)
    # The per-class counts change with decisions and filters, not when the reviewer only moves
    # through the queue: a move skips them (about 10 ms at MER2024 pool scale).
    counts = {} if moving else {parts.counts_df: counts_frame(actions)}
    has_card = bool(out["ok"] and out["candidate"] is not None)
    state = {"offset": 0, "name": None, "cls": cls, "min_conf": min_conf, "kind": kind, "reviewer": reviewer,
             "enabled": has_card, "card": None, "round": out.get("round"), "total": out.get("total"),
             "page": (was or {}).get("page") or uuid.uuid4().hex}
    buttons = {} if was is not None and was.get("enabled", True) == has_card else {
        b: gr.update(interactive=has_card) for b in parts.act_btns}
    if not has_card:
        remember(state)
        return {parts.card_md: empty_state(actions, cls, min_conf, out, kind), parts.transcript: "",
                parts.audio: gr.update(value=None, visible=False), parts.video: gr.update(value=None, visible=False),
                parts.probs: "", parts.review_state: state, parts.saved_position: state,
                parts.class_label: "Give class:", **counts, **buttons}
    c = out["candidate"]
    card = CARD_TASKS.get(c["kind"], "Verify this")
    title = (f"### {md(c['name'])} — predicted **{md(c['predicted'])}** at {c['confidence']:.3f}\n"
             f"Card {out['offset'] + 1} of {out['total']} · **{card}**: {md(c['reason'])} · round {out['round']}"
             + vote_lines(c))
    state |= {"offset": out["offset"], "name": c["name"], "card": c["kind"]}
    remember(state)
    looks = card_buttons(parts, c, None if was is None else was.get("card"))
    keys = class_keys_label(c)
    return {parts.card_md: title, parts.transcript: c["text"] or "(no transcript)",
            parts.audio: player(c, MediaKind.AUDIO), parts.video: player(c, MediaKind.VIDEO),
            parts.probs: probability_bars(c["probs"], c["predicted"]),
            parts.review_state: state, parts.saved_position: state, parts.class_label: keys, **counts,
            **merge_updates(buttons, looks)}


def remember(state: dict) -> None:
    """Keep the state of the card just drawn on its page (`state["page"]`), for `latest`."""
    with _drawn_lock:
        _drawn[state["page"]] = state
        _drawn.move_to_end(state["page"])
        while len(_drawn) > DRAWN_PAGES:
            _drawn.popitem(last=False)


def latest(state: dict) -> dict:
    """The state of the last card drawn on the page `state` comes from. Gradio reads a State
    input when an event arrives, before the event waits for its turn (`one_at_a_time`): a card
    drawn meanwhile (a new queue chosen) is newer than it."""
    with _drawn_lock:
        return _drawn.get(str(state.get("page")), state)


def on_decide(actions: AppActions, parts: ReviewTab, action: str, label: str, cls: str, min_conf: float,
              state: dict, reviewer: str) -> dict:
    """A decision on the card on screen. A class key gives a label on a label card and a relabel on
    a verify card: what the reviewer means."""
    name = state.get("name")
    if not name:
        return {parts.review_msg: "**Not recorded:** no candidate on screen"}
    if action == "class":   # a class given: a label, but a relabel of a verify card's prediction
        action = Action.LABEL if state.get("card") in (CardKind.LABEL, *VOTED_KINDS) else Action.RELABEL
    out = actions.decide(name, action, label, reviewer)
    if out.get("code") == Refusal.VOTED:   # the card is not this reviewer's to decide: the queue without it
        return render_card(actions, parts, cls, min_conf, state.get("offset", 0), state, reviewer) | {
            parts.review_msg: f"**Not recorded: you voted on {md(name)}**, so its decision is another reviewer's "
                              f"({md(out['error'])}); here is your next card."}
    if not out["ok"]:
        return {parts.review_msg: f"**Not recorded:** {md(out['error'])}"}
    if out["replaced"]:
        gr.Info(out["message"])
    # The decided sample leaves the queue: the same offset now holds the next candidate.
    return render_card(actions, parts, cls, min_conf, state.get("offset", 0), state, reviewer) | {
        parts.review_msg: f"Saved: {md(out['message'])}"}


def on_undo(actions: AppActions, parts: ReviewTab, cls: str, min_conf: float, state: dict,
            reviewer: str) -> dict:
    out = actions.undo(reviewer)
    if not out["ok"]:
        return {parts.review_msg: f"**Not undone:** {md(out['error'])}"}
    offset = state.get("offset", 0)
    if out["sample_ids"]:
        pos = actions.position_of(out["sample_ids"][0], cls, min_conf, reviewer, kind=state.get("kind") or "")
        offset = offset if pos is None else pos  # show the candidate that came back
    return render_card(actions, parts, cls, min_conf, offset, state, reviewer) | {parts.review_msg: md(out["message"])}


def on_accept_all_ask(actions: AppActions, parts: ReviewTab, cls: str, min_conf: float, reviewer: str) -> dict:
    out = actions.accept_all(cls, min_conf, reviewer)
    if out.get("code") != Refusal.CONFIRM:   # refused: nothing to ask
        return {parts.confirm_group: gr.update(visible=False), parts.confirm_md: "", parts.pending_count: 0,
                parts.review_msg: f"**Nothing to accept:** {md(out['error'])}"}
    what = "all classes" if cls in (None, "", "all") else f"class **{md(cls)}**"
    text = (f"Accept **{out['count']}** candidates ({what}, confidence ≥ its class threshold and "
            f"≥ {min_conf:.3f}) as verified labels, recorded for **{md(reviewer.strip())}**? "
            f"One undo takes them all back.")
    return {parts.confirm_group: gr.update(visible=True), parts.confirm_md: text, parts.pending_count: out["count"],
            parts.review_msg: ""}


def on_accept_all_confirm(actions: AppActions, parts: ReviewTab, cls: str, min_conf: float, reviewer: str,
                          count: int, state: dict | None = None) -> dict:
    out = actions.accept_all(cls, min_conf, reviewer, expected=count)
    if not out["ok"]:
        if out["code"] == Refusal.CONFIRM:   # the queue changed since the question: say so in the page's words
            why = (f"this filter now holds {out['count']} candidates, not the {count} you were asked about "
                   f"(decisions were made meanwhile). Press *Accept all in this filter…* again to see the "
                   f"new count.")
        else:
            why = md(out["error"])
        return {parts.review_msg: f"**Nothing accepted:** {why}", parts.confirm_group: gr.update(visible=False)}
    return render_card(actions, parts, cls, min_conf, 0, state, reviewer) | {parts.review_msg: md(out["message"]),
                                                                      parts.confirm_group: gr.update(visible=False)}


def counts_frame(actions: AppActions) -> pd.DataFrame:
    rows = actions.candidate_counts().get("classes", [])
    out = [[r["class"], r["candidates"], *source_counts(r), r["rejected"]] for r in rows]
    return pd.DataFrame(out, columns=list(COUNTS_COLUMNS))


def training_banner(snap: dict, history: Sequence[RoundSummary]) -> str:
    """The Review tab's line while a round trains: which one, and where decisions made now go."""
    if not snap.get("running"):
        return ""
    rid = snap.get("round") if snap.get("round") is not None else "the next round"
    done = [r.id for r in history if r.status == RoundStatus.DONE]
    shown = f"round {done[-1]}" if done else "no round"
    return (f"⏳ **Round {rid} is training ({round(100 * snap['fraction'])}%).** The cards here are {shown}'s. "
            f"Decisions you make now are saved, but round {rid} started with the decisions made before it: "
            f"yours go into the round after it.")


def render_banner(actions: AppActions, parts: ReviewTab) -> dict:
    """The training line, as the store and this server's training are now."""
    return {parts.review_banner: training_banner(actions.training.training_status(), actions.training.rounds())}


def followers(actions: AppActions, parts: ReviewTab) -> list[Follower]:
    """What the tab redraws as the store changes: the per-class counts, the training line, and
    the card (through `store_mark`: a card is drawn by the card's own events, one at a time)."""
    return [Follower(("thresholds", "decisions", "round"), lambda: {parts.counts_df: counts_frame(actions)},
                     [parts.counts_df]),
            Follower(("training",), partial(render_banner, actions, parts), [parts.review_banner]),
            Follower(("decisions", "round"), lambda: {parts.store_mark: time.monotonic()}, [parts.store_mark])]


def wire(actions: AppActions, parts: ReviewTab, *, page: gr.Blocks, tab: gr.Tab, tabs: gr.Tabs,
         tab_ids: tuple[str, ...], saved_tab: gr.BrowserState, reviewer: gr.Textbox, private: dict) -> None:
    """The card's events. What they need of the page: `page` (its load restores the reviewer's
    place), `tab` (the Review tab: selecting it draws the card), `tabs` with their `tab_ids` and
    `saved_tab` (the tab a reload goes back to) and the `reviewer` box.

    A card is the entry at an offset of the filtered queue. Every event that draws the card
    skips Gradio's queue (a direct POST: ~65 ms less per key press) and runs one at a time
    (`serial`), so that a later event always computes on what an earlier one decided and its
    answer arrives after it: a move still on its way can never redraw a card that a decision
    has just taken away."""
    serial = one_at_a_time(threading.Lock())
    on_card = {"queue": False, **private}
    card = card_outputs(parts)
    moved = [*card, parts.review_msg, parts.confirm_group, parts.filter_conf]
    inputs = [parts.filter_cls, parts.filter_conf, parts.review_state, reviewer]
    move = serial(partial(on_move, actions, parts))
    # A reload: back to the tab, the filter and the card the reviewer had.
    page.load(serial(partial(on_restore, actions, parts, tabs, tab_ids)), [saved_tab, parts.saved_position],
              [tabs, parts.filter_cls, parts.filter_kind, *moved], **on_card)
    # The store changed: the card follows (always_last: the last change is always drawn).
    parts.store_mark.change(serial(partial(on_store_changed, actions, parts)), inputs, moved,
                            trigger_mode="always_last", show_progress="hidden", **on_card)
    # always_last: a second arrow press while the first is on its way moves again, never lost
    for trigger, step in ((tab.select, 0), (parts.prev_btn.click, -1), (parts.next_btn.click, 1)):
        trigger(partial(move, step=step), inputs, moved, trigger_mode="always_last", show_progress="hidden",
                **on_card)
    # .input, not .change: a value set by the page (a reload restoring the filter) is no new filter
    parts.filter_cls.input(partial(move, step=None), inputs, moved, **on_card)
    parts.filter_kind.input(serial(partial(on_kind, actions, parts)), [parts.filter_kind, *inputs],
                            [*moved, parts.filter_kind], **on_card)
    parts.filter_conf.release(serial(partial(on_min_conf, actions, parts)), inputs, moved, trigger_mode="multiple",
                              **on_card)
    # A name entered: the card on screen is claimed for it (or another, if someone holds it).
    reviewer.blur(partial(move, step=0), inputs, moved, **on_card)
    decided = [*card, parts.review_msg]
    # No loading overlay on every output of a key press: the card changes in a blink.
    quick = {"show_progress": "hidden", **on_card}
    parts.accept_btn.click(serial(partial(on_decide, actions, parts, Action.ACCEPT, "")), inputs, decided, **quick)
    parts.reject_btn.click(serial(partial(on_decide, actions, parts, Action.REJECT, "")), inputs, decided, **quick)
    for c, btn in zip(actions.project.classes, parts.class_btns):
        btn.click(serial(partial(on_decide, actions, parts, "class", c)), inputs, decided, **quick)
    parts.undo_btn.click(serial(partial(on_undo, actions, parts)), inputs, decided, **quick)
    parts.accept_all_btn.click(partial(on_accept_all_ask, actions, parts),
                               [parts.filter_cls, parts.filter_conf, reviewer],
                               [parts.confirm_group, parts.confirm_md, parts.pending_count, parts.review_msg],
                               **private)
    parts.confirm_btn.click(serial(partial(on_accept_all_confirm, actions, parts)),
                            [parts.filter_cls, parts.filter_conf, reviewer, parts.pending_count,
                             parts.review_state],
                            [*card, parts.review_msg, parts.confirm_group], **on_card)
    parts.cancel_btn.click(lambda: gr.update(visible=False), None, parts.confirm_group, **private)
