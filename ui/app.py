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
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from ..service.actions import LOGIN, AppActions  # noqa: E402
from ..service.browser_state import browser_secret  # noqa: E402
from ..service.project import Project  # noqa: E402

from . import agreement_panel, tab_decisions, tab_export, tab_review, tab_thresholds, tab_train  # noqa: E402
from .charts import md  # noqa: E402
from .follow import MARKS, Follower, moved, on_screen  # noqa: E402

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


def build_app(project_root: str | Path, presets: dict[str, Path] | None = None, nproc: int = 1) -> ApiBlocks:
    """The app for one project. `presets` maps training preset names to YAML files (default:
    configs/*.yaml)."""
    actions = AppActions(Project.open(project_root), presets, nproc=nproc)
    import threading

    threading.Thread(target=actions.training.warm, name="mersemi-warm", daemon=True).start()
    with ApiBlocks(title="mersemi review", fill_width=True) as demo:
        demo.actions = actions  # for serve() and the tests: the same object the events use
        with gr.Row(elem_id="header", equal_height=True):
            header = gr.Markdown(elem_id="header-info")   # drawn on load: a page opened later is not the start's
            reviewer = gr.Textbox(label="Reviewer", placeholder="your name (required to decide or set a threshold)",
                                  max_length=128, scale=0, min_width=280, elem_id="reviewer")
        # What the browser keeps of the reviewer's place, sealed with the project's own secret: it
        # still reads after a restart (a secret made at each launch would not).
        secret = browser_secret(actions.project)
        saved_reviewer = gr.BrowserState("", storage_key="mersemi-reviewer", secret=secret)
        saved_tab = gr.BrowserState(TABS[0], storage_key="mersemi-tab", secret=secret)
        saved_position = gr.BrowserState({}, storage_key="mersemi-position", secret=secret)
        seen = gr.State(None)   # the store's marks the page last drew (service's `changes`)
        # Outside the tabs: a tab not on screen is not rendered, and a timer in it would not tick.
        timer = gr.Timer(POLL_S)
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("Thresholds", id="thresholds", elem_id="tab-thresholds") as t_thresholds:
                thresholds = tab_thresholds.build(actions)
            with gr.Tab("Review", id="review", elem_id="tab-review") as t_review:
                review = tab_review.build(actions, saved_position)
            with gr.Tab("Train", id="train", elem_id="tab-train") as t_train:
                train = tab_train.build(actions)
            with gr.Tab("Decisions", id="decisions", elem_id="tab-decisions") as t_decisions:
                decisions = tab_decisions.build(actions)
                agreement = agreement_panel.build(actions)
            with gr.Tab("Export", id="export", elem_id="tab-export"):
                export = tab_export.build(actions)

        for name in ENDPOINTS:
            # train_round refuses a second start at once rather than queueing it
            limit = None if name in ("train_round", "training_status", "changes") else "default"
            gr.api(actions.endpoint(name), api_name=name, concurrency_limit=limit)

        private: dict[str, Any] = {"api_visibility": "private"}
        demo.load(initial_reviewer, saved_reviewer, reviewer, **private)
        reviewer.change(lambda v: v, reviewer, saved_reviewer, **private)
        tab_thresholds.wire(actions, thresholds, tab=t_thresholds, reviewer=reviewer, private=private)
        tab_review.wire(actions, review, page=demo, tab=t_review, tabs=tabs, tab_ids=TABS, saved_tab=saved_tab,
                        reviewer=reviewer, private=private)
        tab_train.wire(actions, train, tab=t_train, private=private)
        tab_decisions.wire(actions, decisions, tab=t_decisions, reviewer=reviewer, private=private)
        agreement_panel.wire(actions, agreement, tab=t_decisions, private=private)
        tab_export.wire(actions, export, private)
        for tab_id, tab in zip(TABS, (t_thresholds, t_review, t_train, t_decisions)):
            tab.select(partial(lambda t: t, tab_id), None, saved_tab, **private)
        # The page follows the store: on load, then once a second, one event reads the store's marks
        # and draws every part of every tab that follows a part of the store that changed. It runs
        # with the sliders' saves (it puts values in their boxes: tab_thresholds.wire).
        # A tab off screen is drawn when selected: only the Review tab's card and counts follow
        # there (a decision costs the Decisions tab's redraw ~55 ms of CPU at MER2024 scale).
        followers = [Follower(("round",), lambda: {header: header_markdown(actions)}, [header]),
                     *on_screen("thresholds", tab_thresholds.followers(actions, thresholds)),
                     *tab_review.followers(actions, review), *on_screen("train", tab_train.followers(actions, train)),
                     *on_screen("decisions", [*tab_decisions.followers(actions, decisions),
                                              *agreement_panel.followers(actions, agreement)])]
        inputs = [seen, saved_tab, *(i for f in followers for i in f.inputs)]
        outputs = [seen, *dict.fromkeys(o for f in followers for o in f.outputs)]
        follow = {"fn": partial(poll, actions, seen, followers), "inputs": inputs, "outputs": outputs,
                  "concurrency_id": tab_thresholds.THRESHOLDS_GROUP, "show_progress": "hidden", **private}
        demo.load(**follow)
        timer.tick(**follow)
    return demo


def poll(actions: AppActions, seen_state: gr.State, followers: list[Follower], seen: dict | None, tab: str,
         *values) -> dict:
    """The store's marks now; every follower of a part whose marks moved since its view of the
    page last drew draws. `seen`: per view (a tab's id, "" for what is always on screen) the
    marks it last drew from; a tab off screen (`tab` is the one on) keeps its marks, and draws
    what it missed once it is on screen (on the page's load, `seen` is None: every view on
    screen draws all). `values`: the followers' inputs, in order."""
    now = actions.changes()
    if not now["ok"]:
        return {seen_state: gr.skip()}   # an empty dict would read as no value at all
    key = {m: now[m] for m in MARKS}
    seen = seen or {}
    drawn: dict = dict(seen)
    out: dict = {}
    at = 0
    for f in followers:
        args, at = values[at:at + len(f.inputs)], at + len(f.inputs)
        view = f.tab or ""
        last = seen.get(view)
        if f.tab not in (None, tab):
            continue
        if moved(last, key) & set(f.on):
            out |= f.draw(*args)
        drawn[view] = key
    if drawn == seen:
        return {seen_state: gr.skip()}
    return out | {seen_state: drawn}


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 7860,
          auth: Logins = None, presets: dict[str, Path] | None = None,
          block: bool = True, nproc: int = 1) -> ApiBlocks:
    """Build and launch the app; of the disk it serves the cards' clips only. `auth`: one
    (user, password) or a list of them; then every action records the login as reviewer.
    `nproc`: the processes each round started from the app trains across."""
    demo = build_app(root, presets, nproc)
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
