"""The browser of the browser tests and what they wait on in a page (never a fixed time).

`browser` (made a fixture of every test module by conftest.py) is Debian's Chromium driven by
Playwright, one per test module. `new_page` opens a page in a context of its own whose init
script counts

- the card's events on their way: they skip Gradio's queue, each one POST to .../run/..., and
  one counts as back one animation frame after its answer arrived (drawn by then);
- the writes to localStorage, per key (what a reload restores).

so that a test can wait until every card event it started is back (`card_events`), a value has
been stored (`wait_stored`), or the page is still for a screenshot (`settled`).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"   # screenshots (gitignored)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1366, "height": 768}

TRACKER = r"""
(() => {
  const calls = (window.__runCalls = { sent: 0, open: 0 });
  const original = window.fetch;
  window.fetch = function (input, init) {
    const answer = original.call(window, input, init);
    const url = typeof input === "string" ? input : (input && input.url) || String(input);
    const method = ((init && init.method) || (input && input.method) || "GET").toUpperCase();
    if (method !== "POST" || !/\/run\//.test(url)) return answer;
    calls.sent += 1;
    calls.open += 1;
    const back = () => requestAnimationFrame(() => { calls.open -= 1; });
    answer.then((r) => r.clone().arrayBuffer()).then(back, back);
    return answer;
  };
  const writes = (window.__storageWrites = {});
  const setItem = Storage.prototype.setItem;
  Storage.prototype.setItem = function (key, value) {
    writes[key] = (writes[key] || 0) + 1;
    return setItem.call(this, key, value);
  };
})();
"""

# Nothing moving: no card event on its way, the fonts in, no transition or finite animation
# running (a spinner's endless one is a pending update the test has already waited out).
SETTLED = """() => window.__runCalls.open === 0 && document.fonts.status === "loaded" &&
  document.getAnimations().every(a => a.playState !== "running" || !a.effect ||
                                      a.effect.getComputedTiming().endTime === Infinity)"""


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def new_page(browser, viewport: dict | None = None, timeout_ms: float = 20_000):
    """A page in a new context (close the context when done), with the counters of the module doc."""
    context = browser.new_context(viewport=viewport or VIEWPORT)
    context.add_init_script(TRACKER)
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    return context, page


@contextlib.contextmanager
def card_events(page, sent: int = 1) -> Iterator[None]:
    """On leaving the block: wait until `sent` card events started in it were sent and every card
    event on its way is back, its answer drawn."""
    before = page.evaluate("window.__runCalls.sent")
    yield
    page.wait_for_function("n => window.__runCalls.sent >= n && window.__runCalls.open === 0",
                           arg=before + sent)


def storage_writes(page, key: str) -> int:
    return page.evaluate("k => window.__storageWrites[k] || 0", key)


def wait_stored(page, key: str, after: int) -> None:
    """Wait until localStorage's `key` was written more than `after` times (storage_writes)."""
    page.wait_for_function("([k, n]) => (window.__storageWrites[k] || 0) > n", arg=[key, after])


def settled(page) -> None:
    page.wait_for_function(SETTLED)
