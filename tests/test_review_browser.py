"""The review page in a real browser (Debian's Chromium at 1366x768): every control stores what
it shows or refuses visibly, keys work whenever no text field has focus, a reload keeps the
place (issue 9, points 1-13). Screenshots of every tab at 1366x768 and 1920x1080 go to
tests/artifacts/."""
from __future__ import annotations

import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from app_fixtures import db_rows as db, make_review_project, serve_in_process, stop_in_process, write_wav
from browser_fixtures import (
    ARTIFACTS, VIEWPORT, card_events, new_page, settled, storage_writes, wait_stored,
)
from mersemi.service.project import Project

pytestmark = pytest.mark.slow
expect.set_options(timeout=15_000)   # two shared CPU cores: an update can take seconds


@pytest.fixture
def served(tmp_path):
    """A fresh fixture project per test (u00's clip lasts 3 s, long enough to see it play)."""
    root = tmp_path / "proj"
    make_review_project(root).close()
    write_wav(root / "media" / "u00.wav", seconds=3)
    demo, url = serve_in_process(root)
    yield root, url, demo
    stop_in_process(demo)


@pytest.fixture
def page(browser):
    context, page = new_page(browser, timeout_ms=15_000)
    yield page
    context.close()

def stored_threshold(root: Path, cls: int) -> float:
    return db(root, f"SELECT value FROM thresholds WHERE class_id = {cls}")[0][0]


def wait_for(predicate, what: str, timeout: float = 10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def open_app(page, url: str) -> None:
    page.goto(url)
    expect(page.locator("#class-table")).to_contain_text("expected precision")


def open_review(page, url: str, reviewer: str | None = "ann", queue: str | None = "verify") -> None:
    open_app(page, url)
    if reviewer:
        page.locator("#reviewer input, #reviewer textarea").first.fill(reviewer)
    # The page load, the name's blur and the tab's select each draw a card; a key pressed
    # before the last one is back would have its card replaced by that (older) answer.
    with card_events(page):
        page.get_by_role("tab", name="Review").click()
    expect(page.locator("#card-title")).to_contain_text("Card ")
    if queue:
        choose_queue(page, queue)


def choose_queue(page, kind: str) -> None:
    """The verify queue holds the candidates only, least confident first: u49, u48, ..."""
    with card_events(page):
        page.locator("#filter-kind label", has_text=kind).click()
    expect(page.locator("#card-title")).to_contain_text("Verify this" if kind == "verify" else "Label this")


def choose_class(page, cls: str) -> None:
    page.locator("#filter-class input").click()
    page.get_by_role("option", name=cls, exact=True).click()


def set_min_conf(page, value: str) -> None:
    box = page.locator("#filter-conf input[type=number]")
    box.fill(value)
    box.press("Enter")


def title(page):
    return page.locator("#card-title")


# ---------------------------------------------------------------------- 1. sliders

def test_threshold_slider_keys_and_enter_store_what_the_box_shows(page, served):
    root, url, _ = served
    open_app(page, url)
    page.locator("#reviewer input, #reviewer textarea").first.fill("ann")   # a threshold is someone's
    number = page.locator("#threshold-2 input[type=number]")
    page.locator("#threshold-2 input[type=range]").focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    wait_for(lambda: stored_threshold(root, 2) == pytest.approx(0.503), "the arrow keys' value to be stored")
    expect(number).to_have_value("0.503")
    expect(page.locator("#class-table [role=row]", has_text="anger").first).to_contain_text("0.503")

    number.fill("0.7")
    number.press("Enter")                                   # Enter stores, no blur needed
    wait_for(lambda: stored_threshold(root, 2) == pytest.approx(0.7), "Enter to store 0.7")
    note = page.locator("#threshold-2 .info-text")             # the slider's line, beside its box
    expect(note).to_contain_text("0.700 stored")

    for bad in ("-0.2", "1.5"):
        number.fill(bad)
        number.press("Enter")
        expect(note).to_contain_text("Not stored")
        expect(note).to_contain_text(f"got {bad}")
        expect(number).to_have_value("0.7")                 # the box shows what is stored
        assert stored_threshold(root, 2) == pytest.approx(0.7)


def test_minimum_confidence_keys_apply_and_an_empty_filter_says_what_to_do(page, served):
    root, url, _ = served
    open_review(page, url)
    expect(title(page)).to_contain_text("Card 1 of 50")
    page.locator("#filter-conf input[type=range]").focus()
    page.keyboard.press("End")                              # minimum confidence 1: nothing passes
    expect(title(page)).to_contain_text("No candidate in this filter")
    expect(title(page)).to_contain_text("lower the minimum confidence")
    for button in ("#btn-accept", "#btn-reject", "#btn-relabel-1", "#btn-accept-all", "#btn-next"):
        expect(page.locator(button)).to_be_disabled()
    page.keyboard.press("a")                                 # a disabled button: nothing recorded
    assert db(root, "SELECT count(*) FROM decisions") == [(0,)]
    page.keyboard.press("Home")
    expect(title(page)).to_contain_text("Card 1 of 50")
    expect(page.locator("#btn-accept")).to_be_enabled()


# ---------------------------------------------------------------------- 2, 3. relabel and bars

def test_bars_in_class_order_and_relabel_to_the_predicted_class_is_an_accept(page, served):
    root, url, _ = served
    open_review(page, url)
    expect(title(page)).to_contain_text("u49")               # predicted joy at 0.50
    bars = page.locator("#card-probs .pbar")
    expect(bars).to_have_count(3)
    assert bars.locator(".cls").all_inner_texts() == ["calm", "joy", "anger"]
    assert bars.locator("kbd").all_inner_texts() == ["1", "2", "3"]
    assert bars.locator(".val").all_inner_texts() == ["25.0%", "50.0%", "25.0%"]
    title(page).click()
    page.keyboard.press("2")                                 # relabel as joy = the predicted class
    expect(page.locator("#review-message")).to_contain_text("recorded as an accept")
    expect(title(page)).to_contain_text("u48")
    assert bars.locator(".cls").all_inner_texts() == ["calm", "joy", "anger"]   # same order, next card
    assert db(root, "SELECT action, label FROM decisions") == [("accept", 1)]
    expect(page.locator("#review-counts")).to_contain_text("the pool labels given to it by people")


# ---------------------------------------------------------------------- 6. accept all

def test_accept_all_question_goes_when_the_filter_changes(page, served):
    root, url, _ = served
    open_review(page, url)
    set_min_conf(page, "0.999")
    expect(title(page)).to_contain_text("No candidate")
    set_min_conf(page, "0.905")
    expect(title(page)).to_contain_text("Card 1 of")
    page.locator("#btn-accept-all").click()
    expect(page.locator("#confirm-text")).to_contain_text("≥ 0.905")
    choose_class(page, "joy")
    expect(page.locator("#confirm-text")).to_be_hidden()
    assert db(root, "SELECT count(*) FROM decisions") == [(0,)]


# ---------------------------------------------------------------------- 7. reload

def test_a_reload_keeps_the_tab_the_filter_and_the_card(page, served):
    root, url, _ = served
    open_review(page, url)
    choose_class(page, "joy")
    expect(title(page)).to_contain_text("Card 1 of 17")
    title(page).click()
    with card_events(page):
        page.keyboard.press("ArrowRight")
    expect(title(page)).to_contain_text("Card 2 of 17")
    stored = storage_writes(page, "mersemi-position")        # card 2's position is drawn and stored
    page.keyboard.press("ArrowRight")
    expect(title(page)).to_contain_text("Card 3 of 17")
    name = title(page).locator("h3").inner_text().split()[0]
    wait_stored(page, "mersemi-position", stored)            # card 3's position reached localStorage
    page.reload()
    expect(page.get_by_role("tab", name="Review")).to_have_attribute("aria-selected", "true")
    expect(title(page)).to_contain_text(name)
    expect(title(page)).to_contain_text("Card 3 of 17")
    expect(page.locator("#filter-class input")).to_have_value("joy")
    expect(page.locator("#reviewer input, #reviewer textarea").first).to_have_value("ann")


# ---------------------------------------------------------------------- 8. a round training

def test_the_review_tab_says_when_a_round_is_training(page, served):
    root, url, _ = served
    open_review(page, url)
    expect(page.locator("#review-banner")).not_to_contain_text("training")
    project = Project.open(root)
    try:
        rid = project.store.rounds.create(config={}, config_name="other", thresholds={}, auto_accept=False,
                                          pid=os.getpid(), host=socket.gethostname())
        banner = page.locator("#review-banner")
        expect(banner).to_contain_text(f"Round {rid} is training")
        expect(banner).to_contain_text("round after it")
        page.screenshot(path=str(ARTIFACTS / "review-training-1366.png"))
        project.store.rounds.fail(rid, "test over")
        expect(banner).not_to_contain_text("training")
    finally:
        project.close()


# ---------------------------------------------------------------------- 9. auto-accept

def test_auto_accept_asks_with_counts_per_class_then_unticks(page, served):
    root, url, demo = served
    open_app(page, url)
    page.get_by_role("tab", name="Train").click()
    box = page.locator("#train-auto input[type=checkbox]")
    box.check()
    page.locator("#btn-train").click()
    text = page.locator("#train-confirm-text")
    expect(text).to_contain_text(re.compile(r"accept \d+ of the 50 candidates"))   # what the class balance keeps
    expect(text.locator("table")).to_contain_text("expected precision")
    assert text.locator("tbody tr").count() == 3
    assert not demo.actions.training.runner.is_running()             # nothing started before the answer
    assert db(root, "SELECT count(*) FROM rounds") == [(1,)]
    page.locator("#btn-train-confirm").click()
    expect(box).not_to_be_checked()
    expect(page.locator("#train-confirm-group")).to_be_hidden()


# ---------------------------------------------------------------------- 10. focus

def test_keys_work_whenever_no_text_field_has_focus(page, served):
    root, url, _ = served
    open_review(page, url, reviewer=None)
    reviewer = page.locator("#reviewer input, #reviewer textarea").first
    reviewer.fill("alice")
    reviewer.press("Escape")                                 # back to the card
    page.keyboard.press("a")
    expect(reviewer).to_have_value("alice")                  # not "alicea"
    expect(title(page)).to_contain_text("u48")
    page.locator("#filter-conf input[type=range]").focus()   # a slider has focus, no text field
    page.keyboard.press("r")
    expect(title(page)).to_contain_text("u47")
    reviewer.fill("bob")
    reviewer.press("Enter")                                  # Enter leaves the name field too
    # alice's claim on u47 holds (5 minutes): bob, a new name on this page, gets u46
    expect(title(page)).to_contain_text("u46")
    page.keyboard.press("a")
    expect(title(page)).to_contain_text("u45")
    assert db(root, "SELECT action, reviewer FROM decisions ORDER BY id") == [
        ("accept", "alice"), ("reject", "alice"), ("accept", "bob")]


def test_a_card_still_on_its_way_never_covers_the_card_a_decision_drew(page, served):
    # The card's events skip Gradio's queue; they must still run one at a time. Here a move
    # (the name field's blur) has read its card, u49, and is slow to answer; `a` pressed
    # meanwhile accepts u49. The page must end on the card after it, not on u49 again.
    root, url, demo = served
    open_review(page, url)
    expect(title(page)).to_contain_text("u49")
    actions, real = demo.actions, demo.actions.next_candidate
    slow = {"once": True}
    read = threading.Event()

    def late(*args, **kwargs):
        out = real(*args, **kwargs)
        if slow.pop("once", False):
            read.set()
            time.sleep(1.5)                                  # the move's answer is slow to come back
        return out

    actions.next_candidate = late
    try:
        with card_events(page, sent=2):                      # on leaving: both answers are back
            page.locator("#reviewer input, #reviewer textarea").first.press("Escape")   # the blur: a move
            assert read.wait(15), "the move never read its card"                      # it is under way
            page.keyboard.press("a")
        expect(title(page)).to_contain_text("u48")
        assert db(root, "SELECT s.name, d.action FROM decisions d JOIN samples s ON s.id = d.sample_id") == [
            ("u49", "accept")]
    finally:
        actions.next_candidate = real


# ---------------------------------------------------------------------- 11. play key, layout

def test_p_plays_the_clip_and_the_card_fits_1366x768(page, served):
    root, url, _ = served
    open_review(page, url)
    choose_class(page, "calm")
    set_min_conf(page, "0.985")
    expect(title(page)).to_contain_text("u00")               # the sample with a clip
    expect(page.locator("#card-audio")).to_be_visible()
    expect(page.locator("#card-audio #duration")).to_have_text("0:03")   # the player has loaded the clip
    page.keyboard.press("Escape")
    page.keyboard.press("p")
    expect(page.locator("#card-audio .play-pause-button")).to_have_attribute("aria-label", "Pause")
    page.evaluate("window.scrollTo(0, 0)")
    for part in ("#card-title", "#card-text", "#card-audio", "#card-probs", "#btn-accept", "#relabel-row"):
        box = page.locator(part).bounding_box()
        assert box["y"] + box["height"] <= VIEWPORT["height"], f"{part} below the fold: {box}"
    page.keyboard.press("p")                                 # pause
    expect(page.locator("#card-audio .play-pause-button")).to_have_attribute("aria-label", "Play")


# ---------------------------------------------------------------------- 13. live log

def test_the_live_log_follows_new_lines(page, served):
    root, url, demo = served
    open_app(page, url)
    page.get_by_role("tab", name="Train").click()

    def job(progress):
        for i in range(30):
            progress(f"step {i}", i / 30)
            time.sleep(0.05)
        return {}

    assert demo.actions.training.runner.start(job, "a long log")
    demo.actions.training.runner.wait(10)
    log = page.locator("#train-log textarea")
    expect(log).to_have_value(re.compile("finished"))
    # the page scrolls the log down to its last line (app.js, every 400 ms)
    page.wait_for_function("t => t.scrollHeight > t.clientHeight && t.scrollTop + t.clientHeight >= t.scrollHeight - 2",
                           arg=log.element_handle())
    top, height, client = log.evaluate("t => [t.scrollTop, t.scrollHeight, t.clientHeight]")
    assert height > client and top + client >= height - 2, (top, height, client)


# ---------------------------------------------------------------------- screenshots

# What each tab's screenshot shows near its top: an element of that tab and a text in it.
TAB_SHOWS = {"Thresholds": ("#threshold-0", "calm"), "Review": ("#card-title", "Card 1 of 50"),
             "Train": ("#btn-train", "Train next round"), "Decisions": ("#btn-dec-search", "Search"),
             "Export": ("#btn-export-labels", "Labels (CSV)")}


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)])
def test_screenshots_of_every_tab_show_that_tab(browser, served, size):
    root, url, _ = served
    width, height = size
    context, page = new_page(browser, viewport={"width": width, "height": height}, timeout_ms=15_000)
    try:
        open_review(page, url)
        for tab, (part, text) in TAB_SHOWS.items():
            page.get_by_role("tab", name=tab).click()
            expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")
            shown = page.locator(part)
            expect(shown).to_be_visible()                    # hidden while another tab is on screen
            expect(shown).to_contain_text(text)
            page.evaluate("window.scrollTo(0, 0)")
            settled(page)
            box = shown.bounding_box()
            assert box and 0 <= box["x"] < width and 0 <= box["y"] < height, f"{tab}: {part} is off the screen: {box}"
            path = ARTIFACTS / f"ux-{tab.lower()}-{width}x{height}.png"
            path.unlink(missing_ok=True)
            png = page.screenshot(path=str(path))
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and path.read_bytes() == png, f"{path} not written"
            assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == size   # the viewport
    finally:
        context.close()
