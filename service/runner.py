"""The app's background training: one round at a time in a thread, with progress and a log
that the page polls. No Gradio here, so it can be tested and reused without a server.
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

from ..engine.errors import MersemiError

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


def train_in_child(root: Path, config_file: Path, config_name: str, auto_accept: bool,
                   progress: Callable[[str, float], None], store, on_start=None) -> dict:
    """Train the next round of the project at `root` in a child process at lower priority
    (`python -m mersemi.service.runner`), so that the server answering the reviewers keeps its
    cores; its progress is read from the store, where the round records it. Returns the
    round's summary; raises RuntimeError with the child's last line when it fails."""
    cmd = [sys.executable, "-m", "mersemi.service.runner", str(root), str(config_file), config_name]
    cmd += ["--auto-accept"] * auto_accept
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, GRADIO_ANALYTICS_ENABLED="False"),
                             preexec_fn=lambda: os.nice(NICE))
    if on_start is not None:
        on_start(child)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(child.stdout.read() if child.stdout else ""), daemon=True)
    reader.start()
    while child.poll() is None:
        time.sleep(0.5)
        try:
            running = store.rounds.unfinished()
        except MersemiError:   # the database away for a moment: progress only; the child's outcome decides
            continue
        if running and running[0].progress is not None:
            progress(running[0].progress_message or "training", running[0].progress)
    reader.join()
    err = (child.stderr.read() if child.stderr else "").strip()
    lines = [line for line in "".join(out).splitlines() if line.startswith("{")]
    if child.returncode != 0 or not lines:
        raise RuntimeError(err.splitlines()[-1] if err else f"the training process ended with {child.returncode}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    """`python -m mersemi.service.runner ROOT CONFIG NAME [--auto-accept]`: one round, its
    summary as a JSON line; an error is one line on stderr, exit 1."""
    import argparse
    import signal

    from ..engine.config import load_config
    from ..engine.errors import one_line
    from .project import Project
    from .rounds import run_round

    p = argparse.ArgumentParser(prog="python -m mersemi.service.runner")
    p.add_argument("root", type=Path)
    p.add_argument("config", type=Path)
    p.add_argument("name")
    p.add_argument("--auto-accept", action="store_true")
    args = p.parse_args(argv)
    # The server stops its training process with SIGTERM: the round is marked failed, saying so.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("interrupted: the server stopped"))
    try:
        with Project.open(args.root) as project:
            summary = run_round(project, load_config(args.config), config_name=args.name,
                                auto_accept=args.auto_accept)
    except MersemiError as e:
        print(one_line(e), file=sys.stderr)
        return 1
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
