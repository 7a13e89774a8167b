"""How fast the review app answers at MER2024-SEMI scale: 115,595 pool predictions, 6 classes.

Builds a project straight through the Store (samples, one finished round with pool and
out-of-fold predictions, 20,000 decisions already made; no features), serves the app in this
process, and times two actions three ways: server-side (the AppActions call, no HTTP), over
Gradio's HTTP API (POST /gradio_api/call/<name>, then its event stream: the queue protocol
the browser also uses) and through gradio_client. gradio_client polls its message queue
every 50 ms, so its floor, measured on a trivial endpoint in the same run, is printed too.
The actions:
  - a threshold change returning the updated per-class table (counts, expected precision);
  - loading the next card of the review queue (all classes, and one class with a
    minimum confidence).
The baseline, measured in the same run, answers the same two questions the naive way: load
every pool prediction and the decisions in force, then filter and sort in Python.

    python bench/bench_app.py [--pool 115595] [--repeat 30]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from mersemi.db.writes import DecisionIn  # noqa: E402
from mersemi.engine.results import RoundMetrics, RoundRecord, SplitMetrics  # noqa: E402
from mersemi.engine.selection import is_candidate  # noqa: E402
from mersemi.service.project import Project  # noqa: E402
from mersemi.service.review import round_view  # noqa: E402

LABELED, TEST, DECIDED = 5030, 1000, 20_000
TARGET_MS = 100.0


def build_project(root: Path, pool: int, seed: int = 0) -> Project:
    """Samples, one done round with pool / test / out-of-fold predictions, and decisions."""
    rng = np.random.default_rng(seed)
    project = Project.init(root)
    C = len(project.classes)
    n = LABELED + pool + TEST
    splits = ["labeled"] * LABELED + ["unlabeled"] * pool + ["test"] * TEST
    gold = rng.integers(0, C, n)
    project.store.samples.insert([
        {"id": i, "name": f"s{i:06d}", "split": sp, "gold_label": int(gold[i]) if sp != "unlabeled" else None,
         "true_label": int(gold[i]), "text": f"transcript {i}", "media": None}
        for i, sp in enumerate(splits)])

    def probs(k: int, truth: np.ndarray) -> np.ndarray:
        # Peaked on the truth most of the time, so confidences spread from 1/C to ~1.
        logits = rng.normal(0, 1, (k, C)) + 4.0 * rng.random((k, 1)) * np.eye(C)[truth]
        e = np.exp(logits - logits.max(1, keepdims=True))
        return (e / e.sum(1, keepdims=True)).astype(np.float32)

    ids = np.arange(n)
    lab, unl, tst = ids[:LABELED], ids[LABELED:LABELED + pool], ids[LABELED + pool:]
    rid = project.store.rounds.create(config={}, config_name="bench", thresholds={}, auto_accept=False,
                                      pid=os.getpid(), host=socket.gethostname())
    pool_probs = probs(pool, gold[unl])
    project.store.rounds.complete(
        rid, predictions=[("pool", unl, pool_probs), ("test", tst, probs(TEST, gold[tst])),
                          ("oof", lab, probs(LABELED, gold[lab]))],
        decisions=[], reviewer="auto", composition={},
        metrics=RoundRecord(metrics=RoundMetrics(cv=SplitMetrics())).to_json(), checkpoint=None)
    decided = rng.choice(unl, DECIDED, replace=False)
    predicted = pool_probs[decided - LABELED].argmax(1)
    project.store.decisions.record([DecisionIn(int(s), "accept" if k % 3 else "reject", int(p), rid)
                                    for k, (s, p) in enumerate(zip(decided, predicted))], "bench")
    return project


def naive_counts_and_top(project: Project) -> tuple[list[int], str]:
    """The baseline: the whole pool into Python, filtered and sorted there."""
    rnd = project.store.rounds.current()
    ids, probs = project.store.rounds.predictions(rnd.id, "pool")
    decided = set(project.store.decisions.in_force())
    th = np.asarray(project.store.thresholds.values())
    pred, conf = probs.argmax(1), probs.max(1)
    keep = is_candidate(pred, conf, np.array([i not in decided for i in ids.tolist()]), th)
    counts = [int(np.sum(keep & (pred == c))) for c in range(len(th))]
    order = np.lexsort((ids[keep], -conf[keep]))
    top = project.store.samples.names([int(ids[keep][order[0]])])
    return counts, next(iter(top.values()))


def http_call(http, base: str, name: str, *args):
    """Gradio's REST API: submit, then read the event stream to its `complete` event."""
    event_id = http.post(f"{base}/gradio_api/call/{name}", json={"data": list(args)}).json()["event_id"]
    event = None
    with http.stream("GET", f"{base}/gradio_api/call/{name}/{event_id}") as resp:
        for line in resp.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                data = json.loads(line[5:])
                if event == "error":
                    raise RuntimeError(f"{name}: {data}")
                return data[0]
    raise RuntimeError(f"{name}: the stream ended without a result")


def timed(fn, repeat: int) -> tuple[float, object]:
    """Median wall time in ms over `repeat` calls, and the last result."""
    times, out = [], None
    for i in range(repeat):
        t0 = time.perf_counter()
        out = fn(i)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=115_595)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()

    import httpx
    from gradio_client import Client

    from mersemi.ui.app import build_app, launch

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        build_project(Path(tmp) / "proj", args.pool).close()
        print(f"built a project with {args.pool:,} pool predictions, 6 classes, {DECIDED:,} decisions "
              f"in {time.time() - t0:.1f} s")

        with Project.open(Path(tmp) / "proj") as project:
            cold_t0 = time.perf_counter()
            round_view(project)  # what the app loads once per round, in the background
            cold_ms = (time.perf_counter() - cold_t0) * 1000
        # The app opens the project anew: its views (Project.views) start empty.

        demo = build_app(Path(tmp) / "proj")
        actions = demo.actions
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        launch(demo, port=port, block=False)
        base = f"http://127.0.0.1:{port}"
        client = Client(base + "/", verbose=False)
        http = httpx.Client(timeout=60)
        try:
            thresholds = [0.6, 0.7, 0.8, 0.9, 0.95]
            actions.training.warm()  # as build_app does in a thread: the timings below start warm

            rows = []

            def row(what, name, make_args):
                """Time one endpoint, its i-th call made with make_args(i), the three ways."""
                server_ms, _ = timed(lambda i: actions.endpoint(name)(*make_args(i)), args.repeat)
                http_ms, http_out = timed(lambda i: http_call(http, base, name, *make_args(i)), args.repeat)
                client_ms, _ = timed(lambda i: client.predict(*make_args(i), api_name=f"/{name}"), args.repeat)
                assert http_out["ok"], http_out
                rows.append((what, server_ms, http_ms, client_ms, len(json.dumps(http_out))))

            row("trivial endpoint (floor)", "training_status", lambda i: ())
            row("threshold change -> table", "set_thresholds", lambda i: ({"happy": thresholds[i % 5]}, ""))
            row("next card (all classes)", "next_candidate", lambda i: ("all", 0.0, i % 50))
            row("next card (sad, conf >= 0.8)", "next_candidate", lambda i: ("sad", 0.8, i % 50))

            actions.set_thresholds({"happy": 0.9})
            naive_ms, (naive_counts, naive_top) = timed(lambda i: naive_counts_and_top(actions.project),
                                                        max(3, args.repeat // 6))
            # Same answers, or the comparison means nothing.
            assert naive_counts == [r["candidates"] for r in actions.candidate_counts()["classes"]]
            assert naive_top == actions.next_candidate("all", 0.0, 0)["candidate"]["name"]
        finally:
            demo.close()
            actions.project.close()

    print(f"\nloading a round's arrays for tables and histograms (once per round, in the background "
          f"when the server starts and after training): {cold_ms:.0f} ms")
    print(f"baseline (whole pool into Python, filter + sort): {naive_ms:.0f} ms median\n")
    print(f"{'action':30} {'server':>8} {'HTTP API':>9} {'gradio_client':>14} {'baseline / HTTP':>16} "
          f"{'reply bytes':>12}")
    ok = True
    for what, server_ms, http_ms, client_ms, payload in rows:
        ok &= http_ms < TARGET_MS and client_ms < TARGET_MS
        print(f"{what:30} {server_ms:8.1f} {http_ms:9.1f} {client_ms:14.1f} {naive_ms / http_ms:16.1f} "
              f"{payload:12,}")
    print(f"\nms, medians over {args.repeat} calls; target < {TARGET_MS:.0f} ms end to end: "
          + ("met" if ok else "NOT met"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
