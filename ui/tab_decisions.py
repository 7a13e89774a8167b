"""The Decisions tab: the decision log searched by sample, reviewer, class and action; a row opens
its sample's card, where the decision can be changed; per reviewer what they decided; and the
review's check of the model: per class, the share of verify cards people accepted against the
precision the model claimed for them. Every value comes from an `AppActions` endpoint."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import gradio as gr
import pandas as pd

from ..engine.vocab import LOG_ACTIONS, Action, CardKind
from ..service.actions import AppActions

from .charts import md, probability_bars, widths
from .follow import Follower

ROWS = 100
# The tables' columns and their relative widths (they fit the tab at 1366 px, cells wrap).
LOG_COLUMNS = {"time": 13, "sample": 12, "action": 7, "label": 7, "predicted": 8, "source": 8, "card": 6,
               "confidence": 8, "reviewer": 9, "round": 5, "in force": 6, "note": 11}
CHECK_COLUMNS = {"class": 14, "verify cards": 11, "accepted (95% CI)": 30, "claimed precision": 13, "verdict": 32}


def reviewer_columns() -> dict[str, int]:
    return {"reviewer": 16, "decisions made": 13, **{f"{a} in force": 13 for a in Action}, "last": 19}


@dataclass
class DecisionsTab:
    """The components the Decisions tab owns."""
    sample: gr.Textbox
    who: gr.Textbox
    cls: gr.Dropdown
    action: gr.Dropdown
    in_force: gr.Checkbox
    search_btn: gr.Button
    found_md: gr.Markdown
    table: gr.Dataframe
    card_md: gr.Markdown
    transcript: gr.Textbox
    probs: gr.HTML
    accept_btn: gr.Button
    reject_btn: gr.Button
    give: gr.Dropdown
    give_btn: gr.Button
    change_msg: gr.Markdown
    reviewers_df: gr.Dataframe
    check_df: gr.Dataframe
    opened: gr.State
    rows: gr.State
    searched: gr.State   # the filters of the table's search, which a redraw repeats


def build(actions: AppActions) -> DecisionsTab:
    """The tab's components (inside `with gr.Tab(...)`)."""
    classes = actions.project.classes
    with gr.Row():
        sample = gr.Textbox(label="Sample (part of its name)", max_lines=1, elem_id="dec-sample", min_width=180)
        who = gr.Textbox(label="Reviewer", max_lines=1, elem_id="dec-reviewer", min_width=140)
        cls = gr.Dropdown(["all", *classes], value="all", label="Class (named or predicted)", elem_id="dec-class",
                          min_width=140)
        action = gr.Dropdown(["any", *LOG_ACTIONS], value="any", label="Action", elem_id="dec-action", min_width=120)
        in_force = gr.Checkbox(False, label="In force only", elem_id="dec-in-force", min_width=120)
        search_btn = gr.Button("Search", size="md", elem_id="btn-dec-search", scale=0, min_width=100)
    found_md = gr.Markdown(elem_id="dec-found")
    table = gr.Dataframe(interactive=False, wrap=True, elem_id="dec-table", max_height=360,
                         column_widths=widths(LOG_COLUMNS))
    with gr.Row():
        with gr.Column(scale=3):
            card_md = gr.Markdown("Click a row to open its sample's card.", elem_id="dec-card-title")
            transcript = gr.Textbox(label="Transcript", interactive=False, lines=2, max_lines=4,
                                    elem_id="dec-card-text")
            probs = gr.HTML(elem_id="dec-card-probs", min_height=0)
        with gr.Column(scale=2, min_width=320):
            with gr.Row():
                accept_btn = gr.Button("Accept the prediction", size="sm", variant="primary", elem_id="btn-dec-accept",
                                       interactive=False)
                reject_btn = gr.Button("Reject it", size="sm", variant="stop", elem_id="btn-dec-reject",
                                       interactive=False)
            with gr.Row():
                give = gr.Dropdown(classes, value=classes[0], label="Class", elem_id="dec-give", min_width=120)
                give_btn = gr.Button("Give this class", size="sm", elem_id="btn-dec-give", interactive=False)
            change_msg = gr.Markdown(elem_id="dec-change-message")
    with gr.Row():
        with gr.Column():
            gr.Markdown("**Per reviewer**")
            reviewers_df = gr.Dataframe(interactive=False, elem_id="dec-reviewers", wrap=True,
                                        column_widths=widths(reviewer_columns()))
        with gr.Column():
            gr.Markdown("**Does the model's confidence hold?** Per class, the verify cards people decided: the "
                        "share they accepted (95 % interval) against the precision the model claimed for them.")
            check_df = gr.Dataframe(interactive=False, elem_id="dec-check", wrap=True,
                                    column_widths=widths(CHECK_COLUMNS))
    opened = gr.State(None)   # the sample whose card is open, and its card kind
    rows = gr.State([])       # the sample names of the table's rows, in order
    searched = gr.State([])   # the last search's filters
    return DecisionsTab(
        sample=sample, who=who, cls=cls, action=action, in_force=in_force,
        search_btn=search_btn, found_md=found_md, table=table, card_md=card_md,
        transcript=transcript, probs=probs, accept_btn=accept_btn, reject_btn=reject_btn,
        give=give, give_btn=give_btn, change_msg=change_msg, reviewers_df=reviewers_df,
        check_df=check_df, opened=opened, rows=rows, searched=searched)


def filters(parts: DecisionsTab) -> list:
    return [parts.sample, parts.who, parts.cls, parts.action, parts.in_force]


def outputs(parts: DecisionsTab) -> list:
    return [parts.found_md, parts.table, parts.rows, parts.reviewers_df, parts.check_df, parts.searched]


def render(actions: AppActions, parts: DecisionsTab, sample: str = "", who: str = "", cls: str = "all",
           action: str = "any", in_force: bool = False) -> dict:
    out = actions.decisions(sample or "", who or "", cls or "all", "" if action in (None, "any") else action,
                            bool(in_force), ROWS, 0)
    check = actions.review_check()
    if not out["ok"]:
        return {parts.found_md: f"**Not searched:** {md(out['error'])}"}
    shown = f"{len(out['rows'])} of {out['total']}" if out["total"] > len(out["rows"]) else str(out["total"])
    return {parts.searched: [sample, who, cls, action, in_force],
            parts.found_md: f"{shown} decisions, newest first", parts.table: decisions_frame(out["rows"]),
            parts.rows: [r["name"] for r in out["rows"]], parts.reviewers_df: reviewers_frame(out["reviewers"]),
            parts.check_df: check_frame(check.get("classes", []))}


def decisions_frame(rows: list[dict]) -> pd.DataFrame:
    columns = list(LOG_COLUMNS)
    return pd.DataFrame([[r["time"].replace("T", " "), r["name"], r["action"], r["label"] or "", r["predicted"] or "",
                          r["source"] or "", r["card"] or "",
                          "" if r["confidence"] is None else f"{r['confidence']:.3f}", r["reviewer"], r["round"],
                          "yes" if r["in_force"] else "", r["note"] or ""] for r in rows], columns=columns)


def reviewers_frame(rows: list[dict]) -> pd.DataFrame:
    actions = list(Action)
    return pd.DataFrame([[r["reviewer"], r["decisions"], *(r["in_force"].get(a, 0) for a in actions),
                          r["last_at"].replace("T", " ")] for r in rows],
                        columns=list(reviewer_columns()))


def check_frame(rows: list[dict]) -> pd.DataFrame:
    out = []
    for r in rows:
        thin = "thin: " if r["thin"] else ""   # too few cards: the interval is wide, the verdict weak
        share = "" if r["accepted_share"] is None else (
            f"{thin}{r['accepted']}/{r['cards']} = {r['accepted_share']:.2f} "
            f"({r['interval'][0]:.2f}–{r['interval'][1]:.2f})")
        claimed = "" if r["claimed_precision"] is None else f"{r['claimed_precision']:.2f}"
        verdict = f"{thin}{r['verdict']} so far" if r["thin"] else r["verdict"]
        out.append([r["class"], r["cards"], share, claimed, verdict or "no verify card decided"])
    return pd.DataFrame(out, columns=list(CHECK_COLUMNS))


def open_card(actions: AppActions, parts: DecisionsTab, name: str | None) -> dict:
    """The card of a sample (from a row of the table) with the decision in force on it."""
    buttons = [parts.accept_btn, parts.reject_btn, parts.give_btn]
    if not name:
        return {parts.opened: None, **{b: gr.update(interactive=False) for b in buttons}}
    out = actions.sample_card(name)
    if not out["ok"]:
        return {parts.card_md: f"**Cannot open {md(name)}:** {md(out['error'])}", parts.transcript: "", parts.probs: "",
                parts.opened: None, **{b: gr.update(interactive=False) for b in buttons}}
    c, d = out["candidate"], out["decision"]
    now = "undecided" if d is None else (
        f"{d['action']}" + (f" {md(d['label'])}" if d["label"] and d["action"] != Action.ACCEPT else "")
        + f" by {md(d['reviewer'])} at {d['at'].replace('T', ' ')}")
    kind = "a label card" if c["kind"] == CardKind.LABEL else "a verify card"
    title = (f"### {md(c['name'])} — predicted **{md(c['predicted'])}** at {c['confidence']:.3f}\n"
             f"In force: **{now}** · round {out['round']} shows it as {kind}; a decision here replaces the one "
             f"in force")
    return {parts.card_md: title, parts.transcript: c["text"] or "(no transcript)",
            parts.probs: probability_bars(c["probs"], c["predicted"]),
            parts.opened: {"name": c["name"], "card": c["kind"]},
            **{b: gr.update(interactive=True) for b in buttons}}


def on_change(actions: AppActions, parts: DecisionsTab, action: str, opened: dict | None, label: str,
              reviewer: str, *search) -> dict:
    """A new decision on the open sample: a class given is a label on a label card and a relabel
    on a verify card, as on the Review tab."""
    if not opened:
        return {parts.change_msg: "**Not recorded:** open a sample's card first (click a row)"}
    if action == "class":
        action = Action.LABEL if opened["card"] == CardKind.LABEL else Action.RELABEL
    out = actions.decide(opened["name"], action, label if action in (Action.LABEL, Action.RELABEL) else "", reviewer)
    if not out["ok"]:
        return {parts.change_msg: f"**Not recorded:** {md(out['error'])}"}
    return (render(actions, parts, *search) | open_card(actions, parts, opened["name"])
            | {parts.change_msg: md(out["message"])})


def follow(actions: AppActions, parts: DecisionsTab, searched: list | None, opened: dict | None) -> dict:
    """Decisions were recorded anywhere: the log as last searched, the counts, the check, and
    the decision in force on the open card."""
    return render(actions, parts, *(searched or [])) | (open_card(actions, parts, opened["name"]) if opened else {})


def card_outputs(parts: DecisionsTab) -> list:
    return [parts.card_md, parts.transcript, parts.probs, parts.opened, parts.accept_btn, parts.reject_btn,
            parts.give_btn]


def followers(actions: AppActions, parts: DecisionsTab) -> list[Follower]:
    """What the tab redraws as the store changes: the log as last searched, the counts, the
    check and the open card, when decisions were recorded anywhere."""
    return [Follower(("decisions",), partial(follow, actions, parts), [*outputs(parts), *card_outputs(parts)],
                     [parts.searched, parts.opened])]


def wire(actions: AppActions, parts: DecisionsTab, *, tab: gr.Tab, reviewer: gr.Textbox, private: dict) -> None:
    """The tab's events. What they need of the page: `tab` (its gr.Tab: selecting it searches
    again) and the `reviewer` box (whose name a changed decision records)."""
    search = partial(render, actions, parts)
    every = outputs(parts)
    for trigger in (parts.search_btn.click, parts.sample.submit, parts.who.submit, parts.cls.input, parts.action.input,
                    parts.in_force.input, tab.select):
        trigger(search, filters(parts), every, **private)
    card = card_outputs(parts)

    def on_select(rows: list, evt: gr.SelectData) -> dict:
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return open_card(actions, parts, rows[row] if isinstance(row, int) and 0 <= row < len(rows) else None)

    parts.table.select(on_select, parts.rows, card, **private)
    changed = [*every, *card, parts.change_msg]
    buttons = ((parts.accept_btn, Action.ACCEPT), (parts.reject_btn, Action.REJECT), (parts.give_btn, "class"))
    for btn, what in buttons:
        btn.click(partial(on_change, actions, parts, what), [parts.opened, parts.give, reviewer, *filters(parts)],
                  changed, **private)
