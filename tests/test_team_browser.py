"""Two reviewers at once in two browser contexts (issue 9, points 14 and 15): each gets a
different first card, each decision lands on its own sample under its own name, and with
logins the reviewer box shows the login and cannot be changed."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from app_fixtures import db_rows, free_port, make_review_project, serve_in_process, stop_in_process
from browser_fixtures import new_page as open_page

pytestmark = pytest.mark.slow


def new_page(browser):
    return open_page(browser, timeout_ms=30_000)


def card_name(page) -> str:
    title = page.locator("#card-title")
    expect(title).to_contain_text("Card ")
    return re.match(r"\s*(\S+)", title.inner_text()).group(1)


def on_screen_and_held(root: Path, page, reviewer: str) -> str:
    """The card the reviewer holds (claims table), once it is the one on their screen."""
    deadline = time.time() + 40
    while time.time() < deadline:
        held = db_rows(root, "SELECT s.name FROM claims c JOIN samples s ON s.id = c.sample_id "
                             f"WHERE c.reviewer = '{reviewer}'")
        if held and card_name(page) == held[0][0]:
            return held[0][0]
        time.sleep(0.2)
    raise AssertionError(f"{reviewer}'s screen never showed the card held for them: holds {held}, "
                         f"shows {page.locator('#card-title').inner_text()!r}")


def reviewer_box(page):
    return page.locator("#reviewer input, #reviewer textarea").first


def decisions(root: Path) -> list[tuple]:
    return db_rows(root, "SELECT s.name, d.action, d.reviewer FROM decisions d JOIN samples s "
                         "ON s.id = d.sample_id ORDER BY d.id")


def review_and_accept_the_first_card(root: Path, pages: dict) -> dict[str, str]:
    """Every reviewer opens the Review tab, gets a card held for them (different ones) and
    accepts it; each decision lands on that card under that reviewer's name. Returns the
    first cards by reviewer."""
    for page in pages.values():
        page.get_by_role("tab", name="Review").click()
    first = {name: on_screen_and_held(root, page, name) for name, page in pages.items()}
    assert len(set(first.values())) == len(first), f"two reviewers got the same card: {first}"
    for page in pages.values():
        page.locator("#card-title").click()
        page.keyboard.press("a")
        expect(page.locator("#review-message")).to_contain_text("accepted")
    assert sorted(decisions(root)) == sorted((card, "accept", name) for name, card in first.items())
    return first


def test_two_reviewers_in_two_browsers_get_different_cards(browser, tmp_path):
    root = tmp_path / "proj"
    make_review_project(root).close()
    demo, url = serve_in_process(root)
    contexts = []
    try:
        pages = {}
        for name in ("ann", "bob"):
            context, page = new_page(browser)
            contexts.append(context)
            page.goto(url)
            expect(page.locator("#class-table")).to_contain_text("expected precision")  # loaded
            reviewer_box(page).fill(name)
            pages[name] = page
        first = review_and_accept_the_first_card(root, pages)
        after = {name: card_name(page) for name, page in pages.items()}
        assert after["ann"] != after["bob"] and set(after).isdisjoint(first.values())
        assert "replaces" not in pages["bob"].locator("#review-message").inner_text()
    finally:
        for context in contexts:
            context.close()
        stop_in_process(demo)


def test_with_logins_the_reviewer_box_is_the_login(browser, tmp_path):
    from mersemi.ui.app import build_app, launch

    root = tmp_path / "proj"
    make_review_project(root).close()
    demo = build_app(root)
    port = free_port()
    launch(demo, port=port, auth=[("ann", "ann-pw"), ("bob", "bob-pw")], block=False)
    contexts = []
    try:
        pages = {}
        for name in ("ann", "bob"):
            context, page = new_page(browser)
            contexts.append(context)
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("input[type=text], input:not([type])").first.fill(name)
            page.locator("input[type=password]").first.fill(f"{name}-pw")
            page.keyboard.press("Enter")
            expect(page.locator("#class-table")).to_contain_text("expected precision")
            expect(reviewer_box(page)).to_have_value(name)
            expect(reviewer_box(page)).to_be_disabled()
            pages[name] = page
        review_and_accept_the_first_card(root, pages)
    finally:
        for context in contexts:
            context.close()
        stop_in_process(demo)
