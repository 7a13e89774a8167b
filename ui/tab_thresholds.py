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
from ..engine.vocab import Tool
from ..service.actions import AppActions
from ..service.review import THIN, wilson_interval

from .charts import md, source_counts, widths
from .follow import Follower
from .widgets import ValueSlider

HISTORY_ROWS = 50
# The tables' columns and their relative widths (they fit the tab at 1366 px, cells wrap).
CLASS_COLUMNS = {"class": 7, "threshold": 8, "set by": 9, "candidates": 9, "expected precision (n=candidates)": 13,
                 "OOF precision (hits/n, 95% CI)": 14, "verified": 8, "relabeled": 9, "labeled": 7, "voted": 6,
                 "pseudo": 7, "rejected": 8}
HISTORY_COLUMNS = {"time": 18, "class": 12, "threshold": 9, "set by": 20, "owner after": 11, "note": 30}
THRESHOLDS_GROUP = "thresholds"   # the concurrency group of every event that puts values in the boxes
INTRO = ("Candidates of a class are the undecided pool samples predicted as that class with confidence at or "
         "above its threshold (blue in the histograms; decided samples are green). A threshold you set is yours: "
         "the policy after a round leaves it alone until you tick the class under *Policy sets after each round*. "
         "Suggest: each class's lowest threshold reaching the target precision. Paper preset: 0.99 for neutral, "
         "angry, happy and sad, 0.85 for worried and surprise, 0.95 for other classes.")


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
    shown: gr.State   # per class, the value the page last put in its box: a release of it is no one's change


def build(actions: AppActions) -> ThresholdsTab:
    """The tab's components (inside `with gr.Tab(...)`), values as the store holds them now."""
    classes = actions.project.classes
    thresholds = {c: o["threshold"] for c, o in actions.threshold_history(1).get("owners", {}).items()}
    bin_width = (1 - 1 / len(classes)) / 40   # service/review.HIST_BINS bins, as the plot's x bins
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            gr.Markdown(INTRO)
            # No reset button: it would store the value of the server's start as the reviewer's.
            sliders = [ValueSlider(0, 1, value=thresholds[c], step=STEP, label=c, buttons=[],
                                   elem_id=f"threshold-{i}", elem_classes="threshold") for i, c in enumerate(classes)]
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
                                    elem_id="class-table", wrap=True, column_widths=widths(CLASS_COLUMNS))
            with gr.Row(elem_id="histograms"):
                # counts are whole numbers: the axis says so (an empty plot's read "0.000000")
                hists = [gr.BarPlot(x="confidence", y="samples", color="part",
                                    color_map=dict(HIST_PARTS.values()), y_axis_format="d",
                                    x_bin=bin_width, y_aggregate="sum", x_lim=[1 / len(classes), 1],
                                    title=c, x_title="pool confidence", height=170, min_width=300,
                                    show_label=False, colors_in_legend=[], elem_id=f"hist-{i}")
                         for i, c in enumerate(classes)]
            with gr.Accordion("History of threshold changes", open=False, elem_id="threshold-history-box"):
                history_df = gr.Dataframe(interactive=False, elem_id="threshold-history", wrap=True,
                                          column_widths=widths(HISTORY_COLUMNS))
    return ThresholdsTab(sliders=sliders, policy=policy, target=target, suggest_btn=suggest_btn,
                         preset_btn=preset_btn, threshold_note=note, class_df=class_df, hists=hists,
                         history_df=history_df, shown=gr.State(None))


def outputs(parts: ThresholdsTab) -> list:
    """Every component `render` fills."""
    return [*parts.sliders, parts.policy, parts.class_df, *parts.hists, parts.history_df, parts.threshold_note,
            parts.shown]


def render(actions: AppActions, parts: ThresholdsTab, note: str = "") -> dict:
    """Sliders (their lines cleared), owners, the class table, every histogram and the history,
    from the store; `shown` records the values the boxes get."""
    history = actions.threshold_history(HISTORY_ROWS)
    owners = history.get("owners", {})
    counts = actions.candidate_counts()
    hists = actions.histograms()
    by_class = {h["class"]: h for h in hists.get("classes", [])}
    values = {c: owners[c]["threshold"] for c in actions.project.classes}
    out: dict = {slider: gr.update(value=values[c], info=None) for slider, c in zip(parts.sliders, values)}
    out |= {parts.shown: values, parts.policy: [c for c, o in owners.items() if o["policy_may_set"]],
            parts.class_df: class_frame(counts, owners), parts.history_df: history_frame(history.get("changes", [])),
            parts.threshold_note: note or counts.get("error", "")}
    out |= {hist: histogram_update(by_class.get(c)) for hist, c in zip(parts.hists, actions.project.classes)}
    return out


def follow(actions: AppActions, parts: ThresholdsTab, shown: dict | None) -> dict:
    """Another writer changed thresholds, or a round finished: redraw the tab, but put a value
    in a box only where the store's differs from what the page last put there (never into a
    box the reviewer is typing in when only another class changed); the note stays."""
    drawn = render(actions, parts)
    drawn.pop(parts.threshold_note)
    for slider, c in zip(parts.sliders, actions.project.classes):
        if shown is not None and same(shown.get(c), drawn[parts.shown][c]):
            drawn.pop(slider)
    return drawn


def on_threshold(actions: AppActions, parts: ThresholdsTab, i: int, value, shown: dict | None,
                 reviewer: str) -> dict:
    """A slider released: store its value as the reviewer's and say so beside the box, when a
    person changed it (a key, a drag, a typed value and Enter or leaving the box). A value the
    page itself put in the box (a click into it and out, Enter on it) is no one's change and
    stores nothing. A value that cannot be stored is refused beside the box, and the stored one
    goes back in it."""
    cls = actions.project.classes[i]
    slider = parts.sliders[i]
    stored = actions.threshold_history(1)["owners"][cls]["threshold"]
    was = stored if shown is None else shown.get(cls, stored)   # None: the page is still loading
    if same(value, was):
        return {slider: gr.skip()}
    if value is None or value != value or not 0.0 <= value <= 1.0:
        got = "no number" if value is None else f"{value:g}"
        return {slider: gr.update(value=stored, info=f"**Not stored:** got {got}; a threshold lies in [0, 1]. "
                                                     f"{md(cls)} stays {stored:.3f}."),
                parts.shown: (shown or {}) | {cls: stored}}
    out = actions.set_thresholds({cls: value}, reviewer)
    if not out["ok"]:
        return {slider: gr.update(value=stored, info=f"**Not stored:** {md(out['error'])}"),
                parts.shown: (shown or {}) | {cls: stored}}
    kept = out["thresholds"][cls]
    # The box shows the value already unless it was rounded; sending it back anyway would undo
    # a key pressed while this save ran (that key's own release stores it next). The other boxes
    # get a value only where the store's changed (one may be being typed in).
    line = f"{kept:.3f} stored as {md(reviewer.strip())}'s"
    return follow(actions, parts, (shown or {}) | {cls: kept}) | {
        slider: gr.update(info=line) if kept == value else gr.update(value=kept, info=line)}


def same(a, b) -> bool:
    """Two threshold values alike to well under a slider's step (None is no value)."""
    return a is not None and b is not None and a == a and b == b and abs(float(a) - float(b)) < STEP / 100


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


MIN_COUNT_AXIS = 4
HIST_PARTS = {"below": ("below the threshold", "#c7ccd4"), "candidates": ("candidates", "#3b82f6"),
              "decided": ("decided", "#86efac")}   # the service's parts of a histogram: legend name, colour


def histogram_update(hist: dict | None) -> dict:
    """A histogram's plot: its frame, and a count axis reaching at least MIN_COUNT_AXIS, so that
    its ticks are whole numbers (the plot's own would put ticks at 0.5 below 4 samples)."""
    frame = histogram_frame(hist)
    tallest = 0 if hist is None else int(np.max(np.sum([hist[k] for k in HIST_PARTS], axis=0), initial=0))
    return gr.update(value=frame, y_lim=[0, max(MIN_COUNT_AXIS, tallest)])


def histogram_frame(hist: dict | None) -> pd.DataFrame | None:
    """One class's pool confidences in bins, each split into the undecided samples below the
    threshold, the candidates and the decided samples (stacked in the plot): three rows per bin,
    never the samples. None before round 0 (an empty frame breaks later updates)."""
    if hist is None:
        return None
    edges = np.asarray(hist["edges"])
    centers = (edges[:-1] + edges[1:]) / 2
    return pd.DataFrame({"confidence": np.tile(centers, len(HIST_PARTS)),
                         "samples": np.concatenate([np.asarray(hist[k], int) for k in HIST_PARTS]),
                         "part": np.repeat([name for name, _ in HIST_PARTS.values()], len(centers))})


def class_frame(result: dict, owners: dict) -> pd.DataFrame:
    """The per-class table: threshold and its owner, candidates, the precision estimates with
    their support (the out-of-fold one with its 95 % interval, "thin" under THIN gold
    samples), and the pool labels in force of the class by source."""
    columns = list(CLASS_COLUMNS)
    rows = []
    for r in result.get("classes", []):
        owner = owners.get(r["class"], {})
        by = str(owner.get("set_by", "")) + ("" if owner.get("policy_may_set", True) else " (kept)")
        rows.append([r["class"], f"{r['threshold']:.3f}", by, r["candidates"], precision_text(r), oof_text(r),
                     *source_counts(r), r["rejected"]])
    return pd.DataFrame(rows, columns=columns)


def history_frame(changes: list[dict]) -> pd.DataFrame:
    rows = [[c["set_at"].replace("T", " "), c["class"], f"{c['threshold']:.3f}",
             f"policy after round {c['round']}" if c["round"] is not None else c["set_by"],
             Tool.POLICY.value if c["policy_may_set"] else "kept", c["note"] or ""] for c in changes]
    return pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))


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
    thin = "thin: " if n < THIN else ""
    return f"{thin}{hits}/{n} = {p:.2f} ({lo:.2f}–{hi:.2f})"


def follow_counts(actions: AppActions, parts: ThresholdsTab) -> dict:
    """Decisions were made: the candidates and labels of the class table change."""
    counts = actions.candidate_counts()
    return {parts.class_df: class_frame(counts, actions.threshold_history(1).get("owners", {}))}


def followers(actions: AppActions, parts: ThresholdsTab) -> list[Follower]:
    """What the tab redraws as the store changes: everything when thresholds or the round
    changed, the class table when decisions did."""
    return [Follower(("thresholds", "round"), partial(follow, actions, parts), outputs(parts), [parts.shown]),
            Follower(("decisions",), partial(follow_counts, actions, parts), [parts.class_df])]


def wire(actions: AppActions, parts: ThresholdsTab, *, tab: gr.Tab, reviewer: gr.Textbox, private: dict) -> None:
    """The tab's events. What they need of the page: `tab` (its gr.Tab: selecting it redraws the
    tab) and the `reviewer` box (whose name every change records).

    Every event that puts values in the boxes runs one at a time with the slider's saves (one
    concurrency group, THRESHOLDS_GROUP, which the page's poll joins), so that what the page last
    put in each box (`shown`) is always known when a release is judged."""
    one_at_a_time = {"concurrency_id": THRESHOLDS_GROUP, **private}
    every = outputs(parts)
    # A slider saves on release (mouse, typed value + Enter or leaving the box, arrow keys: app.js
    # turns a key's release into the slider's release). Each release is sent with the value of its
    # moment ("multiple"): a deferred one would read the box after Gradio clamped a bad value.
    for i, slider in enumerate(parts.sliders):
        slider.release(partial(on_threshold, actions, parts, i), [slider, parts.shown, reviewer], every,
                       trigger_mode="multiple", **one_at_a_time)
    parts.policy.input(partial(on_policy, actions, parts), [parts.policy, reviewer], every, **one_at_a_time)
    parts.suggest_btn.click(partial(on_suggest, actions, parts), [parts.target, reviewer], every, **one_at_a_time)
    parts.preset_btn.click(partial(on_preset, actions, parts), reviewer, every, **one_at_a_time)
    tab.select(partial(render, actions, parts), None, every, **one_at_a_time)
