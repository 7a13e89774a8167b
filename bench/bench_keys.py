"""Key press to next card in a real browser (Debian's Chromium at 1366x768), the latency a
reviewer feels: the page, Gradio's queue, the server's decide / claim / next card, and the
redraw.

Builds a project with bench_app.build_project (MER2024-SEMI pool scale by default: 115,595
pool predictions, 20,000 decisions), serves the app in this process, opens the Review tab with
a reviewer name, then presses `→` (next card: read only) and `a` (accept: a decision, the
next card claimed) --presses times each, timing each press until the card title shows
another sample. Prints the median and the 90th percentile against the 150 ms target, and
the median time the server spent in the press's handler (the rest is the page, the
websocket and Gradio's queue). With --while-training, a round trains on the same machine
meanwhile, in a process at the priority the app gives its own training (service/runner.py).

    python bench/bench_keys.py [--pool 115595] [--presses 50] [--while-training] [--out bench/results/keys.md]
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from bench_app import build_project  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TARGET_MS = 150.0


def press_until_next(page, key: str) -> float:
    """ms from the key press until #card-title names another sample."""
    before = page.locator("#card-title h3").inner_text()
    t0 = time.perf_counter()
    page.keyboard.press(key)
    page.wait_for_function("b => { const h = document.querySelector('#card-title h3');"
                           " return h && h.innerText !== b; }", arg=before, polling="raf", timeout=30_000)
    return 1000 * (time.perf_counter() - t0)


def timed_handlers() -> dict[str, list[float]]:
    """Wrap the app's move and decide handlers (before the app is built) so that the server's
    share of each key press is measured too: ms per call, by handler."""
    import mersemi.ui.tab_review as app

    spent: dict[str, list[float]] = {"on_move": [], "on_decide": []}
    for name in spent:
        inner = getattr(app, name)

        def timed(*a, _inner=inner, _name=name, **k):
            t0 = time.perf_counter()
            try:
                return _inner(*a, **k)
            finally:
                spent[_name].append(1000 * (time.perf_counter() - t0))
        setattr(app, name, timed)
    return spent


def start_training(tmp: Path):
    """Automatic rounds of a synthetic project (default scale) in a process of its own, at the
    priority the app's training process runs at; started once its round 0 is done."""
    import subprocess

    from mersemi.engine.synthetic import make_synthetic
    from mersemi.service.runner import NICE

    make_synthetic(tmp / "train-data", scale="default", seed=1)
    cli = [sys.executable, "-m", "mersemi.ui.cli"]
    subprocess.run(cli + ["init", str(tmp / "train")], check=True, capture_output=True)
    subprocess.run(cli + ["import", str(tmp / "train"), "--native", str(tmp / "train-data")], check=True,
                   capture_output=True)
    return subprocess.Popen(cli + ["train", str(tmp / "train"), "--auto-accept", "--rounds", "20"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=lambda: os.nice(NICE))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=115_595)
    ap.add_argument("--presses", type=int, default=50)
    ap.add_argument("--while-training", action="store_true",
                    help="train rounds of a synthetic project on the same machine meanwhile")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    from mersemi.ui.app import serve

    spent = timed_handlers()

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        build_project(Path(tmp) / "proj", args.pool).close()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        demo = serve(Path(tmp) / "proj", port=port, block=False)
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto(f"http://127.0.0.1:{port}/")
        page.locator("#reviewer input, #reviewer textarea").first.fill("bench")
        page.get_by_role("tab", name="Review").click()
        page.locator("#card-title h3").wait_for()
        page.wait_for_timeout(8000)            # the load's and the tab's cards are both in
        page.locator("#card-title").click()    # keys go to the card
        trainer = start_training(Path(tmp)) if args.while_training else None
        times, server = {}, {}
        for key, what, handler in (("ArrowRight", "next card (→)", "on_move"), ("a", "accept (a)", "on_decide")):
            press_until_next(page, key)        # warm-up
            spent[handler].clear()
            times[what] = [press_until_next(page, key) for _ in range(args.presses)]
            server[what] = list(spent[handler])
        if trainer is not None:
            still = trainer.poll() is None
            trainer.terminate()
            trainer.wait(60)
            if not still:
                raise SystemExit("the training process ended before the presses did: nothing trained meanwhile")
        browser.close()
        demo.close()
        demo.actions.project.close()
    during = ", a round training on the same machine" if args.while_training else ""
    lines = [f"Key press to next card in Chromium 1366x768, pool {args.pool:,}, {args.presses} presses "
             f"each{during} (`python bench/bench_keys.py --pool {args.pool} --presses {args.presses}"
             f"{' --while-training' if args.while_training else ''}`):", "",
             "| key | median ms | p90 ms | target | server handler, median ms |", "|---|---|---|---|---|"]
    for what, ms in times.items():
        p90 = statistics.quantiles(ms, n=10)[-1]
        lines.append(f"| {what} | {statistics.median(ms):.0f} | {p90:.0f} | {TARGET_MS:.0f} | "
                     f"{statistics.median(server[what]):.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
