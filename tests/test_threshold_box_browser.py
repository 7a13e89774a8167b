"""A threshold is stored only when a person changes it (issue 29, point 1), in a real browser at
1366x768: a click into a threshold's box and out of it stores nothing; a value the app itself
puts in a box (another writer's, sent by the page's poll) is never stored as this reviewer's; a
refused value is refused beside its box and writes nothing, with the mouse as with the keys."""
from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from app_fixtures import db_rows, make_review_project, serve_in_process, stop_in_process, wait_until
from browser_fixtures import new_page
from mersemi.service.project import Project

pytestmark = pytest.mark.slow
expect.set_options(timeout=15_000)   # two shared CPU cores: an update can take seconds


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "proj"
    make_review_project(root).close()
    demo, url = serve_in_process(root)
    yield root, url
    stop_in_process(demo)


@pytest.fixture
def page(browser):
    context, page = new_page(browser, timeout_ms=15_000)
    yield page
    context.close()


def history(root: Path) -> list[tuple]:
    """Every threshold change, oldest first: class id, value, who."""
    return db_rows(root, "SELECT class_id, value, set_by FROM threshold_changes ORDER BY id")


def open_as(page, url: str, reviewer: str) -> None:
    page.goto(url)
    expect(page.locator("#class-table")).to_contain_text("expected precision")
    name = page.locator("#reviewer input, #reviewer textarea").first
    name.fill(reviewer)
    name.press("Enter")


def nudge_calm_up(page, root: Path) -> None:
    """A person's change to wait on: calm's slider one step up with the arrow key, stored."""
    page.locator("#threshold-0 input[type=range]").focus()
    page.keyboard.press("ArrowRight")
    wait_until(lambda: (0, pytest.approx(0.501), "ann") in history(root), 15, 0.1, "ann's calm 0.501")


def box(page, i: int):
    return page.locator(f"#threshold-{i} input[type=number]")


def note_of(page, i: int):
    """What the page says about threshold i's last change, beside its box."""
    return page.locator(f"#threshold-{i}")


def test_a_click_into_a_box_and_out_stores_nothing(page, served):
    root, url = served
    open_as(page, url, "ann")
    before = history(root)
    for i in (1, 2):
        box(page, i).click()                                  # into the box: a pointer up on it
        page.locator("#class-table").click()                  # and out of it: its blur
    nudge_calm_up(page, root)
    assert history(root) == before + [(0, pytest.approx(0.501), "ann")]
    expect(note_of(page, 0)).to_contain_text("0.501 stored as ann's")        # beside its box
    expect(page.locator("#class-table [role=row]", has_text="joy").first).to_contain_text("fixture")   # not ann's


def test_a_value_the_page_was_sent_is_never_stored_as_the_reviewers(page, served):
    root, url = served
    open_as(page, url, "ann")
    with Project.open(root) as p:
        p.set_thresholds({"anger": 0.777}, by="bob")          # another writer: the command line, say
    expect(box(page, 2)).to_have_value("0.777")               # the poll brought it
    box(page, 2).click()
    box(page, 2).press("Enter")                                # Enter on the value the page was sent
    box(page, 1).click()
    box(page, 1).press("Tab")
    nudge_calm_up(page, root)
    assert [(c, by) for c, _, by in history(root)][-2:] == [(2, "bob"), (0, "ann")]
    expect(page.locator("#class-table [role=row]", has_text="anger").first).to_contain_text("bob (kept)")


@pytest.mark.parametrize("how", ["mouse", "keys"])
def test_a_refused_value_is_refused_beside_its_box_and_writes_nothing(page, served, how):
    root, url = served
    open_as(page, url, "ann")
    before = history(root)
    for bad in ("1.5", "-0.2"):
        if how == "mouse":
            box(page, 2).click()
            box(page, 2).fill(bad)
            page.locator("#class-table").click()              # out of the box with the mouse
        else:
            box(page, 2).focus()
            box(page, 2).fill(bad)
            box(page, 2).press("Enter")
        expect(box(page, 2)).to_have_value("0.5")             # the box shows what is stored
        refusal = note_of(page, 2)
        expect(refusal).to_contain_text(f"Not stored: got {bad}")
        top = refusal.locator(".info-text").bounding_box()
        field = box(page, 2).bounding_box()
        assert top and abs(top["y"] - field["y"]) < 80, f"the refusal is not beside its box: {top} vs {field}"
    nudge_calm_up(page, root)                                  # everything before it has been answered
    assert history(root) == before + [(0, pytest.approx(0.501), "ann")]
