"""Gradio components the review page needs with a behaviour of their own. Gradio writes a .pyi
stub beside this module the first time a component class is defined (ignored by git)."""
from __future__ import annotations

import gradio as gr


class ValueSlider(gr.Slider):
    """A slider whose typed value reaches the handler even when out of range or empty, so that
    the handler can refuse it in its own words and put the stored value back in the box
    (Gradio's own bounds check raises before any handler runs: the box keeps the bad value
    and the server logs a traceback)."""
    is_template = True  # drawn by the frontend's Slider

    def preprocess(self, payload):
        if payload is None or isinstance(payload, bool):
            return None
        try:
            return float(payload)
        except (TypeError, ValueError):
            return None


__all__ = ["ValueSlider"]
