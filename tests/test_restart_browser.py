"""The reviewer's place survives a server restart (issue 29, point 2), in a real browser: the
name, the tab, the queue, the filter and the card come back after the server stopped and a new
one started on the same address, because what the browser keeps is sealed with the project's
own secret, kept in its store."""
from __future__ import annotations

import pytest
from playwright.sync_api import Error, expect

from app_fixtures import db_rows, free_port, make_review_project, serve_in_process, stop_in_process
from browser_fixtures import card_events, new_page, storage_writes, wait_stored
from mersemi.service.browser_state import META_KEY

pytestmark = pytest.mark.slow
expect.set_options(timeout=15_000)   # two shared CPU cores: an update can take seconds


def goto_racing_the_page(page, url: str) -> None:
    """Open `url` in a page that was left open across the restart: its own scripts may start a
    navigation as the server comes back (seen as net::ERR_ABORTED under a load of 13), so a
    navigation they abort is made again, at most twice."""
    for attempt in range(3):
        try:
            page.goto(url)
            return
        except Error as e:
            if "ERR_ABORTED" not in str(e) or attempt == 2:
                raise
            page.wait_for_load_state()


def test_the_reviewers_place_survives_a_server_restart(browser, tmp_path):
    root = tmp_path / "proj"
    make_review_project(root).close()
    port = free_port()
    demo, url = serve_in_process(root, port=port)
    context, page = new_page(browser, timeout_ms=15_000)
    try:
        page.goto(url)
        expect(page.locator("#class-table")).to_contain_text("expected precision")
        page.locator("#reviewer input, #reviewer textarea").first.fill("ann")
        with card_events(page):
            page.get_by_role("tab", name="Review").click()
        with card_events(page):
            page.locator("#filter-kind label", has_text="verify").click()
        page.locator("#filter-class input").click()
        page.get_by_role("option", name="joy", exact=True).click()
        title = page.locator("#card-title")
        expect(title).to_contain_text("Card 1 of 17")
        title.click()
        with card_events(page):
            page.keyboard.press("ArrowRight")
        expect(title).to_contain_text("Card 2 of 17")
        stored = storage_writes(page, "mersemi-position")
        page.keyboard.press("ArrowRight")
        expect(title).to_contain_text("Card 3 of 17")
        name = title.locator("h3").inner_text().split()[0]
        wait_stored(page, "mersemi-position", stored)       # card 3's place reached the browser's storage

        stop_in_process(demo)                                # the server stops ...
        demo, url = serve_in_process(root, port=port)        # ... and another starts on the same address
        goto_racing_the_page(page, url)
        expect(page.get_by_role("tab", name="Review")).to_have_attribute("aria-selected", "true")
        expect(page.locator("#reviewer input, #reviewer textarea").first).to_have_value("ann")
        expect(title).to_contain_text(name)
        expect(title).to_contain_text("Card 3 of 17")
        expect(title).to_contain_text("Verify this")
        expect(page.locator("#filter-class input")).to_have_value("joy")
        assert [len(v) for (v,) in db_rows(root, f"SELECT value FROM meta WHERE key = '{META_KEY}'")] == [32]
    finally:
        context.close()
        stop_in_process(demo)
