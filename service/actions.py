"""The app's actions as plain functions over a Project: each is one named API endpoint, and
the page's buttons call the same functions. No Gradio here.

Every action returns a JSON-friendly dict. A request the project refuses (bad input, no
round yet, training already running) returns {"ok": False, "error": "<one line>"} and
writes nothing; it never raises. Arguments arrive as JSON from any client: each is checked
by service/values.py (types strictly: the string "false" is not a boolean) before it is used.
Type hints are real (no `from __future__ import annotations`): `gr.api` reads them to
describe the endpoints. The training endpoints are `actions.training`, a `TrainingActions`
(service/training_actions.py); the refusal every endpoint turns an error into is `refusals`
(service/refusals.py).
"""
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

from ..engine.config import presets
from ..engine.errors import Refusal, shown
from ..engine.processes import dead_on_this_host, this_process
from ..engine.vocab import DEFAULT_QUEUE, Action, QueueKind, Tool, VotePurpose

from .clips import ClipShelf
from .decisions import find as find_decisions, review_check, reviewers as reviewer_counts, sample_card
from .exports import export as write_export
from .errors import NoRound
from .project import DecisionRequest, Project, ProjectError
from .refusals import refused, refusals
from .review import (
    RoundView, class_table, media_file, open_mask, paper_preset, queue_page, queue_position, round_view,
    split_histogram, suggest_thresholds,
)
from .training_actions import TrainingActions
from .values import MAX_REVIEWER, flag, mapping, number, person, text
from .vote_actions import VoteActions

EMPTY_QUEUE = {  # what an empty queue means, and what to do
    "verify": "no undecided candidates pass the thresholds in this filter: lower a threshold, "
              "or label samples below them (label queue)",
    "label": "no undecided sample below its threshold in this filter: verify the candidates "
             "(verify queue), or raise a threshold",
    "both": "no undecided pool sample in this filter",
    "adjudicate": "no tie of votes waits for a reviewer who did not vote on it",
    "audit": "no gold label is flagged for an audit, or you voted on every flagged one",
}

EXPORTS = {  # choice -> (what, format, file suffix)
    "labels": ("labels", "csv", ".csv"),
    "labels_mertools": ("labels", "mertools", ".npz"),
    "decisions": ("decisions", "csv", ".csv"),
    "predictions": ("predictions", "csv", ".csv"),
    "gold_changes": ("gold_changes", "csv", ".csv"),
}


def default_presets() -> dict[str, Path]:
    """The training presets shipped in configs/, by name."""
    return presets()


# The login of the request being served: set by the app (ui/app.py) around every event and API
# call when the server has logins; None otherwise.
LOGIN: ContextVar[str | None] = ContextVar("mersemi_login", default=None)
CLAIM_S = 300.0  # how long a card shown to a reviewer is held for them (renewed on each show)
CLAIM_SCAN = 20  # queue entries tried, from the offset on, for one not held by another reviewer


@dataclass(frozen=True)
class Snapshot:
    """What one request reads once and passes down: the current round, its arrays and the
    thresholds (class order), so that a round finishing mid-request cannot pair round N's
    queue or counts with round N+1's card."""
    round_id: int
    view: RoundView
    thresholds: list[float]




class AppActions:
    """One project's actions, shared by every browser session and API client of a server."""

    def __init__(self, project: Project, presets: dict[str, Path] | None = None, nproc: int = 1) -> None:
        self.project = project
        self.training = TrainingActions(project, presets or default_presets(), nproc)
        self.votes = VoteActions(project)
        self.clips = ClipShelf()  # the only files the server serves: copies of the cards' clips
        # Set by the app when the server has logins: every action then records the login of
        # the request (LOGIN) as its reviewer, never a name the client sends.
        self.logins = False
        self.claim_s = CLAIM_S
        self.server = this_process()                         # how this server's claims name it
        project.store.claims.release_dead_servers(dead_on_this_host)   # the cards a killed server still held

    def endpoint(self, name: str) -> Callable[..., dict]:
        """The action behind the API endpoint `name`: a training one (TrainingActions.ENDPOINTS)
        is `self.training`'s, a vote one (VoteActions.ENDPOINTS) `self.votes`'s, any other this
        object's."""
        owner = (self.training if name in TrainingActions.ENDPOINTS else
                 self.votes if name in VoteActions.ENDPOINTS else self)
        return getattr(owner, name)

    # ------------------------------------------------------------------ overview
    @refusals
    def status(self) -> dict:
        """Project path, sample counts, classes, current round, whether a round trains."""
        s = self.project.status()
        return {"ok": True, "project": s["project"], "classes": s["classes"],
                "samples": s["samples"], "labeled_per_class": s["labeled_per_class"],
                "current_round": s["current_round"], "rounds": len(s["rounds"]),
                "training": self.training.is_running()}

    # ------------------------------------------------------------------ thresholds
    @refusals
    def candidate_counts(self) -> dict:
        """Per class at the stored thresholds: threshold, undecided candidates, expected
        precision with its OOF support, the pool labels in force by source (verified,
        relabeled, labeled, pseudo) and the rejections."""
        snap = self._snapshot()
        return {"ok": True, "round": snap.round_id, "classes": self._table(snap)}

    @refusals
    def set_thresholds(self, thresholds: dict, reviewer: str = "") -> dict:
        """Set some or all class thresholds (class -> number in [0, 1]) as the reviewer's own:
        the policy after a round leaves them alone until the reviewer releases them. All are
        checked before any is written. Returns the thresholds and the per-class table."""
        values = mapping(thresholds, "thresholds")
        by = self._reviewer(reviewer)
        self.project.set_thresholds(values, by=by)
        return self._thresholds_result()

    @refusals
    def release_thresholds(self, classes: list, reviewer: str = "") -> dict:
        """Let the policy set these classes' thresholds after the coming rounds (["all"]: every
        class); their values stay until then."""
        if not isinstance(classes, list) or not classes:
            raise ProjectError(f"classes: give a list of class names (or [\"all\"]), got {shown(classes)}")
        names = [text(c, "class") for c in classes]
        released = self.project.release_thresholds(names, by=self._reviewer(reviewer))
        return self._thresholds_result() | {"released": released,
                                            "message": f"the policy sets {', '.join(released)} after the next round"}

    @refusals
    def threshold_history(self, limit: int = 200) -> dict:
        """Threshold changes, newest first: class, threshold, set_by, set_at, round (the round
        whose policy step made it), policy_may_set; and every class's owner now."""
        limit = int(number(limit, "limit", low=1, high=100_000, integer=True))
        return {"ok": True, "changes": self.project.threshold_history(limit),
                "owners": self.project.threshold_owners()}

    @refusals
    def suggest(self, target: float, reviewer: str = "") -> dict:
        """Set each class to the lowest threshold whose expected precision reaches `target`
        (recorded as the reviewer's, through Suggest); classes that cannot reach it keep their
        threshold and are listed in `unreachable`."""
        target = number(target, "target precision", 0.0, 1.0)
        by = self._tool(Tool.SUGGEST, reviewer)
        suggested = suggest_thresholds(self.project, target)
        reachable = {c: v for c, v in suggested.items() if v is not None}
        if reachable:
            self.project.set_thresholds(reachable, by=by)
        unreachable = [c for c, v in suggested.items() if v is None]
        result = self._thresholds_result()
        result["unreachable"] = unreachable
        result["message"] = f"set {len(reachable)} of {len(suggested)} classes to reach precision {target:g}"
        if unreachable:
            result["message"] += f"; cannot reach it (left as is): {', '.join(unreachable)}"
        return result

    @refusals
    def paper_preset(self, reviewer: str = "") -> dict:
        """The paper's thresholds (neutral/angry/happy/sad 0.99, worried/surprise 0.85), recorded
        as the reviewer's, through the preset."""
        self.project.set_thresholds(paper_preset(self.project), by=self._tool(Tool.PAPER_PRESET, reviewer))
        return self._thresholds_result()

    def _thresholds_result(self) -> dict:
        snap = self._snapshot(required=False)
        th = dict(zip(self.project.classes, snap.thresholds)) if snap else self.project.thresholds()
        out = {"ok": True, "thresholds": th}
        if snap is not None:
            out["classes"] = self._table(snap)
        return out

    def _table(self, snap: Snapshot) -> list[dict]:
        return class_table(self.project, dict(zip(self.project.classes, snap.thresholds)), view=snap.view)

    # ------------------------------------------------------------------ review
    @refusals
    def next_candidate(self, cls: str = "all", min_confidence: float = 0.0, offset: int = 0,
                       reviewer: str = "", kind: str = "") -> dict:
        """The card at `offset` in the review queue `kind` (service/review.py: "" = DEFAULT_QUEUE,
        label / verify / both), filtered to class `cls` or "all" and confidence >=
        min_confidence; the card says its kind and why it is there. With a
        `reviewer` (the login, when the server has logins) the card is held for them for
        claim_s seconds, and cards held by other reviewers are left out, so that reviewers
        working at once get different cards."""
        cls = self._class_filter(cls)
        min_confidence = number(min_confidence, "min_confidence", 0.0, 1.0)
        offset = int(number(offset, "offset", low=0, integer=True))
        reviewer = self._reviewer(reviewer, required=False)
        kind = self._queue_kind(kind)
        snap = self._snapshot()
        limit = CLAIM_SCAN if reviewer else 1
        page, total = self._page(snap, cls, min_confidence, offset, limit, reviewer, kind)
        if total and offset >= total:  # past the end (the queue shrank): its last card
            offset = total - 1
            page, _ = self._page(snap, cls, min_confidence, offset, limit, reviewer, kind)
        if reviewer and page:
            # Another reviewer may have claimed a card since the queue was read: the first one
            # still free is held, in one write transaction.
            held = self.project.store.claims.take_first([c.sample_id for c in page], reviewer, self.claim_s,
                                                        server=self.server, adjudicate=kind == QueueKind.ADJUDICATE)
            skipped = [c.sample_id for c in page].index(held) if held is not None else 0
            page = [c for c in page if c.sample_id == held]
            offset += skipped
        card = self._card(page[0]) if page else None
        return {"ok": True, "round": snap.round_id, "offset": offset, "total": total, "candidate": card,
                "message": None if card else EMPTY_QUEUE[kind]
                if not total else "every card left in this filter is on another reviewer's screen"}

    def _page(self, snap: Snapshot, cls: str, min_confidence: float, offset: int, limit: int,
              reviewer: str | None, kind: str = QueueKind.VERIFY) -> tuple[list, int]:
        return queue_page(self.project, kind, cls, min_confidence, offset, limit,
                          reviewer=reviewer or None, view=snap.view, thresholds=snap.thresholds)

    @staticmethod
    def _queue_kind(kind: str) -> str:
        kind = text(kind, "kind", required=False) or DEFAULT_QUEUE
        if kind not in tuple(QueueKind):
            raise ProjectError(f"kind: must be one of {', '.join(QueueKind)}, got {shown(kind)}")
        return kind

    def _card(self, c) -> dict:
        classes = self.project.classes
        path, kind = media_file(self.project, c.media)  # the importer's media kinds, one list
        return {"name": c.name, "kind": c.kind, "reason": c.reason, "text": c.text,
                "predicted": classes[c.predicted],
                "confidence": round(float(c.confidence), 6),
                "probs": {name: round(float(p), 6) for name, p in zip(classes, c.probs)},
                "media": str(self.clips.serve(path)) if path else None, "media_kind": kind,
                "votes": list(c.votes), "gold": None if c.gold is None else classes[c.gold]}

    @refusals
    def decide(self, name: str, action: str, label: str = "", reviewer: str = "") -> dict:
        """Record accept / reject / relabel (label names the class) on a candidate of the current
        round; committed to the database before this returns. `replaced` lists the decision in
        force that this one replaces (another reviewer's, perhaps)."""
        name = text(name, "name")
        action = text(action, "action").lower()
        label = text(label, "label", required=False)  # not vocab: the argument's name
        reviewer = self._reviewer(reviewer)
        out = self.project.decide([DecisionRequest(name, action, label or None)], reviewer, source="decide",
                                  respect_claims=True)
        as_accept = name in out.get("relabel_as_accept", ())
        if as_accept:  # relabel to the predicted class: the service recorded the accept it is
            action = Action.ACCEPT
        label_out = label if action in (Action.RELABEL, Action.LABEL) else None
        message = _decision_message(name, action, label_out, out["replaced"])
        vote = out.get("votes", {}).get(name)
        if vote is not None:
            message += f" ({vote['purpose']} card: {vote['votes']} vote(s)" + \
                (f" of {vote['needed']}, {vote['state']})" if vote["purpose"] != VotePurpose.PROBE else ")")
        if as_accept:
            message += f" ({label} is the predicted class: a relabel to it is recorded as an accept)"
        return {"ok": True, "name": name, "action": action, "label": label_out,
                "round": out["round"], "reviewer": reviewer, "replaced": out["replaced"],
                "relabel_as_accept": as_accept, "vote": vote, "message": message}

    @refusals
    def undo(self, reviewer: str = "") -> dict:
        """Take back the reviewer's latest decision (or accept-all batch)."""
        reviewer = self._reviewer(reviewer)
        ids = self.project.store.decisions.undo_last(reviewer)
        names = self.project.store.samples.names(ids)
        undone = [names[i] for i in ids]
        return {"ok": True, "undone": undone, "sample_ids": ids,
                "message": f"undid {len(undone)} decision(s): {', '.join(undone[:5])}"
                           + (" ..." if len(undone) > 5 else "") if undone
                           else f"nothing to undo for {reviewer}"}

    def position_of(self, sample_id: int, cls: str, min_confidence: float, reviewer: str = "",
                    kind: str = "") -> int | None:
        snap = self._snapshot(required=False)
        if snap is None:
            return None
        return queue_position(self.project, sample_id, cls, min_confidence, kind=self._queue_kind(kind),
                              reviewer=reviewer or None, view=snap.view, thresholds=snap.thresholds)

    def position_of_name(self, name: str, cls: str, min_confidence: float, kind: str = "",
                         reviewer: str = "") -> int | None:
        """Where a sample named `name` stands in a queue now, as `reviewer` sees it (None: not in
        it, or no round)."""
        found = self.project.store.samples.by_name([name]).get(name) if isinstance(name, str) else None
        return None if found is None else self.position_of(found[0], cls, min_confidence, reviewer, kind=kind)

    @refusals
    def accept_all(self, cls: str = "all", min_confidence: float = 0.0, reviewer: str = "",
                   expected: int = -1) -> dict:
        """Accept every candidate in the filter. Two steps: without `expected` (or with a count
        that no longer matches) it only returns `count` and writes nothing; called again with
        expected=count it accepts them as one batch (one undo takes it back)."""
        cls = self._class_filter(cls)
        min_confidence = number(min_confidence, "min_confidence", 0.0, 1.0)
        reviewer = self._reviewer(reviewer)
        expected = int(number(expected, "expected", low=-1, integer=True))
        snap = self._snapshot()
        # Cards on another reviewer's screen are theirs to decide: left out here too.
        page, count = self._page(snap, cls, min_confidence, 0, 0, reviewer)
        if count == 0:
            raise ProjectError("no undecided candidates pass the thresholds in this filter")
        if expected != count:
            return refused(f"{count} candidates would be accepted; confirm with expected={count}",
                           Refusal.CONFIRM) | {"count": count, "needs_confirmation": True}
        page, _ = self._page(snap, cls, min_confidence, 0, count, reviewer)
        requests = [DecisionRequest(c.name, Action.ACCEPT) for c in page]
        out = self.project.decide(requests, reviewer, source="accept all", round_id=snap.round_id,
                                  respect_claims=True)
        return {"ok": True, "count": out["recorded"], "round": out["round"], "replaced": out["replaced"],
                "message": f"accepted {out['recorded']} candidates"}

    def _reviewer(self, reviewer, required: bool = True) -> str:
        """The reviewer an action records. With logins, the request's login: a client may
        leave the name empty or send its own login, and is refused any other name."""
        name = text(reviewer, "reviewer", required=False, max_chars=MAX_REVIEWER)
        login = LOGIN.get()
        if self.logins or login is not None:
            if not login:
                raise ProjectError("log in first: this server records every action under its login")
            if name and name != login:
                raise ProjectError(f"reviewer: you are logged in as {shown(login)} and act under that name "
                                   f"only, not as {shown(name)}")
            return login
        name = person(name, required=False)
        if not name and required:
            raise ProjectError("enter your reviewer name first: every decision records who made it")
        return name

    def _tool(self, what: str, reviewer: str = "") -> str:
        """Who set thresholds the tool computed at a person's request: the tool and the person
        (the login with logins), e.g. "suggest (ann)"; the tool alone when no one is named."""
        name = self._reviewer(reviewer, required=False)
        return f"{what} ({name})"[:MAX_REVIEWER] if name else str(what)   # the column's width

    @overload
    def _snapshot(self, required: Literal[True] = True) -> Snapshot: ...

    @overload
    def _snapshot(self, required: bool) -> Snapshot | None: ...

    def _snapshot(self, required: bool = True) -> Snapshot | None:
        """The current round, its arrays and the thresholds, read once for this request."""
        rnd = self.project.store.rounds.current()
        if rnd is None:
            if required:
                raise NoRound("no finished round yet: train round 0 on the Train tab first")
            return None
        return Snapshot(rnd.id, round_view(self.project, rnd.id), self.project.store.thresholds.values())

    def _class_filter(self, cls) -> str:
        """A class name (checked against the project's) or "all"."""
        cls = text(cls, "cls", required=False) or "all"
        if cls != "all":
            self.project.class_id(cls)
        return cls

    # ------------------------------------------------------------------ lifecycle
    def shutdown(self) -> None:
        """The server is stopping: a round training in this process will not finish, so mark it
        failed now (its predictions were never written; the previous round stays in force)."""
        self.training.stop()
        self.project.close()
        self.clips.close()

    # ------------------------------------------------------------------ what a page polls and shows
    @refusals
    def changes(self) -> dict:
        """Marks that change with every write a page shows (decisions, thresholds, rounds, the
        round in force, the samples) and with a round's training (every second while one runs,
        here or elsewhere): a page polls this and redraws only what changed."""
        self.project.mark_dead_rounds_failed()  # a round whose process was killed stops showing "running"
        training = self.training.training_status().get("version")
        return {"ok": True, "training": training} | self.project.store.change_marks()

    @refusals
    def histograms(self) -> dict:
        """Per class, the current round's pool confidences predicted as that class in bins over
        [1/C, 1]: edges; undecided samples below the class's threshold (`below`) and at or above
        it (`candidates`); `decided` samples apart."""
        snap = self._snapshot()
        undecided = open_mask(self.project, snap.view)
        out = []
        for c, name in enumerate(self.project.classes):
            edges, below, candidates, decided = split_histogram(snap.view, c, snap.thresholds[c], undecided)
            out.append({"class": name, "threshold": snap.thresholds[c], "edges": [round(float(e), 6) for e in edges],
                        "below": below.tolist(), "candidates": candidates.tolist(), "decided": decided.tolist()})
        return {"ok": True, "round": snap.round_id, "classes": out}

    @refusals
    def decisions(self, sample: str = "", reviewer: str = "", cls: str = "all", action: str = "",
                  in_force: bool = False, limit: int = 100, offset: int = 0) -> dict:
        """A page of the decision log, newest first (`sample` part of a name, `reviewer`, `cls`
        a class named or predicted, `action`, `in_force`): rows with name, action, label,
        predicted, source, card, confidence, reviewer, time, in_force; `total`; and per reviewer
        the decisions made and those in force."""
        found = find_decisions(self.project, text(sample, "sample", required=False),
                               text(reviewer, "reviewer", required=False, max_chars=MAX_REVIEWER),
                               self._class_filter(cls), text(action, "action", required=False),
                               flag(in_force, "in_force"), int(number(limit, "limit", 1, 1000, integer=True)),
                               int(number(offset, "offset", low=0, integer=True)))
        return {"ok": True, "reviewers": reviewer_counts(self.project)} | found

    @refusals
    def review_check(self) -> dict:
        """Per class the model predicted: verify cards people decided, how many they accepted,
        the accepted share with its 95 % interval, the precision the model claimed for those cards
        and whether the claim lies inside the interval."""
        return {"ok": True, "classes": review_check(self.project)}

    @refusals
    def sample_card(self, name: str) -> dict:
        """Any pool sample's card in the current round (a past decision's sample, say) and the
        decision in force on it; a decision on it replaces that one."""
        snap = self._snapshot()
        card, decision = sample_card(self.project, text(name, "name"))
        return {"ok": True, "round": snap.round_id, "candidate": self._card(card), "decision": decision}

    # ------------------------------------------------------------------ export
    @refusals
    def export(self, what: str = "labels") -> dict:
        """Write an export under the project's exports/ folder: labels (CSV), labels_mertools
        (label-6way.npz), decisions (CSV) or predictions (CSV). Returns its path and rows."""
        what = text(what, "what")
        if what not in EXPORTS:
            raise ProjectError(f"what: one of {', '.join(EXPORTS)}, got {shown(what)}")
        kind, fmt, suffix = EXPORTS[what]
        folder = self.project.root / "exports"
        folder.mkdir(exist_ok=True)
        out = _fresh_path(folder, f"{what}-{time.strftime('%Y%m%d-%H%M%S')}", suffix)
        result = write_export(self.project, kind, out, fmt)
        # not "path": gradio_client would take a dict with "path" for a file to download
        return {"ok": True, "what": what, "file": str(Path(result["path"]).resolve()), "rows": result["rows"]}


def _fresh_path(folder: Path, stem: str, suffix: str) -> Path:
    path, n = folder / f"{stem}{suffix}", 2
    while path.exists():
        path, n = folder / f"{stem}-{n}{suffix}", n + 1
    return path


def _decision_message(name: str, action: str, label: str | None, replaced: list[dict]) -> str:
    done = {"accept": "accepted", "reject": "rejected", "relabel": f"relabeled as {label}",
            "label": f"labeled {label}"}[action]
    msg = f"{name}: {done}"
    for r in replaced:
        what = r["action"] + (f" ({r['label']})" if r["label"] else "")
        msg += f"; replaces {r['reviewer']}'s {what} of {r['at']}"
    return msg
