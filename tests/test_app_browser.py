"""The app in a real browser: Debian's Chromium driven by Playwright at 1366x768.

Screenshots of every tab go to tests/artifacts/ (gitignored) for a look at the layout.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from app_fixtures import (
    FAST_PRESET, db_rows, expected_count, make_review_project, serve_in_process, stop_in_process,
    synthetic_project,
)
from browser_fixtures import ARTIFACTS, card_events, new_page, settled
from mersemi.service.project import Project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def review_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser") / "proj"
    make_review_project(root).close()
    demo, url = serve_in_process(root)
    yield root, url
    stop_in_process(demo)


@pytest.fixture
def page(browser):
    context, page = new_page(browser, timeout_ms=20_000)
    yield page
    context.close()


def open_app(page, url: str) -> None:
    page.goto(url)
    expect(page.locator("#header-info")).to_contain_text("current round")
    expect(page.locator("#class-table")).to_contain_text("expected precision")


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def open_review(page) -> None:
    """The Review tab, once every card the page drew is back: the page load and the tab's select
    (and a reviewer name's blur) each draw one, and a key pressed before the last is back would
    have its card replaced by that older answer."""
    with card_events(page):
        open_tab(page, "Review")


def class_row(page, cls: str) -> str:
    return page.locator("#class-table [role=row]", has_text=cls).first.inner_text()


def snap(page, name: str) -> None:
    """Screenshot from the top of the page once nothing moves (the progress bar slides)."""
    page.evaluate("window.scrollTo(0, 0)")
    settled(page)
    page.screenshot(path=str(ARTIFACTS / name))


def test_app_loads_with_its_four_tabs(page, review_server):
    root, url = review_server
    open_app(page, url)
    for tab in ("Thresholds", "Review", "Train", "Export"):
        expect(page.get_by_role("tab", name=tab)).to_be_visible()
    expect(page.locator("#header-info")).to_contain_text("60 unlabeled pool")
    assert page.title() == "mersemi review"


def test_moving_a_slider_changes_the_count(page, review_server):
    root, url = review_server
    open_app(page, url)
    before, after = expected_count(2, 0.5), expected_count(2, 0.9)
    assert before != after
    expect(page.locator("#class-table [role=row]", has_text="anger").first).to_contain_text(str(before))
    page.locator("#reviewer input, #reviewer textarea").first.fill("ann")   # a threshold is someone's
    slider = page.locator("#threshold-2 input[type=range]")
    box = slider.bounding_box()
    # Drag the anger slider's thumb to 0.9 of the track; release saves and recounts.
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    expect(page.locator("#threshold-2 input[type=number]")).not_to_have_value("0.5")
    value = float(page.locator("#threshold-2 input[type=number]").input_value())
    expect(page.locator("#class-table [role=row]", has_text="anger").first).to_contain_text(
        f"{value:.3f}")
    assert f"{expected_count(2, value)}" in class_row(page, "anger")
    assert db_rows(root, "SELECT value FROM thresholds WHERE class_id = 2") == [(pytest.approx(value),)]
    snap(page, "fixture-thresholds.png")
    # Typing a value into the slider's box and leaving it does the same.
    box_input = page.locator("#threshold-2 input[type=number]")
    box_input.fill("0.5")
    box_input.press("Tab")
    expect(page.locator("#class-table [role=row]", has_text="anger").first).to_contain_text("0.500")
    assert f"{before}" in class_row(page, "anger")


def test_keyboard_review_and_undo(page, review_server):
    # The verify queue is least confident first: u49 (joy, 0.50), u48 (calm), u47 (anger), u46 ...
    root, url = review_server
    open_app(page, url)
    open_review(page)
    title = page.locator("#card-title")
    expect(title).to_contain_text("Label this")             # the default queue starts below threshold
    page.locator("#filter-kind label", has_text="verify").click()
    expect(title).to_contain_text("u49")
    page.keyboard.press("a")                                      # no reviewer name yet
    expect(page.locator("#review-message")).to_contain_text("reviewer name")
    assert db_rows(root, "SELECT count(*) FROM decisions") == [(0,)]

    reviewer = page.locator("#reviewer input, #reviewer textarea").first
    reviewer.fill("nin")
    page.keyboard.press("a")                                      # typing in a field: not a shortcut
    expect(reviewer).to_have_value("nina")
    assert db_rows(root, "SELECT count(*) FROM decisions") == [(0,)]
    title.click()                                                 # leave the field
    page.keyboard.press("a")
    expect(title).to_contain_text("u48")
    page.keyboard.press("r")
    expect(title).to_contain_text("u47")
    page.keyboard.press("1")                                      # relabel as class 1: calm
    expect(title).to_contain_text("u46")
    expect(page.locator("#review-message")).to_contain_text("relabeled as calm")
    page.keyboard.press("u")
    expect(title).to_contain_text("u47")                          # the undone candidate is back
    snap(page, "fixture-review.png")

    log = db_rows(root, "SELECT s.name, d.action, d.label, d.reviewer FROM decisions d "
                        "JOIN samples s ON s.id = d.sample_id ORDER BY d.id")
    assert log == [("u49", "accept", 1, "nina"), ("u48", "reject", 0, "nina"),
                   ("u47", "relabel", 0, "nina"), ("u47", "undo", None, "nina")]
    assert db_rows(root, "SELECT s.name, c.action FROM current_decisions c JOIN samples s "
                         "ON s.id = c.sample_id ORDER BY s.name") == [("u48", "reject"), ("u49", "accept")]
    page.keyboard.press("ArrowRight")
    expect(title).to_contain_text("u46")
    page.keyboard.press("ArrowLeft")
    expect(title).to_contain_text("u47")
    counts = page.locator("#review-counts [role=row]", has_text="joy").first
    expect(counts).to_contain_text("1")                            # joy: 1 accepted


def test_accept_all_shows_the_count_before_writing(page, review_server):
    root, url = review_server
    open_app(page, url)
    page.locator("#reviewer input, #reviewer textarea").first.fill("bob")
    open_review(page)
    expect(page.locator("#card-title")).to_contain_text("Card ")
    page.locator("#filter-kind label", has_text="verify").click()   # the candidates' queue
    expect(page.locator("#card-title")).to_contain_text("Verify this")
    before = db_rows(root, "SELECT count(*) FROM decisions")
    page.locator("#btn-accept-all").click()
    expect(page.locator("#confirm-text")).to_contain_text("Accept")
    text = page.locator("#confirm-text").inner_text()
    total = page.locator("#card-title").inner_text().split(" of ")[1].split()[0]
    assert f"Accept {total} candidates" in text
    assert db_rows(root, "SELECT count(*) FROM decisions") == before
    page.locator("#btn-cancel").click()
    expect(page.locator("#confirm-text")).to_be_hidden()
    assert db_rows(root, "SELECT count(*) FROM decisions") == before


def test_train_a_round_and_see_it_in_the_history(page, tmp_path):
    """A synthetic project with no round: train round 0 from the Train tab, then look at
    every tab of a real round (the screenshots under tests/artifacts/)."""
    synthetic_project(tmp_path / "proj", tmp_path / "data").close()
    demo, url = serve_in_process(tmp_path / "proj", presets={"fast": FAST_PRESET})
    try:
        page.goto(url)
        expect(page.locator("#header-info")).to_contain_text("none yet")
        open_tab(page, "Train")
        page.locator("#btn-train").click()
        expect(page.locator("#train-log textarea")).to_have_value(re.compile(r"training next round \(fast"))
        history = page.locator("#history")
        expect(history).to_contain_text("done", timeout=180_000)
        # the plots come with the same poll as the history: no lag behind a finished round
        expect(page.locator("#waf-plot circle")).to_have_count(2, timeout=2_000)   # CV and test
        expect(page.locator("#f1-plot circle")).not_to_have_count(0, timeout=2_000)
        expect(page.locator("#header-info")).to_contain_text("current round: 0")
        expect(page.locator("#train-progress")).to_contain_text("100%")
        with Project.open(tmp_path / "proj") as p:                       # the time shown is the round's own
            took = p.status()["rounds"][0]["wall_s"]
        expect(page.locator("#train-progress")).to_contain_text(f"· {took:.0f} s")
        snap(page, "train.png")

        open_tab(page, "Thresholds")
        expect(page.locator("#class-table")).to_contain_text("n=")
        page.locator("#btn-preset").click()
        expect(page.locator("#threshold-note")).to_contain_text("paper preset")
        expect(page.locator("#threshold-0 input[type=number]")).to_have_value("0.99")
        page.locator("#target-precision input").fill("0.6")
        page.locator("#btn-suggest").click()
        expect(page.locator("#threshold-note")).to_contain_text("to reach precision 0.6")
        snap(page, "thresholds.png")

        page.locator("#reviewer input, #reviewer textarea").first.fill("ann")
        open_tab(page, "Review")
        expect(page.locator("#card-title")).to_contain_text("Card 1 of")
        snap(page, "review.png")

        open_tab(page, "Export")
        page.locator("#btn-export-labels").click()
        expect(page.locator("#export-message")).to_contain_text("rows to")
        expect(page.locator("#export-file")).to_contain_text("labels-")
        snap(page, "export.png")
    finally:
        stop_in_process(demo)
