"""The review app: Gradio Blocks over `AppActions` (ui/app_api.py).

Layout first, event wiring after. Every action is also a named API endpoint (`gr.api`), and
the buttons call the same `AppActions` methods; the page's own events are private. Queries
return one page or one count at a time: nothing sends the pool to the browser.
"""
from __future__ import annotations

import html
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .app_api import LOGIN, AppActions  # noqa: E402
from .project import Project  # noqa: E402
from .review import HIST_BINS, round_view, split_histogram  # noqa: E402

HERE = Path(__file__).resolve().parent
ENDPOINTS = ("status", "candidate_counts", "set_thresholds", "suggest", "paper_preset", "next_candidate",
             "decide", "undo", "accept_all", "train_round", "training_status", "round_history", "export")
SHORTCUTS = ("**Keys:** `a` accept · `r` reject · `1`-`9` relabel as class n · `u` undo · "
             "`←` `→` previous / next (ignored while typing in a field)")
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

        with gr.Tabs(elem_id="tabs"):
            # -------------------------------------------------------------- thresholds
            with gr.Tab("Thresholds", id="thresholds", elem_id="tab-thresholds") as tab_thresholds:
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        gr.Markdown("Candidates of a class are the undecided pool samples predicted as that "
                                    "class with confidence at or above its threshold (blue in the histograms). "
                                    "Suggest: each class's lowest threshold reaching the target precision. "
                                    "Paper preset: 0.99 for neutral, angry, happy and sad, 0.85 for worried "
                                    "and surprise, 0.95 for other classes.")
                        sliders = [gr.Slider(0, 1, value=thresholds[c], step=0.005, label=c,
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
                with gr.Row():
                    with gr.Column(scale=3):
                        with gr.Row():
                            filter_cls = gr.Dropdown(["all", *classes], value="all", label="Class",
                                                     min_width=140, elem_id="filter-class")
                            filter_conf = gr.Slider(0, 1, value=0, step=0.01, label="Minimum confidence",
                                                    min_width=200, elem_id="filter-conf")
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
                            transcript = gr.Textbox(label="Transcript", interactive=False, lines=4, max_lines=8,
                                                    scale=3, elem_id="card-text")
                            probs = gr.Label(num_top_classes=len(classes), label="Class probabilities",
                                             show_heading=False, scale=2, elem_id="card-probs")
                        audio = gr.Audio(type="filepath", interactive=False, visible=False, label="Clip",
                                         elem_id="card-audio")
                        video = gr.Video(interactive=False, visible=False, label="Clip", height=240,
                                         elem_id="card-video")
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
                        counts_df = gr.Dataframe(label="Per class: remaining candidates and decisions",
                                                 interactive=False, elem_id="review-counts")
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
                        progress_html = gr.HTML(progress_bar(actions.training_status()), elem_id="train-progress")
                        train_log = gr.Textbox(label="Log", lines=5, max_lines=5, interactive=False,
                                               autoscroll=True, elem_id="train-log")
                    with gr.Column(scale=3):
                        with gr.Row():
                            # Points, not lines: one finished round is one point, and a line needs two.
                            waf_chart = gr.ScatterPlot(x="round", y="WAF", color="series", title="WAF per round",
                                                       y_lim=[0, 1], height=250, min_width=260, elem_id="waf-plot")
                            f1_chart = gr.ScatterPlot(x="round", y="F1", color="class", title="CV F1 per class",
                                                      y_lim=[0, 1], height=250, min_width=260, elem_id="f1-plot")
                history_df = gr.Dataframe(label="Rounds (newest first)", interactive=False, wrap=True,
                                          elem_id="history")
                timer = gr.Timer(POLL_S)

            # -------------------------------------------------------------- export
            with gr.Tab("Export", id="export", elem_id="tab-export"):
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

        demo.load(initial_reviewer, saved_reviewer, reviewer, **private)
        reviewer.change(lambda v: v, reviewer, saved_reviewer, **private)

        # Thresholds: a slider saves on release and redraws its own histogram.
        for i, slider in enumerate(sliders):
            slider.release(partial(on_threshold, actions, classes[i]), [slider, reviewer],
                           [class_df, hists[i], threshold_note], **private)
        all_thresholds = [*sliders, class_df, *hists, threshold_note]
        suggest_btn.click(partial(on_suggest, actions), target, all_thresholds, **private)
        preset_btn.click(partial(on_preset, actions), None, all_thresholds, **private)
        tab_thresholds.select(partial(render_thresholds, actions), None, all_thresholds, **private)

        # Review: a card is the candidate at an offset of the filtered queue.
        card = [card_md, transcript, audio, video, probs, review_state, counts_df]
        filters = [filter_cls, filter_conf]
        move = partial(on_move, actions)
        for trigger, step in ((tab_review.select, 0), (prev_btn.click, -1), (next_btn.click, 1)):
            trigger(partial(move, step=step), [*filters, review_state, reviewer], card, **private)
        filter_cls.change(partial(move, step=None), [*filters, review_state, reviewer], card, **private)
        filter_conf.release(partial(move, step=None), [*filters, review_state, reviewer], card, **private)
        # A name entered: the card on screen is claimed for it (or another, if someone holds it).
        reviewer.blur(partial(move, step=0), [*filters, review_state, reviewer], card, **private)
        decision_inputs = [*filters, review_state, reviewer]
        decided = [*card, review_msg]
        accept_btn.click(partial(on_decide, actions, "accept", ""), decision_inputs, decided, **private)
        reject_btn.click(partial(on_decide, actions, "reject", ""), decision_inputs, decided, **private)
        for c, btn in zip(classes, relabel_btns):
            btn.click(partial(on_decide, actions, "relabel", c), decision_inputs, decided, **private)
        undo_btn.click(partial(on_undo, actions), decision_inputs, decided, **private)
        accept_all_btn.click(partial(on_accept_all_ask, actions), [*filters, reviewer],
                             [confirm_group, confirm_md, pending_count], **private)
        confirm_btn.click(partial(on_accept_all_confirm, actions), [*filters, reviewer, pending_count],
                          [*card, review_msg, confirm_group], **private)
        cancel_btn.click(lambda: gr.update(visible=False), None, confirm_group, **private)

        # Train: start in the background; the timer polls progress and notices new rounds.
        train_btn.click(partial(on_train, actions), [preset, auto_accept], [progress_html, train_log],
                        concurrency_limit=None, **private)
        train_outputs = [progress_html, train_log, history_df, waf_chart, f1_chart, poll_key, round_marker]
        timer.tick(partial(on_poll, actions), poll_key, train_outputs, show_progress="hidden", **private)
        tab_train.select(partial(on_poll, actions, None), None, train_outputs, **private)

        # A new round (trained here or elsewhere) refreshes what depends on it.
        round_marker.change(partial(render_thresholds, actions), None, all_thresholds, **private).then(
            partial(move, step=None), [*filters, review_state, reviewer], card, **private).then(
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
    table, note = _class_frame(counts), counts.get("error", "")
    hists = [histogram_frame(actions, c, th[c]) for c in actions.project.classes]
    return [*th.values(), table, *hists, note]


def on_threshold(actions: AppActions, cls: str, value: float, reviewer: str) -> list:
    out = actions.set_thresholds({cls: value}, reviewer)
    if not out["ok"]:
        gr.Warning(out["error"])
        return [gr.skip(), gr.skip(), out["error"]]
    return [_class_frame(out), histogram_frame(actions, cls, value), ""]


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


def _class_frame(result: dict) -> pd.DataFrame:
    columns = ["class", "threshold", "candidates", "expected precision (OOF n)", "accepted", "rejected",
               "relabeled"]
    rows = [[r["class"], f"{r['threshold']:.3f}", r["candidates"], _precision_text(r), r["accepted"],
             r["rejected"], r["relabeled"]] for r in result.get("classes", [])]
    return pd.DataFrame(rows, columns=columns)


def _precision_text(row: dict) -> str:
    p = row["expected_precision"]
    return f"n/a (n={row['support']})" if p is None else f"{p:.3f} (n={row['support']})"


def _thresholds_text(th: dict, prefix: str = "") -> str:
    return prefix + ", ".join(f"{c} {v:.3f}" for c, v in th.items())


# ---------------------------------------------------------------------- review tab

def on_move(actions: AppActions, cls: str, min_conf: float, state: dict, reviewer: str = "",
            step: int | None = None) -> list:
    """step -1 / 0 / +1 moves from the current offset; None starts the (new) filter over."""
    offset = 0 if step is None else max(0, state.get("offset", 0) + step)
    return render_card(actions, cls, min_conf, offset, reviewer)


def render_card(actions: AppActions, cls: str, min_conf: float, offset: int, reviewer: str = "") -> list:
    """The card at `offset`, held for `reviewer` (when named) so that others get other cards."""
    out = actions.next_candidate(cls, min_conf, offset, reviewer)
    counts = _review_counts(actions)
    if not out["ok"] or out["candidate"] is None:
        message = out.get("error") or out.get("message")
        return [f"### No candidate\n{_md(message)}", "", gr.update(value=None, visible=False),
                gr.update(value=None, visible=False), None, {"offset": 0, "name": None}, counts]
    c = out["candidate"]
    title = (f"### {_md(c['name'])} — predicted **{_md(c['predicted'])}** at {c['confidence']:.3f}\n"
             f"Candidate {out['offset'] + 1} of {out['total']} in this filter · round {out['round']}")
    return [title, c["text"] or "(no transcript)", _player(c, "audio"), _player(c, "video"), c["probs"],
            {"offset": out["offset"], "name": c["name"]}, counts]


def _player(card: dict, kind: str):
    """Show the clip in the player of its kind; hide the other player."""
    shown = card["media_kind"] == kind
    return gr.update(value=card["media"] if shown else None, visible=shown)


def on_decide(actions: AppActions, action: str, label: str, cls: str, min_conf: float, state: dict,
              reviewer: str) -> list:
    name = state.get("name")
    if not name:
        gr.Warning("no candidate on screen")
        return [gr.skip()] * 7 + ["no candidate on screen"]
    out = actions.decide(name, action, label, reviewer)
    if not out["ok"]:
        gr.Warning(out["error"])
        return [gr.skip()] * 7 + [f"**Not recorded:** {_md(out['error'])}"]
    if out["replaced"]:
        gr.Info(out["message"])
    # The decided sample leaves the queue: the same offset now holds the next candidate.
    return render_card(actions, cls, min_conf, state.get("offset", 0), reviewer) + [f"Saved: {_md(out['message'])}"]


def on_undo(actions: AppActions, cls: str, min_conf: float, state: dict, reviewer: str) -> list:
    out = actions.undo(reviewer)
    if not out["ok"]:
        gr.Warning(out["error"])
        return [gr.skip()] * 7 + [f"**Not undone:** {_md(out['error'])}"]
    offset = state.get("offset", 0)
    if out["sample_ids"]:
        pos = actions.position_of(out["sample_ids"][0], cls, min_conf, reviewer)
        offset = offset if pos is None else pos  # show the candidate that came back
    return render_card(actions, cls, min_conf, offset, reviewer) + [_md(out["message"])]


def on_accept_all_ask(actions: AppActions, cls: str, min_conf: float, reviewer: str) -> list:
    out = actions.accept_all(cls, min_conf, reviewer)
    if "count" not in out:
        gr.Warning(out["error"])
        return [gr.update(visible=False), "", 0]
    what = "all classes" if cls in (None, "", "all") else f"class **{_md(cls)}**"
    text = (f"Accept **{out['count']}** candidates ({what}, confidence ≥ the threshold and ≥ {min_conf:.2f}) "
            f"as pseudo-labels, recorded for **{_md(reviewer.strip())}**? One undo takes them all back.")
    return [gr.update(visible=True), text, out["count"]]


def on_accept_all_confirm(actions: AppActions, cls: str, min_conf: float, reviewer: str, count: int) -> list:
    out = actions.accept_all(cls, min_conf, reviewer, expected=count)
    if not out["ok"]:
        gr.Warning(out["error"] + (" (the queue changed since you asked; ask again)" if "count" in out else ""))
        return [gr.skip()] * 7 + [f"**Nothing accepted:** {_md(out['error'])}", gr.update(visible=False)]
    return render_card(actions, cls, min_conf, 0, reviewer) + [_md(out["message"]), gr.update(visible=False)]


def _review_counts(actions: AppActions) -> pd.DataFrame:
    result = actions.candidate_counts()
    rows = [[r["class"], r["candidates"], r["accepted"], r["rejected"], r["relabeled"]]
            for r in result.get("classes", [])]
    return pd.DataFrame(rows, columns=["class", "remaining", "accepted", "rejected", "relabeled"])


# ---------------------------------------------------------------------- train tab

def on_train(actions: AppActions, preset: str, auto_accept: bool) -> list:
    out = actions.train_round(preset, bool(auto_accept))
    if not out["ok"]:
        gr.Warning(out["error"])
    snap = actions.training_status()
    return [progress_bar(snap), "\n".join(snap["log"])]


def on_poll(actions: AppActions, seen) -> list:
    """Redraw the Train tab only when the runner or the rounds table changed."""
    snap = actions.training_status()
    history = actions.round_history()["rounds"]
    current = actions.project.store.current_round()
    key = [snap["version"], len(history), history[-1]["status"] if history else None]
    if key == seen:
        return [gr.skip()] * 7
    return [progress_bar(snap), "\n".join(snap["log"]), history_frame(history), waf_plot(history),
            f1_plot(history), key, None if current is None else current.id]


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


def waf_plot(rounds: Sequence[dict]):
    """CV and test WAF of the finished rounds."""
    rows = [{"round": str(r["id"]), "WAF": r[key], "series": label} for r in rounds if r["status"] == "done"
            for key, label in (("cv_waf", "CV"), ("test_waf", "test")) if r[key] is not None]
    return _round_plot(rows, rounds)


def f1_plot(rounds: Sequence[dict]):
    """CV F1 per class of the finished rounds."""
    rows = [{"round": str(r["id"]), "F1": f1, "class": c} for r in rounds if r["status"] == "done" and r["cv_f1"]
            for c, f1 in r["cv_f1"].items()]
    return _round_plot(rows, rounds)


def _round_plot(rows: list[dict], rounds: Sequence[dict]):
    # Rounds as categories in round order (numbers would get ticks at 0.5); None rather than
    # an empty frame, which leaves the plot blank for every later update.
    if not rows:
        return None
    return gr.update(value=pd.DataFrame(rows), sort=[str(r["id"]) for r in rounds])


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
