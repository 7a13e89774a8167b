"""The agreement panel of the Decisions tab: how far the reviewers agree on the overlap share
(Krippendorff's alpha overall with its 95 % interval, percent agreement, a bar per class with its
interval, the reviewer-by-reviewer matrix, each reviewer against the consensus and the gold
probes), and beside it the overlap setting a project lead changes (votes per card, share, gold
probes). Every value comes from the vote endpoints (`actions.votes`, service/vote_actions.py):
the one agreement `mersemi agreement` and `status --json` show."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import gradio as gr
import pandas as pd

from ..service.actions import AppActions
from ..service.votes import overlap

from .charts import alpha_bars, md, widths
from .follow import Follower

# The reviewers' table: its columns and their relative widths (they fit half the tab at 1366 px).
REVIEWER_COLUMNS = {"reviewer": 16, "votes": 8, "with the consensus": 24, "gold probes right (95% CI)": 32}
NO_VOTES = ("**No card has two votes yet**, so there is no agreement to measure. Ask for a second opinion "
            "with the overlap setting here: **votes per card** 2 or more on a **share** of the cards "
            "(as `mersemi overlap DIR --votes 2 --share 0.25`).")


@dataclass
class AgreementPanel:
    """The components the agreement panel owns."""
    summary_md: gr.Markdown
    per_class: gr.HTML
    pairs_df: gr.Dataframe
    reviewers_df: gr.Dataframe
    votes: gr.Number
    share: gr.Number
    probes: gr.Number
    set_btn: gr.Button
    overlap_msg: gr.Markdown


def build(actions: AppActions) -> AgreementPanel:
    """The panel's components (inside the Decisions tab)."""
    now = overlap(actions.project)
    gr.Markdown("**How far reviewers agree** on the cards that took several votes (Krippendorff's alpha, "
                "nominal: 1 is full agreement, 0 what chance gives)", elem_id="agreement-head")
    with gr.Row():
        with gr.Column(scale=3):
            summary_md = gr.Markdown(elem_id="agreement-summary")
            per_class = gr.HTML(elem_id="agreement-classes", min_height=0)
        with gr.Column(scale=2, min_width=320, variant="panel", elem_id="overlap-setting"):
            gr.Markdown("**Overlap setting**: a share of the pool cards goes to several reviewers, each "
                        "decision a vote; the majority is the label, a tie goes to the *adjudicate* queue. Gold "
                        "probes: a share of the gold samples shown as ordinary cards, to score each reviewer.")
            with gr.Row():
                # no minimum / maximum: the service refuses a bad value in its own words (Gradio's
                # own bounds check would raise before the handler runs)
                votes = gr.Number(now.votes, label="Votes per card (K)", elem_id="overlap-votes", min_width=100)
                share = gr.Number(now.share, label="Share of cards (0-1)", elem_id="overlap-share", min_width=100)
                probes = gr.Number(now.probes, label="Gold probes (0-1)", elem_id="overlap-probes", min_width=100)
            set_btn = gr.Button("Set the overlap", size="sm", elem_id="btn-overlap")
            overlap_msg = gr.Markdown(elem_id="overlap-message")
    with gr.Row():
        pairs_df = gr.Dataframe(interactive=False, wrap=True, elem_id="agreement-pairs", visible=False,
                                label="Reviewer by reviewer: the share of the cards both voted on where they "
                                      "agree (how many cards)")
        reviewers_df = gr.Dataframe(interactive=False, wrap=True, elem_id="agreement-reviewers", visible=False,
                                    column_widths=widths(REVIEWER_COLUMNS),
                                    label="Each reviewer against the consensus and the gold probes")
    return AgreementPanel(summary_md=summary_md, per_class=per_class, pairs_df=pairs_df, reviewers_df=reviewers_df,
                          votes=votes, share=share, probes=probes, set_btn=set_btn, overlap_msg=overlap_msg)


def render(actions: AppActions, parts: AgreementPanel) -> dict:
    """The agreement as the store has it now; one line instead of empty charts without overlap votes."""
    out = actions.votes.agreement()
    if not out["ok"]:
        return {parts.summary_md: f"**Agreement not measured:** {md(out['error'])}"}
    people = [r for r in out["reviewers"] if r["votes"] or r["probe_votes"]]
    reviewers = {parts.reviewers_df: gr.update(value=reviewers_frame(people), visible=bool(people))}
    if out["items"] == 0:
        return {parts.summary_md: NO_VOTES + settings_line(out), parts.per_class: "",
                parts.pairs_df: gr.update(value=None, visible=False), **reviewers}
    return {parts.summary_md: summary(out), parts.per_class: alpha_bars(out["per_class"]),
            parts.pairs_df: gr.update(value=(frame := pairs_frame(out["pairs"])), visible=True,
                                      column_widths=widths(dict.fromkeys(frame.columns, 1))), **reviewers}


def summary(out: dict) -> str:
    """The overall line: alpha with its interval, percent agreement, what it rests on."""
    low, high = out["alpha_interval"]
    alpha = ("**undefined** (every vote so far names the same class: nothing to tell agreement from chance)"
             if out["alpha"] is None else
             f"**{out['alpha']:.3f}**" + ("" if low is None else f" (95 % interval {low:.3f} – {high:.3f})"))
    share = out["percent_agreement"]
    percent = "" if share is None else f" · percent agreement **{100 * share:.1f} %**"
    return (f"Krippendorff's alpha {alpha}{percent} · on {out['items']} cards with two votes or more, "
            f"{out['votes']} votes" + settings_line(out))


def settings_line(out: dict) -> str:
    cards = ", ".join(f"{n} {state}" for state, n in sorted(out["cards"].items()))
    s = out["settings"]
    return (f"\n\nNow: {s['votes']} vote(s) per card on {100 * s['share']:.0f} % of the pool cards"
            + (f" ({cards})" if cards else "") + f"; gold probes {100 * s['probes']:.0f} %")


def pairs_frame(pairs: dict) -> pd.DataFrame:
    """Reviewer by reviewer: "agreement (cards both voted on)"; the diagonal, each one's votes."""
    who = pairs["reviewers"]
    rows = []
    for a, name in enumerate(who):
        cells = []
        for b in range(len(who)):
            n, agree = pairs["items"][a][b], pairs["agreement"][a][b]
            cells.append(f"({n} votes)" if a == b else "—" if not n or agree is None else f"{agree:.2f} ({n})")
        rows.append([name, *cells])
    return pd.DataFrame(rows, columns=["reviewer", *who])


def reviewers_frame(rows: list[dict]) -> pd.DataFrame:
    out = []
    for r in rows:
        consensus = "" if r["with_consensus"] is None else (
            f"{100 * r['with_consensus']:.0f} % of {r['consensus_items']} cards")
        probes = "no probe yet" if not r["probe_votes"] else (
            f"{r['probe_right']}/{r['probe_votes']} = {r['probe_accuracy']:.2f} "
            f"({r['probe_interval'][0]:.2f}–{r['probe_interval'][1]:.2f})")
        out.append([r["reviewer"], r["votes"], consensus, probes])
    return pd.DataFrame(out, columns=list(REVIEWER_COLUMNS))


def on_set(actions: AppActions, parts: AgreementPanel, votes, share, probes) -> dict:
    """The overlap setting, checked as `mersemi overlap` checks it: a bad value is one line and
    nothing is written (the boxes go back to the setting in force)."""
    out = actions.votes.set_overlap(votes, share, 0.0 if probes is None else probes)
    if not out["ok"]:
        return {parts.overlap_msg: f"**Not set:** {md(out['error'])}", **setting(actions, parts)}
    said = (f"Set: {out['votes']} vote(s) per card on {100 * out['share']:.0f} % of the pool cards "
            f"({out['overlap_cards']} cards); gold probes {100 * out['probes']:.0f} % ({out['probe_cards']} cards)")
    return render(actions, parts) | {parts.overlap_msg: said}


def setting(actions: AppActions, parts: AgreementPanel) -> dict:
    """The overlap setting in force, in its boxes."""
    now = overlap(actions.project)
    return {parts.votes: now.votes, parts.share: now.share, parts.probes: now.probes}


def outputs(parts: AgreementPanel) -> list:
    return [parts.summary_md, parts.per_class, parts.pairs_df, parts.reviewers_df]


def followers(actions: AppActions, parts: AgreementPanel) -> list[Follower]:
    """Votes are decisions: the agreement follows the decision log."""
    return [Follower(("decisions",), partial(render, actions, parts), outputs(parts))]


def wire(actions: AppActions, parts: AgreementPanel, *, tab: gr.Tab, private: dict) -> None:
    """The panel's events; `tab` (the Decisions tab: selecting it draws the agreement)."""
    boxes = [parts.votes, parts.share, parts.probes]
    tab.select(lambda: render(actions, parts) | setting(actions, parts), None, [*outputs(parts), *boxes], **private)
    parts.set_btn.click(partial(on_set, actions, parts), boxes, [*outputs(parts), *boxes, parts.overlap_msg],
                        **private)
