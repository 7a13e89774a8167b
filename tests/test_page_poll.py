"""The page's poll (ui/app.py) on a real SQLite project, without a browser: each follower
draws when a part of the store it follows changed; a tab's followers wait while it is off
screen and then draw what they missed, so a change is never lost to a page that looked at
another tab (or whose tab switch was still on its way)."""
from __future__ import annotations

import pytest

from app_fixtures import make_review_project
from mersemi.service.actions import AppActions
from mersemi.ui.app import poll
from mersemi.ui.follow import Follower


@pytest.fixture
def app(tmp_path):
    project = make_review_project(tmp_path / "proj")
    yield AppActions(project)
    project.close()


class Page:
    """The poll as one page runs it: its seen marks carried from call to call, what drew."""

    def __init__(self, app: AppActions) -> None:
        self.app, self.seen, self.drawn = app, None, []
        self.followers = [Follower(("decisions",), lambda: self.draw("counts"), ["counts"]),
                          Follower(("decisions",), lambda: self.draw("log"), ["log"], tab="decisions"),
                          Follower(("thresholds", "round"), lambda: self.draw("sliders"), ["sliders"],
                                   tab="thresholds")]

    def draw(self, what: str) -> dict:
        self.drawn.append(what)
        return {what: "drawn"}

    def tick(self, tab: str) -> list[str]:
        self.drawn = []
        out = poll(self.app, "seen", self.followers, self.seen, tab)
        if "__type__" not in out["seen"]:                               # not gr.skip(): new marks
            self.seen = out["seen"]
        return sorted(self.drawn)


def test_each_follower_draws_what_changed_and_an_off_screen_tab_catches_up(app):
    page = Page(app)
    assert page.tick("review") == ["counts"]                           # the load draws what is on screen
    assert page.tick("review") == []                                   # nothing changed
    assert app.decide("u49", "accept", "", "ann")["ok"]
    assert page.tick("review") == ["counts"]                           # the Decisions tab is off screen
    assert app.set_thresholds({"joy": 0.7}, "ann")["ok"]
    assert page.tick("review") == []
    assert page.tick("decisions") == ["log"]                           # on screen: all it has not drawn
    assert page.tick("decisions") == []
    assert page.tick("thresholds") == ["sliders"]                      # and the threshold
