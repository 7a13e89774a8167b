"""Votes in real browsers (issue 27): a project lead sets the overlap on the Decisions tab (a bad
value is one line and writes nothing), two reviewers in two browser contexts give different classes
to the same card with the keyboard, the card goes to the adjudicate queue, which one of the voters
is never given, a third reviewer adjudicates it with a key press, and the store then holds the
adjudicated class while the Decisions tab's agreement shows the two votes. On SQLite and on
PostgreSQL (the store is read back through a fresh Project, as `mersemi status` would)."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from app_fixtures import make_review_project, serve_in_process, stop_in_process
from browser_fixtures import card_events, new_page, settled
from mersemi.service.project import Project

pytestmark = pytest.mark.slow
expect.set_options(timeout=30_000)   # three browsers and a server on two shared cores: a page can take seconds


def title(page):
    return page.locator("#card-title")


def card_name(page) -> str:
    """The name of the card on screen, once no card event is on its way (a pending one shows its timer)."""
    expect(title(page)).to_contain_text("Card ")
    page.wait_for_function("window.__runCalls.open === 0")
    return re.match(r"\s*(\S+)", title(page).inner_text()).group(1)


def open_as(browser, url: str, reviewer: str, contexts: list):
    context, page = new_page(browser, timeout_ms=30_000)
    contexts.append(context)
    page.goto(url)
    expect(page.locator("#class-table")).to_contain_text("expected precision")   # loaded
    page.locator("#reviewer input, #reviewer textarea").first.fill(reviewer)
    return page


def open_review(page) -> None:
    page.get_by_role("tab", name="Review").click()
    expect(title(page)).to_contain_text("Card ")


def press_on_card(page, key: str) -> None:
    """A key press on the card (its title focused: keys are ignored while typing in a field)."""
    title(page).click()
    with card_events(page):
        page.keyboard.press(key)


def choose_queue(page, kind: str) -> None:
    """The queue chosen once no event is on its way (a store change the page follows may be: its
    answer counted for the click's once, and the click was not seen), and seen chosen."""
    settled(page)
    with card_events(page):
        page.locator("#filter-kind label", has_text=kind).click()
    expect(page.locator("#filter-kind label", has_text=kind).locator("input")).to_be_checked()


def in_force(root, name: str) -> tuple:
    """(reviewer, source, label) of the decision in force on `name`, read by a fresh Project."""
    with Project.open(root) as project:
        sid = project.store.samples.by_name([name])[name][0]
        current = project.store.decisions.in_force([sid]).get(sid)
        d = project.store.decisions.get(current.decision_id)
        return d.reviewer, d.source, project.classes[d.label]


def test_two_reviewers_tie_on_a_card_and_a_third_adjudicates_it(browser, tmp_path, db_url):
    root = tmp_path / "proj"
    make_review_project(root, db_url=db_url).close()
    demo, url = serve_in_process(root)
    contexts: list = []
    try:
        lead = open_as(browser, url, "cara", contexts)
        lead.get_by_role("tab", name="Decisions").click()
        expect(lead.locator("#agreement-summary")).to_contain_text("No card has two votes yet")
        expect(lead.locator("#agreement-pairs")).to_be_hidden()
        # a bad value: one line, nothing written, the box back to the setting in force
        lead.locator("#overlap-votes input").fill("0")
        lead.locator("#btn-overlap").click()
        expect(lead.locator("#overlap-message")).to_have_text("Not set: votes: must lie in [1, 100], got 0")
        expect(lead.locator("#overlap-votes input")).to_have_value("1")
        assert demo.actions.project.store.votes.cards() == {}
        # K = 2 on every card, typed and confirmed with the keyboard
        lead.locator("#overlap-votes input").fill("2")
        lead.locator("#overlap-share input").fill("1")
        lead.locator("#btn-overlap").focus()
        lead.keyboard.press("Enter")
        expect(lead.locator("#overlap-message")).to_contain_text("Set: 2 vote(s) per card on 100 % of the pool cards")

        ann = open_as(browser, url, "ann", contexts)
        open_review(ann)
        name = card_name(ann)
        press_on_card(ann, "1")                                    # calm
        expect(ann.locator("#review-message")).to_contain_text("1 vote(s) of 2, open")
        bob = open_as(browser, url, "bob", contexts)
        open_review(bob)
        expect(title(bob)).to_contain_text(f"{name} — ")         # ann's claim went with her vote
        press_on_card(bob, "2")                                    # joy: a tie
        expect(bob.locator("#review-message")).to_contain_text("2 vote(s) of 2, tie")

        choose_queue(ann, "adjudicate")                            # a voter is never given her tie
        expect(title(ann)).to_contain_text("No adjudicate card")
        expect(title(ann)).to_contain_text("no tie of votes waits for a reviewer who did not vote on it")

        open_review(lead)
        choose_queue(lead, "adjudicate")
        expect(title(lead)).to_contain_text("Adjudicate this tie")
        expect(title(lead)).to_contain_text(f"{name} — ")
        expect(title(lead)).to_contain_text("Votes: ann: calm · bob: joy")
        expect(lead.locator("#card-probs .pbar")).to_have_count(3)  # the model's probabilities
        press_on_card(lead, "2")                                   # joy
        expect(lead.locator("#review-message")).to_contain_text("adjudicated")
        assert in_force(root, name) == ("cara", "adjudicated", "joy")

        lead.get_by_role("tab", name="Decisions").click()
        expect(lead.locator("#agreement-summary")).to_contain_text("on 1 cards with two votes or more, 2 votes")
        expect(lead.locator("#agreement-summary")).to_contain_text("1 adjudicated")
        bob_row = lead.locator("#agreement-pairs [role=row][data-index='1']")
        expect(bob_row).to_contain_text("bob")
        expect(bob_row).to_contain_text("0.00 (1)")                # ann and bob: one card, no agreement
        expect(lead.locator("#agreement-reviewers")).to_contain_text("ann")
    finally:
        for context in contexts:
            context.close()
        stop_in_process(demo)
