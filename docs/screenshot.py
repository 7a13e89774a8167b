"""Make docs/screenshot-review.png, the picture of the Review tab that README.md shows.

It builds a small synthetic project in a temporary folder (``mersemi synth --scale 0.1``,
``init``, ``import --native``, one fast round with ``tests/fast.yaml``; about a minute on CPUs),
serves the app in this process on a free local port, opens it in Debian's Chromium through
Playwright (``/usr/bin/chromium``, headless; no ``playwright install``), types a reviewer name,
opens the Review tab and waits for a card with its probability bars, then saves a
screenshot (1366x900, the width the browser tests use; at 1280 the bars' percentages
spill into the next column). The server is stopped and the temporary folder removed at the end.

Run from the repository root, with the project's virtual environment:

    python docs/screenshot.py                 # writes docs/screenshot-review.png
    python docs/screenshot.py --out shot.png  # somewhere else

Needs the ``playwright`` Python package and Chromium at /usr/bin/chromium. When Pillow is
installed the PNG is re-saved with its optimiser to keep it small.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "docs" / "screenshot-review.png"
FAST_PRESET = REPO / "tests" / "fast.yaml"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1366, "height": 900}
TIMEOUT_MS = 60_000


def mersemi(*args: str) -> None:
    """One CLI command, through the same interpreter (so the same environment)."""
    cmd = [sys.executable, "-m", "mersemi.ui.cli", *args]
    print("$ mersemi", " ".join(args), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def build_project(tmp: Path) -> Path:
    data, project = tmp / "data", tmp / "project"
    mersemi("synth", str(data), "--scale", "0.1")
    mersemi("init", str(project))
    mersemi("import", str(project), "--native", str(data))
    mersemi("train", str(project), "--config", str(FAST_PRESET))
    return project


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def take(url: str, out: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            expect(page.locator("#class-table")).to_contain_text("expected precision", timeout=TIMEOUT_MS)
            page.locator("#reviewer input, #reviewer textarea").first.fill("ann")
            page.get_by_role("tab", name="Review").click()
            expect(page.locator("#card-title")).to_contain_text("Card ", timeout=TIMEOUT_MS)
            expect(page.locator("#card-probs .pbar").first).to_be_visible(timeout=TIMEOUT_MS)
            # The page load and the tab's select both draw a card: let the later one land,
            # and the bars' transitions finish, before the picture.
            page.wait_for_timeout(1500)
            page.mouse.move(0, 0)
            page.screenshot(path=str(out), full_page=False)
        finally:
            browser.close()


def optimise(out: Path) -> None:
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(out) as im:
        im.load()
        small = im.convert("RGB")
    small.save(out, format="PNG", optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the PNG to write (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix="mersemi-screenshot-"))
    demo = None
    try:
        project = build_project(tmp)
        from mersemi.ui.app import build_app, launch

        demo = build_app(project)
        port = free_port()
        launch(demo, port=port, block=False)
        take(f"http://127.0.0.1:{port}/", out)
        optimise(out)
    finally:
        if demo is not None:
            demo.close()
            demo.actions.project.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
