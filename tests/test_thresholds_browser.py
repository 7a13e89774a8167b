"""The reviewer owns the thresholds, and the page shows the store as it is, in a real browser
driven by the keyboard: a threshold set with the arrow keys survives a round trained with
auto-accept from the Train tab (the Train tab says what the policy did to each class), and what
another writer changes (a threshold, a decision, a round trained from the command line) shows
on the open page without a tab switch (how soon: bench/bench_follow.py; a timed assert here failed
on a machine under a load of 15)."""
from __future__ import annotations

import os
import socket
import threading

import pytest
from playwright.sync_api import expect

from app_fixtures import FAST_PRESET, serve_in_process, stop_in_process, synthetic_project
from browser_fixtures import new_page
from mersemi.engine.config import load_config
from mersemi.service.project import DecisionRequest, Project
from mersemi.service.rounds import run_round

pytestmark = pytest.mark.slow
expect.set_options(timeout=15_000)   # two shared CPU cores: an update can take seconds


@pytest.fixture(scope="module")
def project_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("owners") / "proj"
    with synthetic_project(root, root.parent / "data") as p:
        run_round(p, load_config(FAST_PRESET), config_name="fast")
    return root


@pytest.fixture(scope="module")
def server(project_root):
    demo, url = serve_in_process(project_root, presets={"fast": FAST_PRESET})
    yield demo, url
    stop_in_process(demo)


@pytest.fixture
def page(browser, server):
    context, page = new_page(browser, timeout_ms=20_000)
    page.goto(server[1])
    expect(page.locator("#class-table")).to_contain_text("expected precision")
    yield page
    context.close()


def press_tab(page, name: str) -> None:
    tab = page.get_by_role("tab", name=name)
    tab.focus()
    page.keyboard.press("Enter")
    expect(tab).to_have_attribute("aria-selected", "true")


def test_a_reviewers_threshold_survives_an_automatic_round_and_the_page_says_what_changed(page, project_root):
    page.locator("#reviewer input, #reviewer textarea").first.focus()
    page.keyboard.type("ann")
    page.keyboard.press("Enter")
    with Project.open(project_root) as p:
        happy_before = p.thresholds()["happy"]
        assert p.threshold_owners()["happy"]["set_by"] == "policy"     # round 0's policy set it
    page.locator("#threshold-2 input[type=range]").focus()               # happy
    for _ in range(5):
        page.keyboard.press("ArrowLeft")
    mine = round(happy_before - 0.005, 3)
    expect(page.locator("#threshold-2 .info-text")).to_contain_text(f"{mine:.3f} stored as ann's")
    expect(page.locator("#class-table [role=row]", has_text="happy").first).to_contain_text("ann (kept)")

    press_tab(page, "Train")
    # focus goes nowhere while the tab's panel is still hidden: the Space would be lost (1 run in 10)
    box = page.locator("#train-auto input")
    expect(box).to_be_visible()
    box.focus()
    page.keyboard.press("Space")                                          # auto-accept
    expect(box).to_be_checked()
    page.locator("#btn-train").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#train-confirm-text")).to_contain_text("accept")
    page.locator("#btn-train-confirm").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#train-after")).to_contain_text("after round 1", timeout=180_000)
    expect(page.locator("#train-after")).to_contain_text(f"happy {mine:.3f} kept (set by ann)")
    with Project.open(project_root) as p:
        assert p.thresholds()["happy"] == mine and p.threshold_owners()["happy"]["set_by"] == "ann"
        changed = [c for c in p.status()["rounds"][-1]["threshold_changes"] if not c["kept_for_owner"]]
    assert changed and all(c["by"] in ("policy", "init") for c in changed)
    press_tab(page, "Thresholds")
    expect(page.locator("#threshold-2 input[type=number]")).to_have_value(f"{mine:g}")


def test_what_another_writer_changes_shows_on_the_open_page(page, project_root):
    # a threshold set elsewhere (the command line, another reviewer)
    with Project.open(project_root) as p:
        p.set_thresholds({"neutral": 0.777}, by="bob")
    expect(page.locator("#threshold-0 input[type=number]")).to_have_value("0.777")
    expect(page.locator("#class-table [role=row]", has_text="neutral").first).to_contain_text("bob (kept)")

    # a decision made elsewhere: the per-class counts follow
    press_tab(page, "Review")
    counts = page.locator("#review-counts")
    expect(counts).to_be_visible()
    with Project.open(project_root) as p:
        pool = p.store.samples.split_arrays("unlabeled")[0][:3].tolist()
        names = p.store.samples.names(pool)
        p.decide([DecisionRequest(names[i], "label", "sad") for i in pool], reviewer="bob")
        sad_labeled = p.status()["labels"]["labeled"]["sad"]
    expect(counts.locator("[role=row]", has_text="sad").first).to_contain_text(str(sad_labeled))

    # a round training elsewhere: the Train tab and the Review tab's line follow it while it runs
    press_tab(page, "Train")
    progress = page.locator("#train-progress")
    with Project.open(project_root) as p:
        rid = p.store.rounds.create(config={}, config_name="cli", thresholds={}, auto_accept=False,
                                   pid=os.getpid(), host=socket.gethostname())
        try:
            p.store.rounds.heartbeat(rid, 0.3, "fold 1/3: epoch 2")
            expect(progress).to_contain_text("started by process")
            expect(progress).to_contain_text("fold 1/3: epoch 2")
            expect(page.locator("#review-banner")).to_contain_text(f"Round {rid} is training")
        finally:
            p.store.rounds.fail(rid, "stopped by the test")

    # a round trained from the command line to its end: the history and the header follow
    trained: list = []

    def train() -> None:
        with Project.open(project_root) as p:
            trained.append(run_round(p, load_config(FAST_PRESET), config_name="fast"))

    worker = threading.Thread(target=train, daemon=True)
    worker.start()
    worker.join(180)
    assert trained, "the round did not finish"
    expect(page.locator("#history [role=row]", has_text="fast").first).to_contain_text("done")
    expect(page.locator("#header-info")).to_contain_text(f"current round: {trained[0].id}")
