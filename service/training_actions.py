"""The app's training actions (`TrainingActions`, held by `AppActions` as `actions.training`,
service/actions.py): start the next round with `mersemi train` in a child process, follow it
wherever it was started, the presets, the auto-accept preview and the rounds so far. It owns what training
here needs: the runner, the child process, the log of rounds trained elsewhere. No Gradio
here; type hints are real (no `from __future__ import annotations`): `gr.api` reads them to
describe the endpoints."""
import functools
import socket
import subprocess
import time
from collections import deque
from pathlib import Path

from ..db.models import Round, as_utc
from ..engine.config import Config, ConfigError, load_config
from ..engine.errors import MersemiError, shown
from ..engine.vocab import RoundStatus

from .errors import ProjectError
from .project import Project, round_is_dead
from .refusals import refusals
from .review import auto_accept_preview, round_view
from .round_summary import RoundSummary
from .runner import LOG_LINES, TrainingRunner, train_in_child
from .values import flag, text


class TrainingActions:
    """One project's training endpoints (ENDPOINTS), shared by every browser session and API
    client of a server, and the round training here."""

    ENDPOINTS = ("auto_accept_preview", "train_round", "training_status", "round_history")

    def __init__(self, project: Project, presets: dict[str, Path], nproc: int = 1) -> None:
        self.project = project
        self.presets = presets
        self.nproc = nproc                                   # `mersemi train --nproc` of its rounds
        self.runner = TrainingRunner()
        self._outside_log: deque = deque(maxlen=LOG_LINES)   # progress of rounds trained elsewhere
        self._child: subprocess.Popen | None = None          # the process training the round started here

    def is_running(self) -> bool:
        """Whether a round started here is training."""
        return self.runner.is_running()

    def version(self) -> str:
        """Changes with every update of the training started here (what a page polls)."""
        return self.runner.snapshot()["version"]

    def stop(self) -> None:
        """The server is stopping: a round training in this process will not finish, so mark it
        failed now (its predictions were never written; the previous round stays in force)."""
        child = self._child
        if self.runner.is_running() and child is not None and child.poll() is None:
            child.terminate()           # the training process marks its round failed on the way out
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
            for r in self.project.store.rounds.unfinished():
                if r.pid == child.pid:
                    self.project.store.rounds.fail(r.id, "interrupted: the server stopped")

    @refusals
    def train_round(self, config: str = "default", auto_accept: bool = False, wait: bool = False) -> dict:
        """Start training the next round in the background (one at a time). With wait=True,
        return when it ends, with its summary."""
        config = text(config, "config")
        auto = flag(auto_accept, "auto_accept")
        wait = flag(wait, "wait")
        self._preset(config)   # a bad preset is refused here, in one line, not in the training process
        self.project.mark_dead_rounds_failed()
        busy = self.project.store.rounds.unfinished()
        if self.runner.is_running() or busy:
            which = f"round {busy[0].id}" if busy else "a round"
            raise ProjectError(f"{which} is already training; wait for it to finish")
        job = functools.partial(self._train_job, self.presets[config], auto)
        if not self.runner.start(job, f"training next round ({config}{', auto-accept' if auto else ''})"):
            raise ProjectError("a round is already training; wait for it to finish")
        if not wait:
            return {"ok": True, "started": True, "message": "training started"}
        self.runner.wait()
        snap = self.runner.snapshot()
        if snap["error"]:
            return {"ok": False, "error": f"training failed: {snap['error']}"}
        return {"ok": True, "started": True, "round": snap["result"], "message": "training done"}

    def _preset(self, config) -> Config:
        config = text(config, "config")
        if config not in self.presets:
            raise ProjectError(f"config: unknown preset {shown(config)}; presets are {', '.join(self.presets)}")
        try:
            return load_config(self.presets[config])
        except ConfigError as e:
            raise ProjectError(f"config {shown(config)}: {e}") from None

    def _train_job(self, config_file: Path, auto_accept: bool, progress) -> dict:
        try:
            summary = train_in_child(self.project.root, config_file, auto_accept, self.nproc, progress,
                                     self.project.store, on_start=lambda child: setattr(self, "_child", child))
        except RuntimeError:
            # The child's last word is lost when the database went away after its round was
            # stored: the page says what the store holds, not what the child could say.
            stored = self._stored_round()
            if stored is None or stored.status != RoundStatus.DONE:
                raise
            summary = self.project.round(stored.id).with_thresholds_now(self.project.thresholds()).to_json()
        self.warm()
        return summary

    def _stored_round(self) -> Round | None:
        """The latest round the last training process recorded, as the store holds it; None when
        it recorded none or the store cannot be read."""
        child, host = self._child, socket.gethostname()
        try:
            mine = [r for r in self.project.store.rounds.all()
                    if child is not None and r.pid == child.pid and r.host == host]
        except MersemiError:
            return None
        return mine[-1] if mine else None

    def warm(self) -> None:
        """Load the current round's arrays for the per-class table and histograms now (about 2 s
        at 115k pool predictions), so that the first page to ask does not wait for them."""
        try:
            round_view(self.project)
        except MersemiError:  # no finished round yet, or the store away for a moment: nothing to load
            pass

    @refusals
    def training_status(self) -> dict:
        """Progress of the round training now, wherever it was started (this server, the command
        line, another server): read from the store, its time on the store's clock from the round's
        start; else of the latest run started here (before its round exists: the training process
        starting; once it ended, the time its round took): running, round, where ("here" |
        "elsewhere"), message, fraction, elapsed_s, log lines, error, the finished round's
        summary, and `version` (changes with every update, and every second while running)."""
        snap = self.runner.snapshot()
        # A round whose process is gone (a failure it could not record) is not training: the
        # next write marks it failed, as `status` says without writing.
        host, now = socket.gethostname(), self.project.store.db.clock()
        unfinished = [r for r in self.project.store.rounds.unfinished() if not round_is_dead(r, host, now)]
        if unfinished:
            r = unfinished[0]
            here = snap["running"]
            started = as_utc(r.started_at) if r.started_at is not None else None
            elapsed = None if started is None else round((now - started).total_seconds(), 1)
            doing = r.progress_message or "starting"
            by = "" if here else f" (started by process {r.pid} on {r.host})"
            message = f"round {r.id}{by}: {doing}"
            if not here and (not self._outside_log or self._outside_log[-1][1] != message):
                self._outside_log.append((time.strftime("%H:%M:%S"), message))
            log = snap["log"] if here else [f"{t}  {m}" for t, m in self._outside_log]
            return {"ok": True, "running": True, "round": r.id, "where": "here" if here else "elsewhere",
                    "message": message, "fraction": round(float(r.progress or 0.0), 4), "elapsed_s": elapsed,
                    "log": log, "error": None, "result": None,
                    "version": f"{r.id}:{r.progress}:{r.progress_message}:{int(elapsed or 0)}"}
        out = {"ok": True, "round": None, "where": "here"} | snap
        if snap["running"]:   # no round of this run in the store (yet, or any more)
            stage = "finishing" if snap["fraction"] > 0 else "starting the training process"
            return out | {"message": f"{snap['message']}: {stage}",
                          "version": f"{snap['version']}:{int(snap['elapsed_s'] or 0)}"}
        result = snap["result"] or {}
        return out | {"elapsed_s": result.get("wall_s", snap["elapsed_s"])}   # the round's own time

    @refusals
    def auto_accept_preview(self, config: str = "default") -> dict:
        """What `train` with auto-accept would accept now with a preset: per class count and
        expected precision, the total, and a note when nothing would be."""
        return {"ok": True} | auto_accept_preview(self.project, self._preset(config))

    def rounds(self) -> list[RoundSummary]:
        """Every round, oldest first (what the Train tab shows)."""
        return self.project.rounds()

    @refusals
    def round_history(self) -> dict:
        """Every round: id, status, started_at, composition, CV / test WAF, per-class F1,
        accepted pseudo-labels per class, wall time, error."""
        return {"ok": True, "rounds": [r.to_json() for r in self.rounds()], "training": self.runner.is_running()}
