"""The app's background training: one round at a time, trained by `mersemi train` in a child
process that a thread follows in the store, with progress and a log that the page polls. No
Gradio here, so it can be tested and reused without a server.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.errors import ERROR_LINE, MersemiError

LOG_LINES = 400


@dataclass
class RunState:
    """What the page shows of the latest training run; `version` changes with every update so
    that a poller can tell cheaply whether anything is new."""
    version: int = 0
    running: bool = False
    message: str = "idle"
    fraction: float = 0.0
    started: float | None = None
    finished: float | None = None
    result: dict | None = None
    error: str | None = None
    log: deque = field(default_factory=lambda: deque(maxlen=LOG_LINES))


class TrainingRunner:
    """Runs `job(progress)` in a daemon thread; refuses a second start while one runs.

    A daemon thread so that stopping the server is never held up by training; the round it
    leaves `running` is marked failed by `AppActions.shutdown` as the server stops, or else
    when the project is next opened (its process is gone).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = RunState()
        self._thread: threading.Thread | None = None

    def is_running(self) -> bool:
        with self._lock:
            return self._state.running

    def start(self, job: Callable[[Callable[[str, float], None]], dict], title: str) -> bool:
        """Start `job` unless one is running; False when refused."""
        with self._lock:
            if self._state.running:
                return False
            self._state = RunState(version=self._state.version + 1, running=True, message=title,
                                   started=time.time())
            self._log_locked(title)
            self._thread = threading.Thread(target=self._run, args=(job,), name="mersemi-train",
                                            daemon=True)
            self._thread.start()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current run ends; False on timeout."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def snapshot(self) -> dict:
        """A JSON-friendly copy of the state."""
        with self._lock:
            s = self._state
            elapsed = None if s.started is None else round((s.finished or time.time()) - s.started, 1)
            return {"version": s.version, "running": s.running, "message": s.message,
                    "fraction": round(s.fraction, 4), "elapsed_s": elapsed, "result": s.result,
                    "error": s.error, "log": list(s.log)}

    def _run(self, job) -> None:
        try:
            result = job(self._progress)
        except BaseException as e:  # the thread must always leave the running state
            self._finish(None, str(e) or e.__class__.__name__)
            if not isinstance(e, Exception):
                raise
        else:
            self._finish(result, None)

    def _progress(self, message: str, fraction: float) -> None:
        with self._lock:
            s = self._state
            if message != s.message:  # one log line per stage, not one per batch
                self._log_locked(message)
            s.message, s.fraction = message, max(0.0, min(1.0, float(fraction)))
            s.version += 1

    def _finish(self, result: dict | None, error: str | None) -> None:
        with self._lock:
            s = self._state
            s.running, s.result, s.error, s.finished = False, result, error, time.time()
            s.message = "failed" if error else "finished"  # not vocab: a message
            s.fraction = s.fraction if error else 1.0
            self._log_locked(f"failed: {error}" if error else "finished")
            s.version += 1

    def _log_locked(self, line: str) -> None:
        s = self._state
        s.log.append(f"{time.strftime('%H:%M:%S')}  {line}")


# ---------------------------------------------------------------------- a round in a process of its own

NICE = 10   # the training process yields the cores to the server and the reviewer's browser


def train_command(root: Path, config_file: Path, auto_accept: bool, nproc: int) -> list[str]:
    """`mersemi train` as the app starts it: the one way a round is trained."""
    return ([sys.executable, "-m", "mersemi.ui.cli", "train", str(root), "--config", str(config_file), "--json"]
            + ["--auto-accept"] * auto_accept + (["--nproc", str(nproc)] if nproc > 1 else []))


def train_in_child(root: Path, config_file: Path, auto_accept: bool, nproc: int,
                   progress: Callable[[str, float], None], store, on_start=None) -> dict:
    """Train the next round of the project at `root` with `mersemi train` (`train_command`) in
    a child process at lower priority, so that the server answering the reviewers keeps its
    cores; its progress is read from the store, where the round records it. Returns the
    round's summary (`train --json`); raises RuntimeError with the child's last line when it
    fails."""
    child = subprocess.Popen(train_command(root, config_file, auto_accept, nproc), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, GRADIO_ANALYTICS_ENABLED="False"),
                             preexec_fn=lambda: os.nice(NICE))
    if on_start is not None:
        on_start(child)
    out: list[str] = []
    err: list[str] = []   # read as it comes: a full pipe would block the child
    readers = [threading.Thread(target=lambda: out.append(child.stdout.read() if child.stdout else ""), daemon=True),
               threading.Thread(target=lambda: err.append(child.stderr.read() if child.stderr else ""), daemon=True)]
    for reader in readers:
        reader.start()
    while child.poll() is None:
        time.sleep(0.5)
        try:
            running = store.rounds.unfinished()
        except MersemiError:   # the database away for a moment: progress only; the child's outcome decides
            continue
        if running and running[0].progress is not None:
            progress(running[0].progress_message or "training", running[0].progress)
    for reader in readers:
        reader.join()
    lines = [line for line in "".join(out).splitlines() if line.startswith("{")]
    if child.returncode != 0 or not lines:
        said = [line for line in "".join(err).splitlines() if line.strip()]
        raise RuntimeError(said[-1].removeprefix(ERROR_LINE) if said else
                           f"the training process ended with {child.returncode}")
    return json.loads(lines[-1])
