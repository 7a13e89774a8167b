"""The Train tab: "Train next round" (a preset, auto-accept asked first), progress of the round
training now wherever it was started, what the policy did to each threshold after the last
round, the round history and plots of WAF and per-class F1. Every value comes from an
`AppActions` endpoint."""
from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from ..engine.vocab import POOL_SOURCES, RoundStatus
from ..service.actions import AppActions
from ..service.round_summary import RoundSummary

from .charts import f1_plot, md, pct, progress_bar, source_counts, waf_plot, widths
from .follow import Follower

LOW_PRECISION = 0.8      # auto-accept confirmation: classes below it are flagged
ROUNDS_COLUMNS = {"round": 5, "started": 12, "status": 7, "config": 8,
                  "train set (gold / verified / relabeled / labeled / voted / pseudo)": 15, "folds": 5, "CV WAF": 7,
                  "test WAF": 7, "pseudo-labels": 12, "duration s": 7, "error": 15}   # relative widths


@dataclass
class TrainTab:
    """The components the Train tab owns."""
    preset: gr.Dropdown
    auto_accept: gr.Checkbox
    train_btn: gr.Button
    train_confirm_group: gr.Column
    train_confirm_md: gr.Markdown
    train_confirm_btn: gr.Button
    train_cancel_btn: gr.Button
    progress_html: gr.HTML
    train_log: gr.Textbox
    after_md: gr.Markdown
    waf_chart: gr.HTML
    f1_chart: gr.HTML
    rounds_df: gr.Dataframe


def build(actions: AppActions) -> TrainTab:
    """The tab's components (inside `with gr.Tab(...)`)."""
    with gr.Row():
        with gr.Column(scale=2):
            with gr.Row(equal_height=True):
                preset = gr.Dropdown(list(actions.training.presets), value=default_preset(actions.training.presets),
                                     label="Config preset", min_width=160, elem_id="train-preset")
                auto_accept = gr.Checkbox(False, label="Auto-accept the candidates at their thresholds",
                                          min_width=160, elem_id="train-auto")
            train_btn = gr.Button("Train next round", variant="primary", size="md", elem_id="btn-train")
            with gr.Column(visible=False, variant="panel", elem_id="train-confirm-group") as confirm_group:
                confirm_md = gr.Markdown(elem_id="train-confirm-text", padding=True)
                with gr.Row():
                    train_confirm_btn = gr.Button("Yes, train with them", variant="primary", size="md",
                                            elem_id="btn-train-confirm")
                    train_cancel_btn = gr.Button("Cancel", size="md", elem_id="btn-train-cancel")
            progress_html = gr.HTML(progress_bar(actions.training.training_status()), elem_id="train-progress")
            train_log = gr.Textbox(label="Log (follows new lines)", lines=5, max_lines=5, interactive=False,
                                   autoscroll=True, elem_id="train-log")
            after_md = gr.Markdown(elem_id="train-after")
        with gr.Column(scale=3):
            with gr.Row():
                # Lines with points drawn as SVG (charts.round_chart): one finished round is still
                # a visible point, the y axis fits the data, the legend wraps below the plot.
                waf_chart = gr.HTML(elem_id="waf-plot", min_height=0)
                f1_chart = gr.HTML(elem_id="f1-plot", min_height=0)
    rounds_df = gr.Dataframe(label="Rounds (newest first)", interactive=False, wrap=True, elem_id="history",
                             column_widths=widths(ROUNDS_COLUMNS))
    return TrainTab(preset=preset, auto_accept=auto_accept, train_btn=train_btn,
                    train_confirm_group=confirm_group, train_confirm_md=confirm_md,
                    train_confirm_btn=train_confirm_btn, train_cancel_btn=train_cancel_btn,
                    progress_html=progress_html, train_log=train_log, after_md=after_md,
                    waf_chart=waf_chart, f1_chart=f1_chart, rounds_df=rounds_df)


def outputs(parts: TrainTab) -> list:
    """What `render` fills."""
    return [parts.progress_html, parts.train_log, parts.rounds_df, parts.waf_chart, parts.f1_chart, parts.after_md]


def render(actions: AppActions, parts: TrainTab) -> dict:
    snap = actions.training.training_status()
    history = actions.training.rounds()
    return {parts.progress_html: progress_bar(snap), parts.train_log: "\n".join(snap["log"]),
            parts.rounds_df: history_frame(history), parts.waf_chart: waf_plot(history),
            parts.f1_chart: f1_plot(history), parts.after_md: after_round_text(history)}


def on_train(actions: AppActions, parts: TrainTab, preset: str, auto_accept: bool) -> dict:
    out = actions.training.train_round(preset, bool(auto_accept))
    if not out["ok"]:
        gr.Warning(out["error"])
    snap = actions.training.training_status()
    return {parts.progress_html: progress_bar(snap), parts.train_log: "\n".join(snap["log"]),
            parts.train_confirm_group: gr.update(visible=False)}


def on_train_ask(actions: AppActions, parts: TrainTab, preset: str, auto_accept: bool) -> dict:
    """Train at once, or, with auto-accept, first show per class how many candidates it would
    accept and at what expected precision, and ask."""
    if not auto_accept:
        return on_train(actions, parts, preset, False)
    preview = actions.training.auto_accept_preview(preset)
    if not preview["ok"]:
        return {parts.train_confirm_group: gr.update(visible=True),
                parts.train_confirm_md: f"**Cannot preview the auto-accept step:** {md(preview['error'])}"}
    return {parts.train_confirm_group: gr.update(visible=True), parts.train_confirm_md: auto_accept_text(preview)}


def on_train_confirm(actions: AppActions, parts: TrainTab, preset: str) -> dict:
    return on_train(actions, parts, preset, True) | {parts.auto_accept: False}


def auto_accept_text(preview: dict) -> str:
    if not preview.get("candidates"):
        note = preview["note"] or "no undecided candidate passes the thresholds"
        return f"Auto-accept would accept **nothing** ({md(note)}). Train the round anyway?"
    gated = preview.get("disagreed", 0)
    rows = ([f"| class | candidates |{' fold models disagree |' if gated else ''} auto-accepted | expected precision |",
             f"|---|---:|{'---:|' if gated else ''}---:|---:|"])
    low = []
    for r in preview["classes"]:
        p = r["expected_precision"]
        shown = "" if p is None else f"{math.floor(p * 100) / 100:.2f}"
        if p is not None and p < LOW_PRECISION:
            low.append(r["class"])
            shown = f"**{shown} (low)**"
        disagree = f" {r['disagreed']} |" if gated else ""
        rows.append(f"| {md(r['class'])} | {r['candidates']} |{disagree} {r['count']} | {shown} |")
    table = "\n\n" + "\n".join(rows) + "\n"
    held = preview["candidates"] - gated - preview["total"]
    balance = (f" The fold models disagree on {gated} of them." if gated else "") + \
        (f" {balance_text(preview, held)}." if held else "")
    if not preview["total"]:
        return (f"Auto-accept would accept **nothing** of the {preview['candidates']} candidates.{balance} "
                f"Train the round anyway?" + table)
    warn = (f"  \n**Low expected precision** for {', '.join(map(md, low))}: many of these pseudo-labels will "
            f"be wrong; raise those thresholds on the Thresholds tab first?" if low else "")
    return (f"This round will **accept {preview['total']} of the {preview['candidates']} candidates** as "
            f"pseudo-labels without review (counted now, at the current thresholds).{balance}" + table + warn
            + "  \nThe box is unticked after this round.")


def balance_text(preview: dict, held: int) -> str:
    """Why the class balance holds `held` candidates back (self_training.balance)."""
    if preview["balance"] == "quota":
        starved = [r["class"] for r in preview["classes"] if not r["candidates"] - r.get("disagreed", 0)]
        agreed = " the fold models agree on" if preview.get("disagreed") else ""
        why = (f"; {', '.join(map(md, starved))} {'has' if len(starved) == 1 else 'have'} no candidate{agreed}"
               if starved else "")
        return (f"The class balance holds {held} back: each class gets its labeled share of the pseudo-labels, "
                f"paced by the class with the fewest candidates{why}")
    return f"The class balance ({md(preview['balance'])}) holds {held} back"


def after_round_text(history: Sequence[RoundSummary]) -> str:
    """What the policy did to each threshold after the last finished round: old -> new, who set
    the value in force, and the classes that cannot reach the target."""
    done = [r for r in history if r.status == RoundStatus.DONE]
    if not done or not done[-1].threshold_changes:
        return ""
    r = done[-1]
    parts = []
    for c in r.threshold_changes:
        if c.kept_for_owner:
            parts.append(f"{md(c.cls)} {c.old:.3f} kept (set by {md(c.by)})")
        elif c.changed:
            parts.append(f"{md(c.cls)} {c.old:.3f} → **{c.new:.3f}** (policy)")
        else:
            parts.append(f"{md(c.cls)} {c.new:.3f}")
    text = f"**Thresholds after round {r.id}:** " + " · ".join(parts)
    if r.unreachable:
        text += f"  \nNo candidate reaches the target precision: {', '.join(map(md, r.unreachable))}"
    if r.eval_scheme_text:
        text += f"  \nRound {r.id} evaluated by {md(r.eval_scheme_text)}."
    return text


def history_frame(rounds: Sequence[RoundSummary]) -> pd.DataFrame:
    columns = list(ROUNDS_COLUMNS)
    rows = []
    for r in reversed(rounds):  # newest first
        comp = r.composition
        by_source = {} if comp is None else {s.value: getattr(comp, s.value) or 0 for s in POOL_SOURCES}
        make_up = "" if comp is None else " / ".join(
            str(n) for n in ["" if comp.gold is None else comp.gold, *source_counts(by_source)])
        pseudo = r.pseudo_labels
        rows.append([r.id, (r.started_at or "").replace("T", " ")[:19], r.status, r.config, make_up,
                     "" if r.folds is None else r.folds, pct(r.cv_waf), pct(r.test_waf),
                     "" if pseudo is None else (", ".join(f"{c} {n}" for c, n in pseudo.items() if n) or "0"),
                     r.wall_s if r.wall_s is not None else "", r.error or ""])
    return pd.DataFrame(rows, columns=columns)


def default_preset(presets: dict[str, Path]) -> str | None:
    return "default" if "default" in presets else next(iter(presets), None)


def followers(actions: AppActions, parts: TrainTab) -> list[Follower]:
    """What the tab redraws as the store changes: all of it when a round or the training here
    moved on (each second while a round trains)."""
    return [Follower(("training",), partial(render, actions, parts), outputs(parts))]


def wire(actions: AppActions, parts: TrainTab, *, tab: gr.Tab, private: dict) -> None:
    """The tab's events. What they need of the page: `tab` (its gr.Tab: selecting it redraws
    the tab)."""
    asked = [parts.train_confirm_group, parts.train_confirm_md, parts.progress_html, parts.train_log, parts.auto_accept]
    parts.train_btn.click(partial(on_train_ask, actions, parts), [parts.preset, parts.auto_accept], asked,
                          concurrency_limit=None, **private)
    parts.train_confirm_btn.click(partial(on_train_confirm, actions, parts), parts.preset, asked,
                                  concurrency_limit=None, **private)
    parts.train_cancel_btn.click(lambda: gr.update(visible=False), None, parts.train_confirm_group, **private)
    tab.select(partial(render, actions, parts), None, outputs(parts), show_progress="hidden", **private)
