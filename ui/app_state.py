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


# ---------------------------------------------------------------------- review page helpers
# Pure functions over a Project that the review page needs and the service layer does not
# offer yet. No Gradio here.

import math  # noqa: E402


def decisions_by_predicted(project) -> dict[str, dict[int, int]]:
    """Decisions in force, counted under ONE meaning: the class the model predicted for the
    sample in the round the decision was made on. action -> {class id: count}; a relabel is
    counted under the class it was relabeled *from*."""
    from sqlalchemy import and_, func, select

    from ..db.models import CurrentDecision, Decision, Prediction

    out: dict[str, dict[int, int]] = {"accept": {}, "reject": {}, "relabel": {}, "label": {}}
    with project.store.session() as s:
        q = (select(CurrentDecision.action, Prediction.predicted, func.count())
             .join(Decision, Decision.id == CurrentDecision.decision_id)
             .join(Prediction, and_(Prediction.round_id == Decision.round_id,
                                    Prediction.sample_id == CurrentDecision.sample_id))
             .group_by(CurrentDecision.action, Prediction.predicted))
        for action, predicted, n in s.execute(q):
            out.setdefault(action, {})[predicted] = n
    return out


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95 % Wilson score interval of a proportion hits/n; None when n is 0."""
    if n <= 0:
        return None
    p = hits / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)




def auto_accept_preview(project, cfg) -> dict:
    """What `train --auto-accept` with `cfg` would accept now, per class: count and expected
    precision (mean calibrated confidence of the selected samples). The selection ui/rounds.py
    makes when the round starts (review.auto_accept_selection, the same call), without
    importing the trainer (torch: seconds); nothing is written."""
    import numpy as np

    from .review import auto_accept_selection

    store, classes = project.store, project.classes
    if store.current_round() is None:
        return {"total": 0, "classes": [], "note": "no finished round yet: nothing to auto-accept"}
    st = cfg.self_training
    if not st.use_pseudo_labels:
        return {"total": 0, "classes": [], "note": "this preset trains without pseudo-labels"}
    view, sel = auto_accept_selection(project, st.balance_cap, store.thresholds())
    chosen = np.flatnonzero(sel.mask)
    pred, conf = view.pool_pred[chosen], view.pool_conf[chosen]
    rows = [{"class": name, "count": int(np.sum(pred == c)),
             "expected_precision": float(conf[pred == c].mean()) if np.any(pred == c) else None}
            for c, name in enumerate(classes)]
    return {"total": int(len(chosen)), "classes": rows, "note": ""}


