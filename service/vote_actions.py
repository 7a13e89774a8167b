"""The app's endpoints on votes (`VoteActions`, held by `AppActions` as `actions.votes`,
service/actions.py): the overlap setting, the reviewers' agreement and the gold labels an audit
changed. Deciding, undoing and the adjudicate and audit queues are the review endpoints
(`next_candidate` with kind adjudicate or audit, `decide`, `undo`). No Gradio here; type hints
are real (no `from __future__ import annotations`): `gr.api` reads them."""
from .agreement import agreement
from .audit import gold_changes
from .project import Project
from .refusals import refusals
from .values import number
from .votes import overlap, set_overlap


class VoteActions:
    """One project's vote endpoints (ENDPOINTS), shared by every session and API client."""

    ENDPOINTS = ("agreement", "set_overlap", "gold_changes")

    def __init__(self, project: Project) -> None:
        self.project = project

    @refusals
    def agreement(self, draws: int = 1000) -> dict:
        """Krippendorff's alpha (nominal) of the overlap share's votes, overall and per class with
        95 % bootstrap intervals (`draws` resamples, 1-10000), percent agreement, the reviewer-pair
        matrix (`pairs`), each reviewer against the consensus and the gold probes, the overlap
        cards by state and the overlap setting."""
        draws = int(number(draws, "draws", low=1, high=10_000, integer=True))
        return {"ok": True} | agreement(self.project, draws=draws).as_dict()

    @refusals
    def set_overlap(self, votes: int, share: float, probes: float = 0.0) -> dict:
        """K votes (1-100) on a share (0-1) of the current round's open pool cards, drawn at random
        stratified by predicted class and card kind, and a share (0-1) of the gold samples shown as
        ordinary cards (probes). Cards already voted on keep their K."""
        return {"ok": True} | set_overlap(self.project, votes, share, probes)

    @refusals
    def gold_changes(self) -> dict:
        """Every gold label an audit's consensus changed, with the label it had, and the overlap
        setting (an audit card takes its K votes)."""
        k = overlap(self.project).votes
        return {"ok": True, "changes": gold_changes(self.project), "votes": k}
