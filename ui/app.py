"""The review app: Gradio Blocks over `AppActions` (service/actions.py).

Layout first, event wiring after. Every action is also a named API endpoint (`gr.api`), and
the buttons call the same `AppActions` methods; the page's own events are private. Queries
return one page or one count at a time: nothing sends the pool to the browser.
"""
from __future__ import annotations

import functools
import html
import math
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..service.actions import LOGIN, AppActions  # noqa: E402
from ..service.project import Project  # noqa: E402
from ..service.review import (  # noqa: E402
    DEFAULT_QUEUE, HIST_BINS, auto_accept_preview, round_view, split_histogram, wilson_interval,
)
from .widgets import ValueSlider  # noqa: E402

HERE = Path(__file__).resolve().parent
ENDPOINTS = ("status", "candidate_counts", "set_thresholds", "release_thresholds", "threshold_history", "suggest",
             "paper_preset", "next_candidate",
             "decide", "undo", "accept_all", "train_round", "training_status", "round_history", "export")
SHORTCUTS = ("**Keys:** `a` accept · `r` reject · `1`-`9` relabel as class n · `u` undo · `p` play the clip · "
             "`←` `→` previous / next · `Esc` leaves a field (keys are ignored while typing in one)")
THRESHOLD_STEP = 0.001   # what a threshold slider shows and stores (service/review.py's suggestions use it)
THIN_SUPPORT = 30        # an out-of-fold precision resting on fewer samples is marked thin
LOW_PRECISION = 0.8      # auto-accept confirmation: classes below it are flagged
POLL_S = 1.0
Logins = tuple[str, str] | Sequence[tuple[str, str]] | None


class ApiBlocks(gr.Blocks):
    """Blocks whose named API endpoints get the declared default of every argument a client
    left out (None where the parameter has none), so that the action refuses a missing
    argument in its own words: Gradio's own check raises, and the client gets {"error": null}."""

    async def preprocess_data(self, block_fn, inputs, *args, **kwargs):
        declared = block_fn.inputs
        if block_fn.api_name in ENDPOINTS and isinstance(inputs, list) and len(inputs) < len(declared):
            inputs = inputs + [getattr(block, "value", None) for block in declared[len(inputs):]]
        return await super().preprocess_data(block_fn, inputs, *args, **kwargs)

    async def process_api(self, *args, **kwargs):
        """Every event and API call runs with its login (None without logins) in LOGIN, which
        the actions record as the reviewer instead of any name the client sends."""
        request = kwargs.get("request")
        if isinstance(request, list):
            request = request[0] if request else None
        token = LOGIN.set(getattr(request, "username", None))
        try:
            return await super().process_api(*args, **kwargs)
        finally:
            LOGIN.reset(token)


def build_app(project_root: str | Path, presets: dict[str, Path] | None = None) -> gr.Blocks:
    """The app for one project. `presets` maps training preset names to YAML files (default:
    configs/*.yaml)."""
    actions = AppActions(Project.open(project_root), presets)
    threading.Thread(target=actions.warm, name="mersemi-warm", daemon=True).start()
    classes = actions.project.classes
    thresholds = actions.project.thresholds()
    bin_width = (1 - 1 / len(classes)) / HIST_BINS  # histogram_frame's bins, as the plot's x bins

    with ApiBlocks(title="mersemi review", fill_width=True) as demo:
        demo.actions = actions  # for serve() and the tests: the same object the events use

        # ------------------------------------------------------------------ header
        with gr.Row(elem_id="header", equal_height=True):
            header = gr.Markdown(header_markdown(actions), elem_id="header-info")
            reviewer = gr.Textbox(label="Reviewer", placeholder="your name (required to decide)",
                                  max_length=128, scale=0, min_width=280, elem_id="reviewer")
        saved_reviewer = gr.BrowserState("", storage_key="mersemi-reviewer")
        current = actions.project.store.current_round()
        # The current round id: when a poll finds another, every tab is refreshed.
        round_marker = gr.State(None if current is None else current.id)
        poll_key = gr.State(None)       # what the Train tab last showed of the runner and rounds

        saved_tab = gr.BrowserState("thresholds", storage_key="mersemi-tab")
        saved_position = gr.BrowserState({}, storage_key="mersemi-position")
        # Outside the tabs: a tab not on screen is not rendered, and a timer in it would not tick.
        timer = gr.Timer(POLL_S)
        with gr.Tabs(elem_id="tabs") as tabs:
            # -------------------------------------------------------------- thresholds
            with gr.Tab("Thresholds", id="thresholds", elem_id="tab-thresholds") as tab_thresholds:
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        gr.Markdown("Candidates of a class are the undecided pool samples predicted as that "
                                    "class with confidence at or above its threshold (blue in the histograms). "
                                    "Suggest: each class's lowest threshold reaching the target precision. "
                                    "Paper preset: 0.99 for neutral, angry, happy and sad, 0.85 for worried "
                                    "and surprise, 0.95 for other classes.")
                        sliders = [ValueSlider(0, 1, value=thresholds[c], step=THRESHOLD_STEP, label=c,
                                               elem_id=f"threshold-{i}") for i, c in enumerate(classes)]
                        target = gr.Number(0.95, label="Target precision for Suggest", minimum=0, maximum=1,
                                           step=0.01, elem_id="target-precision")
                        with gr.Row():
                            suggest_btn = gr.Button("Suggest", size="md", min_width=100, elem_id="btn-suggest")
                            preset_btn = gr.Button("Paper preset", size="md", min_width=100, elem_id="btn-preset")
                        threshold_note = gr.Markdown(elem_id="threshold-note")
                    with gr.Column(scale=3):
                        class_df = gr.Dataframe(label="Per class at these thresholds", interactive=False,
                                                elem_id="class-table", wrap=True)
                        with gr.Row(elem_id="histograms"):
                            hists = [gr.BarPlot(x="confidence", y="samples", color="side",
                                                color_map={"below": "#c7ccd4", "at or above": "#3b82f6"},
                                                x_bin=bin_width, y_aggregate="sum", x_lim=[1 / len(classes), 1],
                                                title=c, x_title="pool confidence", height=170,
                                                min_width=300, show_label=False, colors_in_legend=[],
                                                elem_id=f"hist-{i}") for i, c in enumerate(classes)]

            # -------------------------------------------------------------- review
            with gr.Tab("Review", id="review", elem_id="tab-review") as tab_review:
                review_banner = gr.Markdown(training_banner(actions, actions.training_status()),
                                            elem_id="review-banner")
                with gr.Row():
                    with gr.Column(scale=3):
                        with gr.Row():
                            filter_cls = gr.Dropdown(["all", *classes], value="all", label="Class",
                                                     min_width=140, elem_id="filter-class")
                            filter_conf = ValueSlider(0, 1, value=0, step=THRESHOLD_STEP, label="Minimum confidence",
                                                      min_width=200, elem_id="filter-conf")
                            # no info line under it: at 1366x768 the clip must stay above the fold
                            filter_kind = gr.Radio(list(QUEUE_KINDS), value=DEFAULT_QUEUE, label="Queue",
                                                   min_width=200, elem_id="filter-kind")
                            accept_all_btn = gr.Button("Accept all in this filter…", size="sm", scale=0,
                                                       min_width=200, elem_id="btn-accept-all")
                        with gr.Group(visible=False, elem_id="confirm-group") as confirm_group:
                            confirm_md = gr.Markdown(elem_id="confirm-text", padding=True)
                            with gr.Row():
                                confirm_btn = gr.Button("Yes, accept them", variant="primary", size="md",
                                                        elem_id="btn-confirm")
                                cancel_btn = gr.Button("Cancel", size="md", elem_id="btn-cancel")
                        card_md = gr.Markdown(elem_id="card-title")
                        with gr.Row(equal_height=True):
                            with gr.Column(scale=3, min_width=300):
                                transcript = gr.Textbox(label="Transcript", interactive=False, lines=3,
                                                        max_lines=6, elem_id="card-text")
                                audio = gr.Audio(type="filepath", interactive=False, visible=False,
                                                 label="Clip (p plays / pauses)", elem_id="card-audio")
                                video = gr.Video(interactive=False, visible=False, height=200,
                                                 label="Clip (p plays from the start)", elem_id="card-video")
                            probs = gr.HTML(elem_id="card-probs", min_height=0, scale=2, min_width=260)
                    with gr.Column(scale=2, min_width=360):
                        with gr.Row():
                            accept_btn = gr.Button("Accept (a)", variant="primary", elem_id="btn-accept")
                            reject_btn = gr.Button("Reject (r)", variant="stop", elem_id="btn-reject")
                        gr.Markdown("Relabel as:", elem_classes="compact")
                        with gr.Row(elem_id="relabel-row"):
                            relabel_btns = [gr.Button(f"{i + 1} {c}" if i < 9 else c, size="sm", min_width=60,
                                                      elem_id=f"btn-relabel-{i + 1}")
                                            for i, c in enumerate(classes)]
                        with gr.Row():
                            prev_btn = gr.Button("← Previous", size="sm", elem_id="btn-prev")
                            next_btn = gr.Button("Skip →", size="sm", elem_id="btn-next")
                            undo_btn = gr.Button("Undo (u)", size="sm", elem_id="btn-undo")
                        gr.Markdown(SHORTCUTS, elem_classes="compact", elem_id="shortcuts")
                        review_msg = gr.Markdown(elem_id="review-message")
                        counts_df = gr.Dataframe(label=COUNTS_LABEL, interactive=False, elem_id="review-counts")
                review_state = gr.State({"offset": 0, "name": None})
                pending_count = gr.State(0)

            # -------------------------------------------------------------- train
            with gr.Tab("Train", id="train", elem_id="tab-train") as tab_train:
                with gr.Row():
                    with gr.Column(scale=2):
                        with gr.Row(equal_height=True):
                            preset = gr.Dropdown(list(actions.presets), value=_default_preset(actions.presets),
                                                 label="Config preset", min_width=160, elem_id="train-preset")
                            auto_accept = gr.Checkbox(False, label="Auto-accept every candidate at its threshold",
                                                      min_width=160, elem_id="train-auto")
                        train_btn = gr.Button("Train next round", variant="primary", size="md",
                                              elem_id="btn-train")
                        with gr.Group(visible=False, elem_id="train-confirm-group") as train_confirm_group:
                            train_confirm_md = gr.Markdown(elem_id="train-confirm-text", padding=True)
                            with gr.Row():
                                train_confirm_btn = gr.Button("Yes, train with them", variant="primary",
                                                              size="md", elem_id="btn-train-confirm")
                                train_cancel_btn = gr.Button("Cancel", size="md", elem_id="btn-train-cancel")
                        progress_html = gr.HTML(progress_bar(actions.training_status()), elem_id="train-progress")
                        train_log = gr.Textbox(label="Log (follows new lines)", lines=5, max_lines=5,
                                               interactive=False, autoscroll=True, elem_id="train-log")
                    with gr.Column(scale=3):
                        with gr.Row():
                            # Lines with points drawn here as SVG (round_chart): one finished
                            # round is still a visible point, the y axis fits the data, the
                            # legend wraps below the plot.
                            waf_chart = gr.HTML(elem_id="waf-plot", min_height=0)
                            f1_chart = gr.HTML(elem_id="f1-plot", min_height=0)
                history_df = gr.Dataframe(label="Rounds (newest first)", interactive=False, wrap=False,
                                          elem_id="history")

            # -------------------------------------------------------------- export
            with gr.Tab("Export", id="export", elem_id="tab-export") as tab_export:
                gr.Markdown("Each export is written under the project's `exports/` folder and offered "
                            "here for download.")
                with gr.Row():
                    export_btns = {
                        "labels": gr.Button("Labels (CSV)", size="md", elem_id="btn-export-labels"),
                        "labels_mertools": gr.Button("Labels (MERTools npz)", size="md",
                                                     elem_id="btn-export-mertools"),
                        "decisions": gr.Button("Decision log (CSV)", size="md", elem_id="btn-export-decisions"),
                        "predictions": gr.Button("Test / pool predictions (CSV)", size="md",
                                                 elem_id="btn-export-predictions"),
                    }
                export_msg = gr.Markdown(elem_id="export-message")
                export_file = gr.File(label="Download", interactive=False, visible=False, elem_id="export-file")

        # ------------------------------------------------------------------ API endpoints
        for name in ENDPOINTS:
            # train_round refuses a second start at once rather than queueing it
            limit = None if name in ("train_round", "training_status") else "default"
            gr.api(getattr(actions, name), api_name=name, concurrency_limit=limit)

        # ------------------------------------------------------------------ wiring
        private = {"api_visibility": "private"}
        W = SimpleNamespace(
            tabs=tabs, sliders=sliders, class_df=class_df, hists=hists, threshold_note=threshold_note,
            filter_cls=filter_cls, filter_conf=filter_conf, filter_kind=filter_kind, card_md=card_md,
            transcript=transcript, audio=audio,
            video=video, probs=probs, review_state=review_state, counts_df=counts_df, review_msg=review_msg,
            review_banner=review_banner, saved_position=saved_position, confirm_group=confirm_group,
            confirm_md=confirm_md,
            pending_count=pending_count, act_btns=[accept_btn, reject_btn, *relabel_btns, prev_btn, next_btn,
                                                   accept_all_btn],
            train_confirm_group=train_confirm_group, train_confirm_md=train_confirm_md,
            progress_html=progress_html, train_log=train_log, auto_accept=auto_accept)

        demo.load(initial_reviewer, saved_reviewer, reviewer, **private)
        reviewer.change(lambda v: v, reviewer, saved_reviewer, **private)

        # Thresholds: a slider saves on release (mouse, typed value + Enter or Tab, arrow keys:
        # app.js turns a key's release into the slider's release) and shows what was stored.
        for i, slider in enumerate(sliders):
            # always_last: keys pressed while a save runs are saved after it, never dropped
            slider.release(partial(on_threshold, actions, W, i), [slider, reviewer],
                           [slider, class_df, hists[i], threshold_note], trigger_mode="always_last", **private)
        all_thresholds = [*sliders, class_df, *hists, threshold_note]
        suggest_btn.click(partial(on_suggest, actions), target, all_thresholds, **private)
        preset_btn.click(partial(on_preset, actions), None, all_thresholds, **private)
        tab_thresholds.select(partial(render_thresholds, actions), None, all_thresholds, **private)

        # Review: a card is the candidate at an offset of the filtered queue. Every event that
        # draws the card skips Gradio's queue (a direct POST: ~65 ms less per key press) and
        # runs one at a time (`serial`), so that a later event always computes on what an
        # earlier one decided and its answer arrives after it: a move still on its way can
        # never redraw a card that a decision has just taken away.
        serial = one_at_a_time(threading.Lock())
        on_card = {"queue": False, **private}
        card = [card_md, transcript, audio, video, probs, review_state, saved_position, counts_df, *W.act_btns]
        moved = [*card, review_msg, confirm_group, filter_conf]
        filters = [filter_cls, filter_conf]
        move = serial(partial(on_move, actions, W))
        # always_last: a second arrow press while the first is on its way moves again, never lost
        for trigger, step in ((tab_review.select, 0), (prev_btn.click, -1), (next_btn.click, 1)):
            trigger(partial(move, step=step), [*filters, review_state, reviewer], moved,
                    trigger_mode="always_last", show_progress="hidden", **on_card)
        # .input, not .change: a value set by the page (a reload restoring the filter) is no new filter
        filter_cls.input(partial(move, step=None), [*filters, review_state, reviewer], moved, **on_card)
        filter_kind.input(serial(partial(on_kind, actions, W)), [filter_kind, *filters, review_state, reviewer],
                          [*moved, filter_kind], **on_card)
        filter_conf.release(partial(move, step=None), [*filters, review_state, reviewer], moved,
                            trigger_mode="always_last", **on_card)
        # A name entered: the card on screen is claimed for it (or another, if someone holds it).
        reviewer.blur(partial(move, step=0), [*filters, review_state, reviewer], moved, **on_card)
        for tab_id, tab in (("thresholds", tab_thresholds), ("review", tab_review), ("train", tab_train),
                            ("export", tab_export)):
            tab.select(partial(lambda t: t, tab_id), None, saved_tab, **private)
        demo.load(serial(partial(on_restore, actions, W)), [saved_tab, saved_position],
                  [tabs, filter_cls, filter_kind, *moved], **on_card)
        decision_inputs = [*filters, review_state, reviewer]
        decided = [*card, review_msg]
        # No loading overlay on every output of a key press: the card changes in a blink. A
        # decision key pressed while the last one is on its way is dropped (Gradio's "once"):
        # the reviewer has not seen the card it would decide.
        quick = {"show_progress": "hidden", **on_card}
        accept_btn.click(serial(partial(on_decide, actions, W, "accept", "")), decision_inputs, decided, **quick)
        reject_btn.click(serial(partial(on_decide, actions, W, "reject", "")), decision_inputs, decided, **quick)
        for c, btn in zip(classes, relabel_btns):
            btn.click(serial(partial(on_decide, actions, W, "relabel", c)), decision_inputs, decided, **quick)
        undo_btn.click(serial(partial(on_undo, actions, W)), decision_inputs, decided, **quick)
        accept_all_btn.click(partial(on_accept_all_ask, actions, W), [*filters, reviewer],
                             [confirm_group, confirm_md, pending_count, review_msg], **private)
        confirm_btn.click(serial(partial(on_accept_all_confirm, actions, W)),
                          [*filters, reviewer, pending_count, review_state],
                          [*card, review_msg, confirm_group], **on_card)
        cancel_btn.click(lambda: gr.update(visible=False), None, confirm_group, **private)

        # Train: start in the background; the timer polls progress and notices new rounds. With
        # auto-accept, first show what it would accept and ask once; the box is unticked after.
        train_asked = [train_confirm_group, train_confirm_md, progress_html, train_log, auto_accept]
        train_btn.click(partial(on_train_ask, actions, W), [preset, auto_accept], train_asked,
                        concurrency_limit=None, **private)
        train_confirm_btn.click(partial(on_train_confirm, actions, W), preset, train_asked,
                                concurrency_limit=None, **private)
        train_cancel_btn.click(lambda: gr.update(visible=False), None, train_confirm_group, **private)
        train_outputs = [progress_html, train_log, history_df, waf_chart, f1_chart, poll_key, round_marker,
                         review_banner]
        timer.tick(partial(on_poll, actions), poll_key, train_outputs, show_progress="hidden", **private)
        tab_train.select(partial(on_poll, actions, None), None, train_outputs, **private)

        # A new round (trained here or elsewhere) refreshes what depends on it.
        round_marker.change(partial(render_thresholds, actions), None, all_thresholds, **private).then(
            partial(move, step=None), [*filters, review_state, reviewer], moved, **on_card).then(
            partial(header_markdown, actions), None, header, **private)

        for what, btn in export_btns.items():
            btn.click(partial(on_export, actions, what), None, [export_msg, export_file], **private)

        demo.load(partial(render_thresholds, actions), None, all_thresholds, **private)
        demo.load(partial(on_poll, actions, None), None, train_outputs, **private)
    return demo


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 7860,
          auth: Logins = None, presets: dict[str, Path] | None = None,
          block: bool = True) -> gr.Blocks:
    """Build and launch the app; of the disk it serves the cards' clips only. `auth`: one
    (user, password) or a list of them; then every action records the login as reviewer."""
    demo = build_app(root, presets)
    launch(demo, host=host, port=port, auth=auth, block=block)
    if block:  # the server has stopped (Ctrl-C, or SIGTERM through `mersemi serve`)
        demo.actions.shutdown()
    return demo


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int = 7860,
           auth: Logins = None, block: bool = True) -> None:
    logins = [auth] if isinstance(auth, tuple) else list(auth or [])
    demo.actions.logins = bool(logins)
    demo.queue(default_concurrency_limit=1)
    demo.launch(server_name=host, server_port=port, auth=logins or None,
                allowed_paths=[str(demo.actions.clips.folder)], blocked_paths=blocked_paths(demo.actions),
                prevent_thread_lock=not block, share=False, show_error=False, quiet=not block,
                footer_links=["api"], run_history=False, enable_monitoring=False, mcp_server=False,
                ssr_mode=False, css_paths=[HERE / "app.css"],
                head=f"<script>{(HERE / 'app.js').read_text()}</script>",
                # Gradio's own "is localhost reachable" probe gives up after one HEAD request
                # slower than 3 s and then refuses to serve ("When localhost is not
                # accessible..."): on a loaded 2-core machine a working server was refused.
                _frontend=False)


def blocked_paths(actions: AppActions) -> list[str]:
    """The project and the media folder, refused by Gradio even where its own rules would let a
    file through (it hands out any returned file under the working or the temp folder): a
    clip must come from the clip shelf. Not where that would block the shelf or Gradio's
    cache (a project in /tmp's parent, say)."""
    from gradio.utils import get_upload_folder

    keep = [actions.clips.folder, Path(get_upload_folder()).resolve()]
    folders = [actions.project.root, actions.project.media_root]
    return [str(f.resolve()) for f in folders
            if f is not None and not any(k.is_relative_to(f.resolve()) for k in keep)]


def one_at_a_time(lock: threading.Lock) -> Callable[[Callable], Callable]:
    """A decorator: the handlers it wraps run one at a time (under `lock`). Gradio's queue did
    this for the card's events; off the queue they would run side by side."""
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def serial(*args, **kwargs):
            with lock:
                return fn(*args, **kwargs)
        return serial
    return wrap


# ---------------------------------------------------------------------- header

def initial_reviewer(saved: str):
    """The reviewer box on load: the login, fixed, when the server has logins; otherwise the
    name this browser used last."""
    login = LOGIN.get()
    if login:
        return gr.update(value=login, interactive=False)
    return saved or gr.skip()  # never clear a name typed before the page finished loading


def header_markdown(actions: AppActions) -> str:
    s = actions.status()
    n = s["samples"]
    rnd = "none yet (train round 0 on the Train tab)" if s["current_round"] is None else s["current_round"]
    path = s["project"].replace("`", "'")
    return (f"**{_md(Path(s['project']).name)}** &nbsp; `{path}`  \n"
            f"{n['labeled']} labeled · {n['unlabeled']} unlabeled pool · {n['test']} test · "
            f"classes: {', '.join(map(_md, s['classes']))} · **current round: {rnd}**")


# ---------------------------------------------------------------------- thresholds tab

def render_thresholds(actions: AppActions) -> list:
    """Sliders from the database, the class table and every histogram."""
    th = actions.project.thresholds()
    counts = actions.candidate_counts()
    table, note = _class_frame(actions, counts), counts.get("error", "")
    hists = [histogram_frame(actions, c, th[c]) for c in actions.project.classes]
    return [*th.values(), table, *hists, note]


def on_threshold(actions: AppActions, W: SimpleNamespace, i: int, value, reviewer: str) -> dict:
    """Store a slider's value (rounded to what the slider shows) and show what was stored; a
    value that cannot be stored is refused in a visible line and the stored one goes back in
    the box."""
    cls = actions.project.classes[i]
    stored = actions.project.thresholds()[cls]
    if value is None or not 0.0 <= value <= 1.0 or value != value:
        got = "nothing" if value is None else f"{value:g}"
        note = f"**Not stored:** the threshold for {_md(cls)} must lie in [0, 1], got {got}; it stays {stored:.3f}."
        return {W.sliders[i]: stored, W.threshold_note: note}
    shown = round(round(value / THRESHOLD_STEP) * THRESHOLD_STEP, 3)
    out = actions.set_thresholds({cls: shown}, reviewer)
    if not out["ok"]:
        return {W.sliders[i]: stored, W.threshold_note: f"**Not stored:** {_md(out['error'])}"}
    # The box already shows the value unless it was rounded; sending it back anyway would undo
    # a key pressed while this save ran (that key's own release stores it next).
    return {W.sliders[i]: gr.skip() if shown == value else shown, W.class_df: _class_frame(actions, out),
            W.hists[i]: histogram_frame(actions, cls, shown),
            W.threshold_note: f"{_md(cls)}: threshold {out['thresholds'][cls]:.3f} stored"}


def on_suggest(actions: AppActions, target: float) -> list:
    out = actions.suggest(target)
    if not out["ok"]:
        gr.Warning(out["error"])
        return [gr.skip()] * (2 * len(actions.project.classes) + 1) + [out["error"]]
    rendered = render_thresholds(actions)
    return rendered[:-1] + [out["message"]]


def on_preset(actions: AppActions) -> list:
    out = actions.paper_preset()
    rendered = render_thresholds(actions)
    return rendered[:-1] + [_thresholds_text(out["thresholds"], "paper preset set: ")]


def histogram_frame(actions: AppActions, cls: str, threshold: float) -> pd.DataFrame | None:
    """The current round's pool confidences predicted `cls` in 40 bins, each bin split into the
    part below the threshold and the part at or above it (stacked in the plot): 80 rows per
    class, never the samples. None before round 0 (an empty frame breaks later updates)."""
    if actions.project.store.current_round() is None:
        return None
    edges, below, above = split_histogram(round_view(actions.project), actions.project.class_id(cls), threshold)
    centers = (edges[:-1] + edges[1:]) / 2
    return pd.DataFrame({"confidence": np.concatenate([centers, centers]),
                         "samples": np.concatenate([below, above]).astype(int),
                         "side": ["below"] * len(centers) + ["at or above"] * len(centers)})


def _class_frame(actions: AppActions, result: dict) -> pd.DataFrame:
    """The per-class table. Decisions are counted under one meaning: the class the model
    predicted (COUNTS_LABEL). Precision estimates carry their support; the out-of-fold one its
    95 % interval, and "thin" when it rests on fewer than THIN_SUPPORT gold samples."""
    columns = ["class", "threshold", "candidates", "expected precision (n=candidates)",
               "OOF precision (hits/n, 95% CI)", "accepted", "rejected", "relabeled away"]
    rows = result.get("classes", [])
    decided = actions.project.store.decision_counts("predicted") if rows else {}
    out = []
    for c, r in enumerate(rows):
        out.append([r["class"], f"{r['threshold']:.3f}", r["candidates"], _precision_text(r), _oof_text(r),
                    decided["accept"].get(c, 0), decided["reject"].get(c, 0), decided["relabel"].get(c, 0)])
    return pd.DataFrame(out, columns=columns)


def _precision_text(row: dict) -> str:
    """Expected precision (mean calibrated confidence of the candidates), rounded down to two
    decimals: never shown higher than it is (0.999 reads 0.99, not a certain-looking 1.00)."""
    p = row["expected_precision"]
    return f"n/a (n={row['support']})" if p is None else f"{math.floor(p * 100) / 100:.2f} (n={row['support']})"


def _oof_text(row: dict) -> str:
    n = row.get("oof_support") or 0
    p = row.get("oof_precision")
    if not n or p is None:
        return "no gold sample above"
    hits = round(p * n)
    lo, hi = wilson_interval(hits, n)
    thin = "thin: " if n < THIN_SUPPORT else ""
    return f"{thin}{hits}/{n} = {p:.2f} ({lo:.2f}–{hi:.2f})"


def _thresholds_text(th: dict, prefix: str = "") -> str:
    return prefix + ", ".join(f"{c} {v:.3f}" for c, v in th.items())


# ---------------------------------------------------------------------- review tab

QUEUE_KINDS = {  # the review queues (engine/selection.py) and what each holds
    "both": "least sure first (below threshold), then the riskiest candidates",
    "label": "below threshold, least sure first: give them a class",
    "verify": "candidates, least confident first: accept or reject",
}

COUNTS_LABEL = ("Per class the model predicted: candidates remaining, and the decisions in force on samples "
                "it predicted as that class (a relabel counts under the class it was relabeled from)")


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
    """Another review queue: its first card; the radio's note says what the queue holds."""
    kind = kind if kind in QUEUE_KINDS else DEFAULT_QUEUE
    return on_move(actions, W, cls, min_conf, state | {"kind": kind}, reviewer, step=None) | {
        W.filter_kind: kind}


def on_restore(actions: AppActions, W: SimpleNamespace, tab: str, position: dict) -> dict:
    """A reload: back to the tab, the filter and the card the reviewer had (by name while it is
    still in the queue, by offset otherwise)."""
    tab = tab if tab in ("thresholds", "review", "train", "export") else "thresholds"
    position = position if isinstance(position, dict) else {}
    cls = position.get("cls") if position.get("cls") in ["all", *actions.project.classes] else "all"
    min_conf = position.get("min_conf")
    min_conf = float(min_conf) if isinstance(min_conf, (int, float)) and 0 <= min_conf <= 1 else 0.0
    offset = position.get("offset") if isinstance(position.get("offset"), int) else 0
    kind = position.get("kind") if position.get("kind") in QUEUE_KINDS else DEFAULT_QUEUE
    name = position.get("name")
    if isinstance(name, str) and name and actions.project.store.current_round() is not None:
        found = actions.project.store.samples_by_name([name]).get(name)
        pos = None if found is None else actions.position_of(found[0], cls, min_conf, kind=kind)
        offset = offset if pos is None else pos
    # The first tab is on screen already: selecting it again could undo a tab the reviewer
    # clicked while this answer was on its way.
    return render_card(actions, W, cls, min_conf, max(0, offset), {"kind": kind, "enabled": None}) | {
        W.tabs: gr.skip() if tab == "thresholds" else gr.update(selected=tab), W.filter_cls: cls,
        W.filter_kind: kind,
        W.filter_conf: min_conf, W.review_msg: "", W.confirm_group: gr.update(visible=False)}


def render_card(actions: AppActions, W: SimpleNamespace, cls: str, min_conf: float, offset: int,
                was: dict | None = None, reviewer: str = "", moving: bool = False) -> dict:
    """The card at `offset` of the queue `was["kind"]` (DEFAULT_QUEUE when not given), held for
    `reviewer` (when named) so that others get other cards. `was` (the state the page shows
    now) spares updates the page does not need: the buttons are sent only when they change
    between enabled and disabled."""
    kind = (was or {}).get("kind") or DEFAULT_QUEUE
    out = actions.next_candidate(cls, min_conf, offset, reviewer, kind)
    # The per-class counts change with decisions and filters, not when the reviewer only moves
    # through the queue: a move skips them (about 10 ms at MER2024 pool scale).
    counts = {} if moving else {W.counts_df: _review_counts(actions)}
    has_card = bool(out["ok"] and out["candidate"] is not None)
    state = {"offset": 0, "name": None, "cls": cls, "min_conf": min_conf, "kind": kind, "enabled": has_card}
    buttons = {} if was is not None and was.get("enabled", True) == has_card else {
        b: gr.update(interactive=has_card) for b in W.act_btns}
    if not has_card:
        return {W.card_md: empty_state(actions, cls, min_conf, out, kind), W.transcript: "",
                W.audio: gr.update(value=None, visible=False), W.video: gr.update(value=None, visible=False),
                W.probs: "", W.review_state: state, W.saved_position: state, **counts, **buttons}
    c = out["candidate"]
    kind = "Label this" if c["kind"] == "label" else "Verify this"
    title = (f"### {_md(c['name'])} — predicted **{_md(c['predicted'])}** at {c['confidence']:.3f}\n"
             f"Card {out['offset'] + 1} of {out['total']} · **{kind}**: {_md(c['reason'])} · round {out['round']}")
    state |= {"offset": out["offset"], "name": c["name"]}
    return {W.card_md: title, W.transcript: c["text"] or "(no transcript)", W.audio: _player(c, "audio"),
            W.video: _player(c, "video"), W.probs: probability_bars(c["probs"], c["predicted"]),
            W.review_state: state, W.saved_position: state, **counts, **buttons}


def empty_state(actions: AppActions, cls: str, min_conf: float, out: dict, kind: str = DEFAULT_QUEUE) -> str:
    """No card: say why and what to do about it."""
    if actions.project.store.current_round() is None:
        return "### No candidate yet\nNo round has finished: train round 0 on the **Train** tab first."
    if not out["ok"]:
        return f"### No candidate\n{_md(out['error'])}"
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


def probability_bars(probs: dict[str, float], predicted: str) -> str:
    """The class probabilities in class order (the order of the relabel keys), each with its
    key and its value to one decimal."""
    rows = []
    for i, (name, p) in enumerate(probs.items()):
        key = str(i + 1) if i < 9 else ""
        top = " top" if name == predicted else ""
        rows.append(f'<div class="pbar{top}"><kbd>{key}</kbd><span class="cls">{html.escape(name)}</span>'
                    f'<span class="track"><span class="fill" style="width:{100 * p:.1f}%"></span></span>'
                    f'<span class="val">{100 * p:.1f}%</span></div>')
    return '<div class="pbars" aria-label="class probabilities">' + "".join(rows) + "</div>"


def _player(card: dict, kind: str):
    """Show the clip in the player of its kind; hide the other player."""
    shown = card["media_kind"] == kind
    return gr.update(value=card["media"] if shown else None, visible=shown)


def on_decide(actions: AppActions, W: SimpleNamespace, action: str, label: str, cls: str, min_conf: float,
              state: dict, reviewer: str) -> dict:
    name = state.get("name")
    if not name:
        return {W.review_msg: "**Not recorded:** no candidate on screen"}
    out = actions.decide(name, action, label, reviewer)
    if not out["ok"]:
        return {W.review_msg: f"**Not recorded:** {_md(out['error'])}"}
    if out["replaced"]:
        gr.Info(out["message"])
    # The decided sample leaves the queue: the same offset now holds the next candidate.
    return render_card(actions, W, cls, min_conf, state.get("offset", 0), state, reviewer) | {
        W.review_msg: f"Saved: {_md(out['message'])}"}


def on_undo(actions: AppActions, W: SimpleNamespace, cls: str, min_conf: float, state: dict,
            reviewer: str) -> dict:
    out = actions.undo(reviewer)
    if not out["ok"]:
        return {W.review_msg: f"**Not undone:** {_md(out['error'])}"}
    offset = state.get("offset", 0)
    if out["sample_ids"]:
        pos = actions.position_of(out["sample_ids"][0], cls, min_conf, reviewer, kind=state.get("kind") or "")
        offset = offset if pos is None else pos  # show the candidate that came back
    return render_card(actions, W, cls, min_conf, offset, state, reviewer) | {W.review_msg: _md(out["message"])}


def on_accept_all_ask(actions: AppActions, W: SimpleNamespace, cls: str, min_conf: float, reviewer: str) -> dict:
    out = actions.accept_all(cls, min_conf, reviewer)
    if "count" not in out:
        return {W.confirm_group: gr.update(visible=False), W.confirm_md: "", W.pending_count: 0,
                W.review_msg: f"**Nothing to accept:** {_md(out['error'])}"}
    what = "all classes" if cls in (None, "", "all") else f"class **{_md(cls)}**"
    text = (f"Accept **{out['count']}** candidates ({what}, confidence ≥ its class threshold and "
            f"≥ {min_conf:.3f}) as pseudo-labels, recorded for **{_md(reviewer.strip())}**? "
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
            why = _md(out["error"])
        return {W.review_msg: f"**Nothing accepted:** {why}", W.confirm_group: gr.update(visible=False)}
    return render_card(actions, W, cls, min_conf, 0, state, reviewer) | {W.review_msg: _md(out["message"]),
                                                         W.confirm_group: gr.update(visible=False)}


def _review_counts(actions: AppActions) -> pd.DataFrame:
    result = actions.candidate_counts()
    rows = result.get("classes", [])
    decided = actions.project.store.decision_counts("predicted") if rows else {}
    out = [[r["class"], r["candidates"], decided["accept"].get(c, 0), decided["reject"].get(c, 0),
            decided["relabel"].get(c, 0)] for c, r in enumerate(rows)]
    return pd.DataFrame(out, columns=["predicted", "remaining", "accepted", "rejected", "relabeled away"])


# ---------------------------------------------------------------------- train tab

def on_train(actions: AppActions, preset: str, auto_accept: bool) -> list:
    out = actions.train_round(preset, bool(auto_accept))
    if not out["ok"]:
        gr.Warning(out["error"])
    snap = actions.training_status()
    return [progress_bar(snap), "\n".join(snap["log"])]


def on_train_ask(actions: AppActions, W: SimpleNamespace, preset: str, auto_accept: bool) -> dict:
    """Train at once, or, with auto-accept, first show per class how many candidates it would
    accept and at what expected precision, and ask."""
    if not auto_accept:
        progress, log = on_train(actions, preset, False)
        return {W.progress_html: progress, W.train_log: log, W.train_confirm_group: gr.update(visible=False)}
    from ..engine.config import ConfigError, load_config

    if preset not in actions.presets:
        return {W.train_confirm_group: gr.update(visible=True),
                W.train_confirm_md: f"**Cannot train:** unknown preset {_md(preset)}"}
    try:
        preview = auto_accept_preview(actions.project, load_config(actions.presets[preset]))
    except (ConfigError, Exception) as e:  # noqa: BLE001 - shown, never raised into Gradio
        return {W.train_confirm_group: gr.update(visible=True),
                W.train_confirm_md: f"**Cannot preview the auto-accept step:** {_md(e)}"}
    return {W.train_confirm_group: gr.update(visible=True), W.train_confirm_md: auto_accept_text(preview)}


def auto_accept_text(preview: dict) -> str:
    if not preview["total"]:
        note = preview["note"] or "no undecided candidate passes the thresholds"
        return f"Auto-accept would accept **nothing** ({_md(note)}). Train the round anyway?"
    rows = ["| class | auto-accepted | expected precision |", "|---|---:|---:|"]
    low = []
    for r in preview["classes"]:
        p = r["expected_precision"]
        shown = "" if p is None else f"{math.floor(p * 100) / 100:.2f}"
        if p is not None and p < LOW_PRECISION:
            low.append(r["class"])
            shown = f"**{shown} (low)**"
        rows.append(f"| {_md(r['class'])} | {r['count']} | {shown} |")
    warn = (f"  \n**Low expected precision** for {', '.join(map(_md, low))}: many of these pseudo-labels will "
            f"be wrong; raise those thresholds on the Thresholds tab first?" if low else "")
    return (f"This round will **accept {preview['total']} candidates** as pseudo-labels without review "
            f"(counted now, at the current thresholds):\n\n" + "\n".join(rows) + "\n" + warn
            + "  \nThe box is unticked after this round.")


def on_train_confirm(actions: AppActions, W: SimpleNamespace, preset: str) -> dict:
    progress, log = on_train(actions, preset, True)
    return {W.progress_html: progress, W.train_log: log, W.train_confirm_group: gr.update(visible=False),
            W.auto_accept: False}


def training_banner(actions: AppActions, snap: dict) -> str:
    """The Review tab's line while a round trains: which one, and where decisions made now go."""
    busy = actions.project.store.unfinished_rounds()
    if not snap.get("running") and not busy:
        return ""
    rid = busy[0].id if busy else "the next round"
    current = actions.project.store.current_round()
    shown = "no round" if current is None else f"round {current.id}"
    pct = f" ({round(100 * snap['fraction'])}%)" if snap.get("running") else ""
    return (f"⏳ **Round {rid} is training{pct}.** The cards here are {shown}'s. Decisions you make now are "
            f"saved, but round {rid} started with the decisions made before it: yours go into the round "
            f"after it.")


def on_poll(actions: AppActions, seen) -> list:
    """Redraw the Train tab (and the Review tab's training line) only when the runner or the
    rounds table changed."""
    snap = actions.training_status()
    history = actions.round_history()["rounds"]
    current = actions.project.store.current_round()
    key = [snap["version"], len(history), history[-1]["status"] if history else None,
           history[-1].get("cv_waf") if history else None]
    if key == seen:
        return [gr.skip()] * 8
    return [progress_bar(snap), "\n".join(snap["log"]), history_frame(history), waf_plot(history),
            f1_plot(history), key, None if current is None else current.id, training_banner(actions, snap)]


def progress_bar(snap: dict) -> str:
    pct = round(100 * snap["fraction"])
    state = "running" if snap["running"] else ("failed" if snap["error"] else "idle")
    text = html.escape(snap["message"]) + (f" · {snap['elapsed_s']:.0f} s" if snap["elapsed_s"] else "")
    return (f'<div class="train-progress {state}"><div class="bar" style="width:{pct}%"></div>'
            f'<span>{pct}% · {text}</span></div>')


def history_frame(rounds: Sequence[dict]) -> pd.DataFrame:
    columns = ["round", "started", "status", "config", "train set (gold / relabel / pseudo)", "CV WAF",
               "test WAF", "accepted pseudo-labels", "duration s", "error"]
    rows = []
    for r in reversed(rounds):  # newest first
        comp = r["composition"] or {}
        pseudo = r["pseudo_labels"] or {}
        make_up = f"{comp.get('gold', '')} / {comp.get('relabel', '')} / {comp.get('pseudo', '')}" if comp else ""
        rows.append([r["id"], (r["started_at"] or "").replace("T", " ")[:19], r["status"], r["config"], make_up,
                     _pct(r["cv_waf"]), _pct(r["test_waf"]),
                     ", ".join(f"{c} {n}" for c, n in pseudo.items() if n) or ("0" if pseudo else ""),
                     r["wall_s"] if r["wall_s"] is not None else "", r["error"] or ""])
    return pd.DataFrame(rows, columns=columns)


PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#dc2626", "#9333ea", "#0891b2", "#ca8a04", "#db2777", "#4b5563")


def waf_plot(rounds: Sequence[dict]) -> str:
    """CV and test WAF of the finished rounds."""
    done = [r for r in rounds if r["status"] == "done"]
    series = {label: [(r["id"], r[key]) for r in done if r[key] is not None]
              for key, label in (("cv_waf", "CV"), ("test_waf", "test"))}
    return round_chart("WAF per round", series)


def f1_plot(rounds: Sequence[dict]) -> str:
    """CV F1 per class of the finished rounds."""
    done = [r for r in rounds if r["status"] == "done" and r["cv_f1"]]
    classes = list(dict.fromkeys(c for r in done for c in r["cv_f1"]))
    return round_chart("CV F1 per class", {c: [(r["id"], r["cv_f1"][c]) for r in done if c in r["cv_f1"]]
                                           for c in classes})


def y_range(values: Sequence[float]) -> tuple[float, float]:
    """The y axis: the data with a margin (at least 0.02 each side), within [0, 1]."""
    lo, hi = min(values), max(values)
    pad = max(0.02, (hi - lo) * 0.15)
    return max(0.0, lo - pad), min(1.0, hi + pad)


def round_chart(title: str, series: dict[str, list[tuple[int, float]]], width: int = 380,
                height: int = 210) -> str:
    """A line-with-points chart of values per round as inline SVG, y axis fitted to the data,
    the values on hover (title), a legend that wraps under the plot."""
    series = {k: v for k, v in series.items() if v}
    head = f'<div class="round-chart"><div class="chart-title">{html.escape(title)}</div>'
    if not series:
        return head + '<div class="chart-empty">no finished round yet</div></div>'
    rounds = sorted({r for pts in series.values() for r, _ in pts})
    lo, hi = y_range([v for pts in series.values() for _, v in pts])
    left, right, top, bottom = 44, 12, 8, 28
    pw, ph = width - left - right, height - top - bottom

    def x(r: int) -> float:
        return left + (pw / 2 if len(rounds) == 1 else pw * rounds.index(r) / (len(rounds) - 1))

    def y(v: float) -> float:
        return top + ph * (1 - (v - lo) / (hi - lo))

    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{html.escape(title)}">']
    for k in range(5):  # horizontal grid with tick labels
        v = lo + (hi - lo) * k / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{y(v) + 4:.1f}" class="tick" text-anchor="end">{v:.3f}</text>')
    step = max(1, len(rounds) // 12)
    for r in rounds[::step]:
        parts.append(f'<text x="{x(r):.1f}" y="{height - 10}" class="tick" text-anchor="middle">{r}</text>')
    parts.append(f'<text x="{left + pw / 2:.1f}" y="{height}" class="tick" text-anchor="middle">round</text>')
    legend = []
    for i, (name, pts) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        xy = " ".join(f"{x(r):.1f},{y(v):.1f}" for r, v in pts)
        parts.append(f'<polyline points="{xy}" fill="none" stroke="{color}" stroke-width="2"/>')
        for r, v in pts:
            parts.append(f'<circle cx="{x(r):.1f}" cy="{y(v):.1f}" r="3.5" fill="{color}">'
                         f'<title>{html.escape(name)} · round {r}: {v:.4f}</title></circle>')
        legend.append(f'<span><i style="background:{color}"></i>{html.escape(name)} {pts[-1][1]:.3f}</span>')
    parts.append("</svg>")
    return head + "".join(parts) + f'<div class="chart-legend">{"".join(legend)}</div></div>'


def _pct(x) -> str:
    return "" if x is None else f"{100 * x:.2f}%"


def _default_preset(presets: dict[str, Path]) -> str | None:
    return "default" if "default" in presets else next(iter(presets), None)


# ---------------------------------------------------------------------- export tab

def on_export(actions: AppActions, what: str) -> list:
    out = actions.export(what)
    if not out["ok"]:
        gr.Warning(out["error"])
        return [f"**Not exported:** {_md(out['error'])}", gr.skip()]
    # Gradio serves outputs from its own cache; it copies files from the temp folder, so the
    # project's exports/ folder need not be opened to the browser.
    download = Path(tempfile.mkdtemp(prefix="mersemi-export-")) / Path(out["file"]).name
    shutil.copyfile(out["file"], download)
    return [f"Wrote {out['rows']} rows to `{out['file']}`", gr.update(value=str(download), visible=True)]


def _md(text) -> str:
    """Escape Markdown in data (sample names, transcripts, messages)."""
    return re.sub(r"([\\`*_{}\[\]<>()#+!|~])", r"\\\1", str(text))


__all__ = ["build_app", "serve", "launch"]
