"""The components the Review tab owns (ui/tab_review.py builds them; ui/review_card.py draws
the card's buttons): apart from both, so that neither imports the other."""
from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr

from .widgets import ValueSlider


@dataclass
class ReviewTab:
    """The components the Review tab owns, and `position`: the browser's copy of the reviewer's
    place (the app's, outside the tabs), which every card drawn updates."""
    review_banner: gr.Markdown
    filter_cls: gr.Dropdown
    filter_conf: ValueSlider
    filter_kind: gr.Radio
    accept_all_btn: gr.Button
    confirm_group: gr.Column
    confirm_md: gr.Markdown
    confirm_btn: gr.Button
    cancel_btn: gr.Button
    card_md: gr.Markdown
    transcript: gr.Textbox
    audio: gr.Audio
    video: gr.Video
    probs: gr.HTML
    accept_btn: gr.Button
    reject_btn: gr.Button
    class_label: gr.Markdown
    class_btns: list[gr.Button]
    prev_btn: gr.Button
    next_btn: gr.Button
    undo_btn: gr.Button
    review_msg: gr.Markdown
    counts_df: gr.Dataframe
    review_state: gr.State
    pending_count: gr.State
    store_mark: gr.State     # set by the page's poll when decisions or the round changed: the card follows
    saved_position: gr.BrowserState
    act_btns: list[gr.Button] = field(init=False)   # what a card enables or disables

    def __post_init__(self) -> None:
        self.act_btns = [self.accept_btn, self.reject_btn, *self.class_btns, self.prev_btn, self.next_btn,
                         self.accept_all_btn]
