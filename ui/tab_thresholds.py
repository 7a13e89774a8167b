"""The Thresholds tab: a slider per class, who owns each threshold (and whether the policy may set
it after a round), the per-class table, a confidence histogram per class, Suggest, the paper's
preset and the history of changes. Every value comes from an `AppActions` endpoint."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import gradio as gr
import numpy as np
import pandas as pd

from ..engine.thresholds import STEP
from ..service.actions import AppActions
from ..service.review import wilson_interval

from .charts import md
from .widgets import ValueSlider

THIN_SUPPORT = 30        # an out-of-fold precision resting on fewer samples is marked thin
HISTORY_ROWS = 50
INTRO = ("Candidates of a class are the undecided pool samples predicted as that class with confidence at or "
         "above its threshold (blue in the histograms). A threshold you set is yours: the policy after a round "
         "leaves it alone until you tick the class under *Policy sets after each round*. Suggest: each class's "
         "lowest threshold reaching the target precision. Paper preset: 0.99 for neutral, angry, happy and sad, "
         "0.85 for worried and surprise, 0.95 for other classes.")


@dataclass
class ThresholdsTab:
    """The components the Thresholds tab owns (a slider and a histogram per class, in class order)."""
    sliders: list[ValueSlider]
    policy: gr.CheckboxGroup
    target: gr.Number
    suggest_btn: gr.Button
    preset_btn: gr.Button
    threshold_note: gr.Markdown
    class_df: gr.Dataframe
    hists: list[gr.BarPlot]
    history_df: gr.Dataframe


def build(actions: AppActions) -> ThresholdsTab:
    """The tab's components (inside `with gr.Tab(...)`), values as the store holds them now."""
    classes = actions.project.classes
    thresholds = {c: o["threshold"] for c, o in actions.threshold_history(1).get("owners", {}).items()}
    bin_width = (1 - 1 / len(classes)) / 40   # service/review.HIST_BINS bins, as the plot's x bins
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            gr.Markdown(INTRO)
            sliders = [ValueSlider(0, 1, value=thresholds[c], step=STEP, label=c, elem_id=f"threshold-{i}")
                       for i, c in enumerate(classes)]
            policy = gr.CheckboxGroup(classes, label="Policy sets after each round", elem_id="policy-sets",
                                      info="ticked: the policy sets the class after each round; "
                                           "unticked: the threshold stays as you set it")
            target = gr.Number(0.95, label="Target precision for Suggest", minimum=0, maximum=1, step=0.01,
                               elem_id="target-precision")
            with gr.Row():
                suggest_btn = gr.Button("Suggest", size="md", min_width=100, elem_id="btn-suggest")
                preset_btn = gr.Button("Paper preset", size="md", min_width=100, elem_id="btn-preset")
            note = gr.Markdown(elem_id="threshold-note")
        with gr.Column(scale=3):
            class_df = gr.Dataframe(label="Per class at these thresholds", interactive=False,
                                    elem_id="class-table", wrap=True)
            with gr.Row(elem_id="histograms"):
                hists = [gr.BarPlot(x="confidence", y="samples", color="side",
                                    color_map={"below": "#c7ccd4", "at or above": "#3b82f6"},
                                    x_bin=bin_width, y_aggregate="sum", x_lim=[1 / len(classes), 1],
                                    title=c, x_title="pool confidence", height=170, min_width=300,
                                    show_label=False, colors_in_legend=[], elem_id=f"hist-{i}")
                         for i, c in enumerate(classes)]
            with gr.Accordion("History of threshold changes", open=False, elem_id="threshold-history-box"):
                history_df = gr.Dataframe(interactive=False, elem_id="threshold-history", wrap=True)
    return ThresholdsTab(sliders=sliders, policy=policy, target=target, suggest_btn=suggest_btn,
                         preset_btn=preset_btn, threshold_note=note, class_df=class_df, hists=hists,
                         history_df=history_df)


def outputs(parts: ThresholdsTab) -> list:
    """Every component `render` fills."""
    return [*parts.sliders, parts.policy, parts.class_df, *parts.hists, parts.history_df, parts.threshold_note]


def render(actions: AppActions, parts: ThresholdsTab, note: str = "") -> dict:
    """Sliders, owners, the class table, every histogram and the history, from the store."""
    history = actions.threshold_history(HISTORY_ROWS)
    owners = history.get("owners", {})
    counts = actions.candidate_counts()
    hists = actions.histograms()
    by_class = {h["class"]: h for h in hists.get("classes", [])}
    out: dict = {slider: owners[c]["threshold"] for slider, c in zip(parts.sliders, actions.project.classes)}
    out |= {parts.policy: [c for c, o in owners.items() if o["policy_may_set"]],
            parts.class_df: class_frame(counts, owners), parts.history_df: history_frame(history.get("changes", [])),
            parts.threshold_note: note or counts.get("error", "")}
    out |= {hist: histogram_frame(by_class.get(c)) for hist, c in zip(parts.hists, actions.project.classes)}
    return out


def on_threshold(actions: AppActions, parts: ThresholdsTab, i: int, value, reviewer: str) -> dict:
    """Store a slider's value as the reviewer's and show what was stored; a value that cannot be
    stored is refused in a visible line and the stored one goes back in the box."""
    cls = actions.project.classes[i]
    stored = actions.threshold_history(1)["owners"][cls]["threshold"]
    if value is None or value != value or not 0.0 <= value <= 1.0:
        got = "nothing" if value is None else f"{value:g}"
        return {parts.sliders[i]: stored, parts.threshold_note: f"**Not stored:** the threshold for {md(cls)} must lie "
                                                        f"in [0, 1], got {got}; it stays {stored:.3f}."}
    out = actions.set_thresholds({cls: value}, reviewer)
    if not out["ok"]:
        return {parts.sliders[i]: stored, parts.threshold_note: f"**Not stored:** {md(out['error'])}"}
    shown = out["thresholds"][cls]
    # The box already shows the value unless it was rounded; sending it back anyway would undo
    # a key pressed while this save ran (that key's own release stores it next).
    return render(actions, parts, f"{md(cls)}: threshold {shown:.3f} stored as {md(reviewer.strip())}'s") | {
        parts.sliders[i]: gr.skip() if shown == value else shown}


def on_suggest(actions: AppActions, parts: ThresholdsTab, target: float, reviewer: str) -> dict:
    out = actions.suggest(target, reviewer)
    if not out["ok"]:
        return {parts.threshold_note: f"**Not set:** {md(out['error'])}"}
    return render(actions, parts, md(out["message"]))


def on_preset(actions: AppActions, parts: ThresholdsTab, reviewer: str) -> dict:
    out = actions.paper_preset(reviewer)
    if not out["ok"]:
        return {parts.threshold_note: f"**Not set:** {md(out['error'])}"}
    set_to = ", ".join(f"{c} {v:.3f}" for c, v in out["thresholds"].items())
    return render(actions, parts, f"paper preset set: {set_to}")


def on_policy(actions: AppActions, parts: ThresholdsTab, ticked: list, reviewer: str) -> dict:
    """A class ticked is released to the policy; a class unticked becomes the reviewer's at its
    current value."""
    owners = actions.threshold_history(1).get("owners", {})
    policy_sets = set(ticked or [])
    release = [c for c, o in owners.items() if c in policy_sets and not o["policy_may_set"]]
    keep = {c: o["threshold"] for c, o in owners.items() if c not in policy_sets and o["policy_may_set"]}
    notes = []
    if release:
        out = actions.release_thresholds(release, reviewer)
        notes.append(md(out["message"]) if out["ok"] else f"**Not released:** {md(out['error'])}")
    if keep:
        out = actions.set_thresholds(keep, reviewer)
        notes.append(f"kept as {md(reviewer.strip())}'s: {', '.join(map(md, keep))}" if out["ok"]
                     else f"**Not kept:** {md(out['error'])}")
    return render(actions, parts, "; ".join(notes))


def histogram_frame(hist: dict | None) -> pd.DataFrame | None:
    """One class's pool confidences in bins, each split into the part below the threshold and
    the part at or above it (stacked in the plot): two rows per bin, never the samples. None
    before round 0 (an empty frame breaks later updates)."""
    if hist is None:
        return None
    edges = np.asarray(hist["edges"])
    centers = (edges[:-1] + edges[1:]) / 2
    return pd.DataFrame({"confidence": np.concatenate([centers, centers]),
                         "samples": np.asarray(hist["below"] + hist["above"], int),
                         "side": ["below"] * len(centers) + ["at or above"] * len(centers)})


def class_frame(result: dict, owners: dict) -> pd.DataFrame:
    """The per-class table: threshold and its owner, candidates, the precision estimates with
    their support (the out-of-fold one with its 95 % interval, "thin" under THIN_SUPPORT gold
    samples), and the pool labels in force of the class by source."""
    columns = ["class", "threshold", "set by", "candidates", "expected precision (n=candidates)",
               "OOF precision (hits/n, 95% CI)", "verified", "relabeled", "labeled", "pseudo", "rejected"]
    rows = []
    for r in result.get("classes", []):
        owner = owners.get(r["class"], {})
        by = str(owner.get("set_by", "")) + ("" if owner.get("policy_may_set", True) else " (kept)")
        rows.append([r["class"], f"{r['threshold']:.3f}", by, r["candidates"], precision_text(r), oof_text(r),
                     r["verified"], r["relabeled"], r["labeled"], r["pseudo"], r["rejected"]])
    return pd.DataFrame(rows, columns=columns)


def history_frame(changes: list[dict]) -> pd.DataFrame:
    rows = [[c["set_at"].replace("T", " "), c["class"], f"{c['threshold']:.3f}",
             f"policy after round {c['round']}" if c["round"] is not None else c["set_by"],
             "policy" if c["policy_may_set"] else "kept", c["note"] or ""] for c in changes]
    return pd.DataFrame(rows, columns=["time", "class", "threshold", "set by", "owner after", "note"])


def precision_text(row: dict) -> str:
    """Expected precision (mean calibrated confidence of the candidates), rounded down to two
    decimals: never shown higher than it is (0.999 reads 0.99, not a certain-looking 1.00)."""
    p = row["expected_precision"]
    return f"n/a (n={row['support']})" if p is None else f"{math.floor(p * 100) / 100:.2f} (n={row['support']})"


def oof_text(row: dict) -> str:
    n = row.get("oof_support") or 0
    p = row.get("oof_precision")
    if not n or p is None:
        return "no gold sample above"
    hits = round(p * n)
    lo, hi = wilson_interval(hits, n) or (0.0, 1.0)
    thin = "thin: " if n < THIN_SUPPORT else ""
    return f"{thin}{hits}/{n} = {p:.2f} ({lo:.2f}–{hi:.2f})"


def wire(actions: AppActions, parts: ThresholdsTab, tab: gr.Tab, reviewer: gr.Textbox, private: dict) -> None:
    """The tab's events: `tab` (its gr.Tab) redraws it when selected; `reviewer` is the page's
    reviewer box, whose name every change records."""
    # A slider saves on release (mouse, typed value + Enter or Tab, arrow keys: app.js turns a
    # key's release into the slider's release); always_last: keys pressed while a save runs are
    # saved after it, never dropped.
    every = outputs(parts)
    for i, slider in enumerate(parts.sliders):
        slider.release(partial(on_threshold, actions, parts, i), [slider, reviewer], every,
                       trigger_mode="always_last", **private)
    parts.policy.input(partial(on_policy, actions, parts), [parts.policy, reviewer], every, **private)
    parts.suggest_btn.click(partial(on_suggest, actions, parts), [parts.target, reviewer], every, **private)
    parts.preset_btn.click(partial(on_preset, actions, parts), reviewer, every, **private)
    tab.select(partial(render, actions, parts), None, every, **private)
