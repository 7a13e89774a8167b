"""Progress reporting. The engine reports through a plain callback `(message, fraction)`;
this adapter shows it as a tqdm bar in a terminal (the app feeds its own progress bar) and,
where asked, as one line per phase when stderr is not a terminal (a log, a CI job)."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable

from tqdm import tqdm

ProgressFn = Callable[[str, float], None]


def phase_of(message: str) -> str:
    """The phase a message belongs to: its text before the first colon
    ("fold 2/5: epoch 7" -> "fold 2/5")."""
    return message.split(":", 1)[0].strip()


class TqdmProgress:
    """Context manager yielding a ProgressFn that drives one tqdm bar from 0 to 100 %.

    `phase_lines`: when the bar is off because stderr is no terminal, print a line per phase
    instead ("train: fold 2/5 (35 %, 12 s)"), so that a long command is never silent."""

    def __init__(self, desc: str, disable: bool | None = None, phase_lines: bool = False) -> None:
        self.desc = desc
        self.disable = disable
        self.phase_lines = phase_lines
        self.bar: tqdm | None = None
        self.seen: set[str] = set()   # folds trained side by side interleave their phases
        self.t0 = time.monotonic()

    def __enter__(self) -> ProgressFn:
        # disable=None: tqdm shows the bar only on a terminal, so scripts and logs stay clean.
        self.bar = tqdm(total=100, desc=self.desc, disable=self.disable, leave=True,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")
        self.t0 = time.monotonic()
        return self.update

    def update(self, message: str, fraction: float) -> None:
        assert self.bar is not None
        target = round(100 * min(max(fraction, 0.0), 1.0), 1)
        if self.bar.disable:
            self._phase_line(message, target)
            return
        if target > self.bar.n:
            self.bar.update(target - self.bar.n)
        self.bar.set_postfix_str(message, refresh=True)

    def _phase_line(self, message: str, percent: float) -> None:
        phase = phase_of(message)
        if not self.phase_lines or phase in self.seen:
            return
        self.seen.add(phase)
        print(f"{self.desc}: {phase} ({percent:.0f} %, {time.monotonic() - self.t0:.0f} s)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        assert self.bar is not None
        self.bar.close()
