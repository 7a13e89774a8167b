"""The Export tab: labels with their source (CSV or MERTools npz), the decision log, the pool and
test predictions; each written under the project's exports/ folder and offered for download."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import gradio as gr

from ..service.actions import AppActions

from .charts import md

EXPORTS = {"labels": ("Labels (CSV)", "btn-export-labels"),
           "labels_mertools": ("Labels (MERTools npz)", "btn-export-mertools"),
           "decisions": ("Decision log (CSV)", "btn-export-decisions"),
           "predictions": ("Test / pool predictions (CSV)", "btn-export-predictions")}


@dataclass
class ExportTab:
    """The components the Export tab owns: a button per export, by what it exports."""
    export_btns: dict[str, gr.Button]
    export_msg: gr.Markdown
    export_file: gr.File


def build(actions: AppActions) -> ExportTab:
    """The tab's components (inside `with gr.Tab(...)`)."""
    gr.Markdown("Each export is written under the project's `exports/` folder and offered here for download. "
                "Labels carry their source: gold (imported), verified, relabeled or labeled (a person's), "
                "pseudo (accepted by the tool).")
    with gr.Row():
        buttons = {what: gr.Button(text, size="md", elem_id=elem) for what, (text, elem) in EXPORTS.items()}
    message = gr.Markdown(elem_id="export-message")
    file = gr.File(label="Download", interactive=False, visible=False, elem_id="export-file")
    return ExportTab(export_btns=buttons, export_msg=message, export_file=file)


def on_export(actions: AppActions, parts: ExportTab, what: str) -> dict:
    out = actions.export(what)
    if not out["ok"]:
        gr.Warning(out["error"])
        return {parts.export_msg: f"**Not exported:** {md(out['error'])}"}
    # Offered from the server's own folder (never the project's, nor the machine-wide temp folder
    # that every Gradio app on the machine shares).
    download = actions.clips.offer(out["file"])
    return {parts.export_msg: f"Wrote {out['rows']} rows to `{out['file']}`",
            parts.export_file: gr.update(value=str(download), visible=True)}


def wire(actions: AppActions, parts: ExportTab, private: dict) -> None:
    for what, btn in parts.export_btns.items():
        btn.click(partial(on_export, actions, parts, what), None, [parts.export_msg, parts.export_file], **private)
