"""The review app: Gradio Blocks over `AppActions` (service/actions.py), one module per tab
(tab_thresholds, tab_review, tab_train, tab_decisions, tab_export).

Layout first, event wiring after. Every action is also a named API endpoint (`gr.api`), and the
page's handlers call the same `AppActions` methods, never the store. A timer follows the store
once a second, so that what another tab, the command line or another server changed (a
threshold, a decision, a round training) shows here within two seconds.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from ..service.actions import LOGIN, AppActions  # noqa: E402
from ..service.project import Project  # noqa: E402

from . import tab_decisions, tab_export, tab_review, tab_thresholds, tab_train  # noqa: E402
from .charts import md  # noqa: E402

HERE = Path(__file__).resolve().parent
ENDPOINTS = ("status", "changes", "candidate_counts", "histograms", "set_thresholds", "release_thresholds",
             "threshold_history", "suggest", "paper_preset", "next_candidate", "decide", "undo", "accept_all",
             "sample_card", "decisions", "review_check", "auto_accept_preview", "train_round", "training_status",
             "round_history", "export", "agreement", "set_overlap", "gold_changes")
TABS = ("thresholds", "review", "train", "decisions", "export")
POLL_S = 1.0
Logins = tuple[str, str] | Sequence[tuple[str, str]] | None


class ApiBlocks(gr.Blocks):
    """Blocks whose named API endpoints get the declared default of every argument a client
    left out (None where the parameter has none), so that the action refuses a missing
    argument in its own words: Gradio's own check raises, and the client gets {"error": null}."""

    actions: AppActions  # set by build_app: the object every event and endpoint calls

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


def build_app(project_root: str | Path, presets: dict[str, Path] | None = None) -> ApiBlocks:
    """The app for one project. `presets` maps training preset names to YAML files (default:
    configs/*.yaml)."""
    actions = AppActions(Project.open(project_root), presets)
    import threading

    threading.Thread(target=actions.training.warm, name="mersemi-warm", daemon=True).start()
    with ApiBlocks(title="mersemi review", fill_width=True) as demo:
        demo.actions = actions  # for serve() and the tests: the same object the events use
        with gr.Row(elem_id="header", equal_height=True):
            header = gr.Markdown(header_markdown(actions), elem_id="header-info")
            reviewer = gr.Textbox(label="Reviewer", placeholder="your name (required to decide or set a threshold)",
                                  max_length=128, scale=0, min_width=280, elem_id="reviewer")
        saved_reviewer = gr.BrowserState("", storage_key="mersemi-reviewer")
        saved_tab = gr.BrowserState(TABS[0], storage_key="mersemi-tab")
        saved_position = gr.BrowserState({}, storage_key="mersemi-position")
        status = actions.status()
        round_marker = gr.State(status.get("current_round"))   # a new round refreshes every tab
        poll_key = gr.State(None)                               # the store's marks the page shows
        # Outside the tabs: a tab not on screen is not rendered, and a timer in it would not tick.
        timer = gr.Timer(POLL_S)
        snap, history = actions.training.training_status(), actions.training.round_history().get("rounds", [])
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("Thresholds", id="thresholds", elem_id="tab-thresholds") as t_thresholds:
                thresholds = tab_thresholds.layout(actions)
            with gr.Tab("Review", id="review", elem_id="tab-review") as t_review:
                review = tab_review.layout(actions, tab_train.training_banner(snap, history))
            with gr.Tab("Train", id="train", elem_id="tab-train") as t_train:
                train = tab_train.layout(actions)
            with gr.Tab("Decisions", id="decisions", elem_id="tab-decisions") as t_decisions:
                decisions = tab_decisions.layout(actions)
            with gr.Tab("Export", id="export", elem_id="tab-export"):
                export = tab_export.layout(actions)

        for name in ENDPOINTS:
            # train_round refuses a second start at once rather than queueing it
            limit = None if name in ("train_round", "training_status", "changes") else "default"
            gr.api(actions.endpoint(name), api_name=name, concurrency_limit=limit)

        # One namespace of every component: handlers return dicts keyed by component.
        W = SimpleNamespace(**vars(thresholds), **vars(review), **vars(train), **vars(decisions), **vars(export),
                            tabs=tabs, header=header, saved_position=saved_position, round_marker=round_marker,
                            poll_key=poll_key)
        private: dict[str, Any] = {"api_visibility": "private"}
        demo.load(initial_reviewer, saved_reviewer, reviewer, **private)
        reviewer.change(lambda v: v, reviewer, saved_reviewer, **private)
        tab_thresholds.wire(actions, W, t_thresholds, reviewer, private)
        tab_review.wire(actions, W, t_review, reviewer, private)
        tab_train.wire(actions, W, t_train, private)
        tab_decisions.wire(actions, W, t_decisions, reviewer, private)
        tab_export.wire(actions, W, private)
        for tab_id, tab in zip(TABS, (t_thresholds, t_review, t_train, t_decisions)):
            tab.select(partial(lambda t: t, tab_id), None, saved_tab, **private)
        on_card: dict[str, Any] = {"queue": False, **private}
        moved = [*tab_review.card_outputs(W), W.review_msg, W.confirm_group, W.filter_conf]
        demo.load(W.serial(partial(tab_review.on_restore, actions, W, tabs=TABS)), [saved_tab, saved_position],
                  [tabs, W.filter_cls, W.filter_kind, *moved], **on_card)

        followed = [*tab_thresholds.outputs(W), *tab_train.outputs(W), W.counts_df, W.round_marker, W.poll_key]
        timer.tick(partial(on_tick, actions, W), poll_key, followed, show_progress="hidden", **private)
        # A new round (trained here or elsewhere) refreshes the card and the header.
        round_marker.change(partial(W.move, step=None), [W.filter_cls, W.filter_conf, W.review_state, reviewer],
                            moved, **on_card).then(partial(header_markdown, actions), None, header, **private)
        demo.load(partial(on_load, actions, W), None, [*tab_thresholds.outputs(W), poll_key], **private)
        demo.load(partial(tab_train.render, actions, W), None, tab_train.outputs(W), **private)
    return demo


def on_load(actions: AppActions, W: SimpleNamespace) -> dict:
    """The Thresholds tab as the store holds it, and the store's marks read just before: what
    the timer compares with from now on."""
    marks = actions.changes()
    drawn = tab_thresholds.render(actions, W)
    values = {c: drawn[s] for s, c in zip(W.sliders, actions.project.classes)}
    return drawn | {W.poll_key: {k: marks.get(k) for k in ("training", "decisions", "thresholds", "rounds")}
                    | {"values": values}}


def on_tick(actions: AppActions, W: SimpleNamespace, seen: dict | None) -> dict:
    """Redraw what changed in the store since the page last looked: a slider only when its
    stored value changed (never one the reviewer is moving), the thresholds tab when thresholds
    changed, the per-class counts when decisions did, the Train tab when a round or the training
    here moved on, and everything that depends on the round when a new one finished."""
    marks = actions.changes()
    if not marks["ok"]:
        return {W.poll_key: gr.skip()}   # an empty dict would read as no value at all
    key = {k: marks[k] for k in ("training", "decisions", "thresholds", "rounds")}
    if seen is None or key == {k: seen.get(k) for k in key}:   # None: the page is still drawing itself
        return {W.poll_key: gr.skip()}
    out: dict = {}
    values = seen.get("values", {})
    if key["thresholds"] != seen.get("thresholds") or key["rounds"] != seen.get("rounds"):
        drawn = tab_thresholds.render(actions, W)
        drawn.pop(W.threshold_note)   # a message the reviewer is reading stays
        values = {c: drawn[s] for s, c in zip(W.sliders, actions.project.classes)}
        for s, c in zip(W.sliders, actions.project.classes):
            if seen.get("values", {}).get(c) == values[c]:
                drawn.pop(s)
        out |= drawn | {W.counts_df: tab_review.counts_frame(actions)}
    elif key["decisions"] != seen.get("decisions"):
        counts = actions.candidate_counts()
        owners = actions.threshold_history(1).get("owners", {})
        out |= {W.class_df: tab_thresholds.class_frame(counts, owners), W.counts_df: tab_review.counts_frame(actions)}
    if key["rounds"] != seen.get("rounds") or key["training"] != seen.get("training"):
        out |= tab_train.render(actions, W) | {W.round_marker: actions.status().get("current_round")}
    return out | {W.poll_key: key | {"values": values}}


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 7860,
          auth: Logins = None, presets: dict[str, Path] | None = None,
          block: bool = True) -> ApiBlocks:
    """Build and launch the app; of the disk it serves the cards' clips only. `auth`: one
    (user, password) or a list of them; then every action records the login as reviewer."""
    demo = build_app(root, presets)
    launch(demo, host=host, port=port, auth=auth, block=block)
    if block:  # the server has stopped (Ctrl-C, or SIGTERM through `mersemi serve`)
        demo.actions.shutdown()
    return demo


def launch(demo: ApiBlocks, host: str = "127.0.0.1", port: int = 7860,
           auth: Logins = None, block: bool = True) -> None:
    logins = [auth] if isinstance(auth, tuple) else list(auth or [])
    demo.actions.logins = bool(logins)
    demo.queue(default_concurrency_limit=1)
    demo.launch(server_name=host, server_port=port, auth=logins or None, app_kwargs={"middleware": NO_UPLOADS},
                max_file_size=0,  # and should a route slip past the middleware, no upload is stored
                allowed_paths=[str(demo.actions.clips.folder)], blocked_paths=blocked_paths(demo.actions),
                prevent_thread_lock=not block, share=False, show_error=False, quiet=not block,
                footer_links=["api"], run_history=False, enable_monitoring=False, mcp_server=False,
                ssr_mode=False, css_paths=[HERE / "app.css"],
                head=f"<script>{(HERE / 'app.js').read_text()}</script>",
                # Gradio's own "is localhost reachable" probe gives up after one HEAD request
                # slower than 3 s and then refuses to serve ("When localhost is not
                # accessible..."): on a loaded 2-core machine a working server was refused.
                _frontend=False)


class RefuseUploads:
    """ASGI middleware: the app has no upload field, so Gradio's upload route, open to any
    visitor (to every login with --auth), is answered 403 before its body is read."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/").endswith("/upload"):
            body = b"this app takes no uploads"
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


NO_UPLOADS = [Middleware(RefuseUploads)]


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
    return (f"**{md(Path(s['project']).name)}** &nbsp; `{path}`  \n"
            f"{n['labeled']} labeled · {n['unlabeled']} unlabeled pool · {n['test']} test · "
            f"classes: {', '.join(map(md, s['classes']))} · **current round: {rnd}**")


__all__ = ["build_app", "serve", "launch"]
