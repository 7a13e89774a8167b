"""The Export tab: labels with their source (CSV or MERTools npz), the decision log, the pool and
test predictions; each written under the project's exports/ folder and offered for download."""
from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import gradio as gr

from ..service.actions import AppActions

from .charts import md

EXPORTS = {"labels": ("Labels (CSV)", "btn-export-labels"),
           "labels_mertools": ("Labels (MERTools npz)", "btn-export-mertools"),
           "decisions": ("Decision log (CSV)", "btn-export-decisions"),
           "predictions": ("Test / pool predictions (CSV)", "btn-export-predictions")}


def layout(actions: AppActions) -> SimpleNamespace:
    gr.Markdown("Each export is written under the project's `exports/` folder and offered here for download. "
                "Labels carry their source: gold (imported), verified, relabeled or labeled (a person's), "
                "pseudo (accepted by the tool).")
    with gr.Row():
        buttons = {what: gr.Button(text, size="md", elem_id=elem) for what, (text, elem) in EXPORTS.items()}
    message = gr.Markdown(elem_id="export-message")
    file = gr.File(label="Download", interactive=False, visible=False, elem_id="export-file")
    return SimpleNamespace(export_btns=buttons, export_msg=message, export_file=file)


def on_export(actions: AppActions, W: SimpleNamespace, what: str) -> dict:
    out = actions.export(what)
    if not out["ok"]:
        gr.Warning(out["error"])
        return {W.export_msg: f"**Not exported:** {md(out['error'])}"}
    # Offered from the server's own folder (never the project's, nor the machine-wide temp folder
    # that every Gradio app on the machine shares).
    download = actions.clips.offer(out["file"])
    return {W.export_msg: f"Wrote {out['rows']} rows to `{out['file']}`",
            W.export_file: gr.update(value=str(download), visible=True)}


def wire(actions: AppActions, W: SimpleNamespace, private: dict) -> None:
    for what, btn in W.export_btns.items():
        btn.click(partial(on_export, actions, W, what), None, [W.export_msg, W.export_file], **private)
