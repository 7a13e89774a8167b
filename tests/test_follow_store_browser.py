"""Every part of every page follows the store (issue 29, point 3), in a real browser at
1366x768: a decision from the command line and one from another server show on an open page
(the Decisions tab's log, the per-class counts, the card on screen, the class table) without a
reload; a page opened after a round finished says that round in its header; the Train tab
counts a round's seconds from its first one, and ends on the time its round took."""
from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect

from app_fixtures import (
    N_LABELED, N_POOL, db_rows, make_review_project, pool_probs, serve_in_process, stop_in_process,
)
from browser_fixtures import card_events, new_page
from mersemi.engine.results import Composition, RoundMetrics, RoundRecord, SplitMetrics
from mersemi.service.project import Project
from mersemi.ui.cli import main

pytestmark = pytest.mark.slow
expect.set_options(timeout=15_000)   # two shared CPU cores: an update can take seconds


@pytest.fixture
def project_root(tmp_path):
    root = tmp_path / "proj"
    make_review_project(root).close()
    return root


@pytest.fixture
def server(project_root):
    demo, url = serve_in_process(project_root)
    yield url
    stop_in_process(demo)


@pytest.fixture
def page(browser, server):
    context, page = new_page(browser, timeout_ms=15_000)
    page.goto(server)
    expect(page.locator("#class-table")).to_contain_text("expected precision")
    yield page
    context.close()


def decide_from_the_command_line(root: Path, tmp_path: Path, rows: list[tuple[str, str, str]]) -> None:
    csv = tmp_path / "decisions.csv"
    csv.write_text("name,decision,label\n" + "".join(f"{n},{d},{lab}\n" for n, d, lab in rows))
    assert main(["decide", str(root), "--file", str(csv), "--reviewer", "bob"]) in (0, None)


def review_verify_queue(page, reviewer: str) -> None:
    page.locator("#reviewer input, #reviewer textarea").first.fill(reviewer)
    with card_events(page):
        page.get_by_role("tab", name="Review").click()
    with card_events(page):
        page.locator("#filter-kind label", has_text="verify").click()
    expect(page.locator("#card-title")).to_contain_text("u49")      # the least confident candidate


def finish_another_round(root: Path) -> int:
    """A round finished by another process: its pool predictions are round 0's."""
    with Project.open(root) as p:
        rid = p.store.rounds.create(config={}, config_name="elsewhere", thresholds={}, auto_accept=False,
                                   pid=os.getpid(), host=socket.gethostname())
        p.store.rounds.complete(rid, predictions=[("pool", np.arange(N_LABELED, N_LABELED + N_POOL), pool_probs())],
                               decisions=[], reviewer="auto",
                               composition=Composition(gold=N_LABELED, total=N_LABELED).to_json(),
                               metrics=RoundRecord(metrics=RoundMetrics(cv=SplitMetrics(waf=0.8))).to_json(),
                               checkpoint=None)
    return rid


def test_a_decision_from_the_command_line_shows_on_every_tab(page, project_root, tmp_path):
    review_verify_queue(page, "ann")
    title = page.locator("#card-title")
    expect(title).to_contain_text("Card 1 of 50")
    counts = page.locator("#review-counts [role=row]", has_text="joy").first
    # bob decides, from the command line, the card on ann's screen (u49, joy) and another one
    decide_from_the_command_line(project_root, tmp_path, [("u49", "accept", ""), ("u11", "label", "joy")])
    expect(title).to_contain_text("u48")                               # the card on screen gave way ...
    expect(title).to_contain_text("Card 1 of 48")
    expect(page.locator("#review-message")).to_contain_text("u49 was just decided by bob")   # ... saying why
    expect(counts).to_contain_text("16")                               # joy: 16 candidates remain
    page.get_by_role("tab", name="Decisions").click()
    found = page.locator("#dec-found")
    expect(found).to_contain_text("2 decisions")
    decide_from_the_command_line(project_root, tmp_path, [("u20", "reject", "")])
    expect(found).to_contain_text("3 decisions")                       # the open tab follows too
    expect(page.locator("#dec-table")).to_contain_text("u20")
    page.get_by_role("tab", name="Thresholds").click()
    expect(page.locator("#class-table [role=row]", has_text="joy").first).to_contain_text("16")


def test_a_decision_on_another_server_shows_on_this_ones_page(browser, page, project_root):
    other, other_url = serve_in_process(project_root)                 # a second server on the same project
    context, there = new_page(browser, timeout_ms=15_000)
    try:
        page.get_by_role("tab", name="Decisions").click()
        found = page.locator("#dec-found")
        expect(found).to_contain_text("0 decisions")
        there.goto(other_url)
        review_verify_queue(there, "cat")
        there.locator("#card-title").click()
        there.keyboard.press("a")                                       # cat accepts u49 over there
        expect(there.locator("#review-message")).to_contain_text("accepted")
        expect(found).to_contain_text("1 decisions")                    # ... and the page here shows it
        expect(page.locator("#dec-table")).to_contain_text("cat")
        expect(page.locator("#dec-reviewers")).to_contain_text("cat")
    finally:
        context.close()
        stop_in_process(other)


def test_a_page_opened_after_a_round_finished_says_that_round(browser, page, project_root, server):
    header = page.locator("#header-info")
    expect(header).to_contain_text("current round: 0")
    rid = finish_another_round(project_root)
    expect(header).to_contain_text(f"current round: {rid}")            # an open page follows
    context, later = new_page(browser, timeout_ms=15_000)
    try:
        later.goto(server)                                              # a page opened now ...
        expect(later.locator("#class-table")).to_contain_text("expected precision")
        expect(later.locator("#header-info")).to_contain_text(f"current round: {rid}")   # ... says it
        review_verify_queue(later, "ann")
        expect(later.locator("#card-title")).to_contain_text(f"round {rid}")
    finally:
        context.close()


def test_the_train_tab_counts_a_rounds_seconds_from_its_first(page, project_root):
    page.get_by_role("tab", name="Train").click()
    progress = page.locator("#train-progress")
    with Project.open(project_root) as p:
        rid = p.store.rounds.create(config={}, config_name="elsewhere", thresholds={}, auto_accept=False,
                                   pid=os.getpid(), host=socket.gethostname())
        try:
            seconds = re.compile(rf"0% · round {rid}\b.* · \d+ s")
            expect(progress).to_have_text(seconds)                      # from its first second, no progress yet
            first = re.search(r"· \d+ s", progress.inner_text()).group(0)
            expect(progress).not_to_contain_text(first)                 # the seconds move on ...
            expect(progress).to_have_text(seconds)                      # ... with no progress
        finally:
            p.store.rounds.fail(rid, "test over")
    assert db_rows(project_root, "SELECT status FROM rounds ORDER BY id") == [("done",), ("failed",)]
