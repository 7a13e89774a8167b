"""How the page follows the store: each tab declares, as `Follower`s, what it redraws when a
part of the store changed; the app's poll (ui/app.py) reads the store's marks once a second and
draws, in that one event, every follower of a part that changed. No Gradio events here."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

# The parts of the store a page follows, each moved by some marks of `AppActions.changes`.
PARTS = {"thresholds": ("thresholds",),            # a threshold set, here, elsewhere or by the policy
         "decisions": ("decisions",),              # a decision recorded or undone
         "round": ("current_round", "samples"),    # the round in force, the samples
         "training": ("training", "rounds")}       # a round's progress, here or elsewhere (each second)
MARKS = tuple(m for marks in PARTS.values() for m in marks)


@dataclass(frozen=True)
class Follower:
    """`draw(*values of inputs)` returns new values of some `outputs` (a dict keyed by component)
    whenever one of the parts in `on` changed; with a `tab`, only while that tab is on screen
    (a tab draws itself when selected, and every part on the page's load)."""
    on: tuple[str, ...]
    draw: Callable[..., dict]
    outputs: Sequence
    inputs: Sequence = field(default_factory=tuple)
    tab: str | None = None


def on_screen(tab: str, followers: list[Follower]) -> list[Follower]:
    """The followers, drawing only while `tab` is the tab on screen."""
    return [replace(f, tab=tab) for f in followers]


def moved(seen: dict | None, now: dict) -> set[str]:
    """The parts whose marks differ between what the page saw and the store now (all of them
    when the page has seen nothing yet)."""
    old = seen or {}
    return {part for part, marks in PARTS.items() if any(now[m] != old.get(m) for m in marks)}
