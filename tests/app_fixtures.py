"""A small project built straight through the Store: samples, one finished round with pool,
test and out-of-fold predictions, a media folder with one real clip. No engine needed, so the
review flow is tested on known numbers."""
from __future__ import annotations

import os
import socket
import sqlite3
import wave
from pathlib import Path

import numpy as np

from mersemi.engine.results import Composition, RoundMetrics, RoundRecord, SplitMetrics
from mersemi.service.project import Project

CLASSES = ["calm", "joy", "anger"]
N_LABELED, N_POOL, N_TEST = 30, 60, 6


def pool_confidences(n: int = N_POOL) -> np.ndarray:
    """Distinct confidences from 0.99 down to 0.40, so every queue order is unambiguous; as
    float32 values, which is how the store keeps probabilities."""
    return np.linspace(0.99, 0.40, n).astype(np.float32).astype(np.float64)


def pool_probs(classes: int = len(CLASSES), n: int = N_POOL) -> np.ndarray:
    """Sample i is predicted class i % C with confidence pool_confidences()[i]."""
    conf = pool_confidences(n)
    probs = np.empty((n, classes), np.float32)
    for i, c in enumerate(conf):
        probs[i] = (1 - c) / (classes - 1)
        probs[i, i % classes] = c
    return probs


def write_wav(path: Path, seconds: float = 0.2, rate: int = 8000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(tone.tobytes())


def make_review_project(root: Path, thresholds: float = 0.5, db_url: str | None = None,
                        classes: list[str] = CLASSES) -> Project:
    """Classes calm/joy/anger (or `classes`); pool samples u00..u59 (u00 has a clip, u01 points
    outside the media folder); out-of-fold predictions right for 4 of every 5 gold samples.
    `db_url`: a PostgreSQL database for the store (None or a SQLite URL: DIR/project.db)."""
    project = Project.init(root, classes, db_url=None if db_url is None or db_url.startswith("sqlite") else db_url)
    C = len(classes)
    media = root / "media"
    write_wav(media / "u00.wav")
    (root / "secret.wav").write_bytes((media / "u00.wav").read_bytes())
    rows = [{"id": i, "name": f"l{i:02d}", "split": "labeled", "gold_label": i % C, "true_label": None,
             "text": None, "media": None} for i in range(N_LABELED)]
    rows += [{"id": N_LABELED + i, "name": f"u{i:02d}", "split": "unlabeled", "gold_label": None,
              "true_label": i % C, "text": f"transcript of u{i:02d}",
              "media": {0: "u00.wav", 1: "../secret.wav"}.get(i)} for i in range(N_POOL)]
    first_test = N_LABELED + N_POOL
    rows += [{"id": first_test + i, "name": f"t{i}", "split": "test", "gold_label": i % C, "true_label": None,
              "text": None, "media": None} for i in range(N_TEST)]
    store = project.store
    store.samples.insert(rows)
    store.meta.set(media_root=str(media))
    store.thresholds.set({c: thresholds for c in range(C)}, by="fixture")

    oof = np.full((N_LABELED, C), 0.05, np.float32)
    for i in range(N_LABELED):
        predicted = i % C if i % 5 else (i + 1) % C   # every fifth one wrong
        oof[i, predicted] = 0.9 - 0.01 * i
    test = np.full((N_TEST, C), 0.1, np.float32)
    test[np.arange(N_TEST), np.arange(N_TEST) % C] = 0.8
    rid = store.rounds.create(config={}, config_name="fixture", thresholds={}, auto_accept=False,
                              pid=os.getpid(), host=socket.gethostname())
    store.rounds.complete(rid, predictions=[
        ("pool", np.arange(N_LABELED, N_LABELED + N_POOL), pool_probs(C)),
        ("test", np.arange(first_test, first_test + N_TEST), test),
        ("oof", np.arange(N_LABELED), oof)],
        decisions=[], reviewer="auto", composition=Composition(gold=N_LABELED, pseudo=0, total=N_LABELED).to_json(),
        metrics=RoundRecord(metrics=RoundMetrics(cv=SplitMetrics(waf=0.8, f1=[0.8, 0.8, 0.8]))).to_json(),
        checkpoint=None)
    return project


def db_rows(root: Path, sql: str, *params) -> list[tuple]:
    """Rows of a read-only query on a project's SQLite file (what was really written)."""
    con = sqlite3.connect(f"file:{root / 'project.db'}?mode=ro", uri=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def call(client, endpoint: str, *args, **kwargs):
    """An API endpoint through gradio_client."""
    return client.predict(*args, api_name=f"/{endpoint}", **kwargs)


def expected_count(cls: int, threshold: float) -> int:
    conf = pool_confidences()
    return int(sum(1 for i in range(N_POOL) if i % len(CLASSES) == cls and conf[i] >= threshold))


# ---------------------------------------------------------------------- live servers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_in_process(root: Path, presets: dict[str, Path] | None = None, port: int | None = None):
    """Launch the app on `port` (default: a free one) in this process; returns (blocks, url)."""
    from mersemi.ui.app import build_app, launch

    demo = build_app(root, presets)
    port = port or free_port()
    launch(demo, port=port, block=False)
    return demo, f"http://127.0.0.1:{port}/"


def stop_in_process(demo) -> None:
    demo.close()
    demo.actions.project.close()


def wait_until(predicate, timeout: float, every: float = 0.5, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def synthetic_project(root: Path, data: Path, scale: float = 0.1) -> Project:
    """A project importing the synthetic generator's data at a small scale (no round yet)."""
    from mersemi.engine.synthetic import make_synthetic

    if not (data / "samples.csv").is_file():
        make_synthetic(data, scale=scale, seed=0)
    project = Project.init(root)
    project.import_native(data)
    return project


FAST_PRESET = Path(__file__).resolve().parent / "fast.yaml"
