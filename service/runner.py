"""The app's background training: one round at a time in a thread, with progress and a log
that the page polls. No Gradio here, so it can be tested and reused without a server.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

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
            s.message = "failed" if error else "finished"
            s.fraction = s.fraction if error else 1.0
            self._log_locked(f"failed: {error}" if error else "finished")
            s.version += 1

    def _log_locked(self, line: str) -> None:
        s = self._state
        s.log.append(f"{time.strftime('%H:%M:%S')}  {line}")
