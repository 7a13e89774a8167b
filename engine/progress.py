"""Progress reporting. The engine reports through a plain callback `(message, fraction)`;
this adapter shows it as a tqdm bar in a terminal (the app feeds its own progress bar)."""
from __future__ import annotations

from collections.abc import Callable

from tqdm import tqdm

ProgressFn = Callable[[str, float], None]


class TqdmProgress:
    """Context manager yielding a ProgressFn that drives one tqdm bar from 0 to 100 %."""

    def __init__(self, desc: str, disable: bool | None = None) -> None:
        self.desc = desc
        self.disable = disable
        self.bar: tqdm | None = None

    def __enter__(self) -> ProgressFn:
        # disable=None: tqdm shows the bar only on a terminal, so scripts and logs stay clean.
        self.bar = tqdm(total=100, desc=self.desc, disable=self.disable, leave=True,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")
        return self.update

    def update(self, message: str, fraction: float) -> None:
        assert self.bar is not None
        target = round(100 * min(max(fraction, 0.0), 1.0), 1)
        if target > self.bar.n:
            self.bar.update(target - self.bar.n)
        self.bar.set_postfix_str(message, refresh=True)

    def __exit__(self, *exc) -> None:
        assert self.bar is not None
        self.bar.close()
