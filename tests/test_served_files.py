"""The server hands out media clips and nothing else (issue 10, point 8).

A native import's media folder used to be the import folder itself, which the server opened
to Gradio's file route whole: samples.csv (with the pool's hidden true_label) and the feature
matrices were downloadable, with or without a login. Real servers here, on a project
imported from a real native folder, requested over HTTP as any client could.
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest

from app_fixtures import free_port, stop_in_process, write_wav
from mersemi.service.project import Project

pytestmark = pytest.mark.slow
CLASSES = ["calm", "joy", "anger"]


def native_folder_with_clips(folder: Path, beside: bool) -> Path:
    """samples.csv with hidden true labels, two feature matrices and two clips, either in a
    media/ subfolder or right beside samples.csv (the media root is then the import folder)."""
    folder.mkdir(parents=True)
    clip_dir = folder if beside else folder / "media"
    rows = ["name,split,label,true_label,media"]
    for i in range(12):
        split = "labeled" if i < 6 else "unlabeled"
        label = CLASSES[i % 3] if split == "labeled" else ""
        media = ""
        if i in (6, 7):
            media = f"u{i}.wav" if beside else f"media/u{i}.wav"
            write_wav(clip_dir / f"u{i}.wav")
        rows.append(f"s{i},{split},{label},{CLASSES[i % 3]},{media}")
    (folder / "samples.csv").write_text("\n".join(rows) + "\n")
    rng = np.random.default_rng(0)
    np.save(folder / "audio.npy", rng.normal(size=(12, 4)).astype(np.float32))
    np.save(folder / "text.npy", rng.normal(size=(12, 3)).astype(np.float32))
    return folder


def imported_project(root: Path, data: Path) -> None:
    """Import natively, then a finished round straight through the store (no training), in
    which the pool sample with a clip is the first candidate."""
    with Project.init(root, CLASSES) as project:
        project.import_native(data)
        store = project.store
        store.thresholds.set({c: 0.5 for c in range(3)}, by="fixture")
        pool = np.arange(6, 12)
        probs = np.full((6, 3), 0.05, np.float32)
        probs[np.arange(6), np.arange(6) % 3] = np.linspace(0.95, 0.6, 6)
        rid = store.rounds.create(config={}, config_name="fixture", thresholds={}, auto_accept=False,
                                  pid=os.getpid(), host=socket.gethostname())
        store.rounds.complete(rid, predictions=[("pool", pool, probs)], decisions=[], reviewer="auto",
                              composition={"gold": 6, "total": 6}, metrics={}, checkpoint=None)


def call(http: httpx.Client, base: str, endpoint: str, *data) -> dict:
    r = http.post(f"{base}gradio_api/call/{endpoint}", json={"data": list(data)})
    assert r.status_code == 200, r.text
    text = http.get(f"{base}gradio_api/call/{endpoint}/{r.json()['event_id']}").text
    payload = [line[6:] for line in text.splitlines() if line.startswith("data: ")][-1]
    return json.loads(payload)[0]


def file_url(base: str, path: str | Path) -> str:
    return f"{base}gradio_api/file={path}"


@pytest.mark.parametrize("beside", [False, True], ids=["media-subfolder", "clips-beside-samples-csv"])
@pytest.mark.parametrize("auth", [None, ("ann", "secret")], ids=["open", "login"])
def test_only_clips_are_served(tmp_path, beside, auth):
    from mersemi.ui.app import build_app, launch

    data = native_folder_with_clips(tmp_path / "data", beside)
    root = tmp_path / "proj"
    imported_project(root, data)
    demo = build_app(root)
    port = free_port()
    launch(demo, port=port, auth=auth, block=False)
    base = f"http://127.0.0.1:{port}/"
    forbidden = [data / "samples.csv", data / "audio.npy", data / "text.npy", root / "project.db",
                 root / "features" / "audio.npy", root / "features" / "manifest.json"]
    clip_dir = data if beside else data / "media"
    try:
        with httpx.Client(timeout=60) as http:
            if auth:
                for path in forbidden + [clip_dir / "u6.wav"]:   # nothing at all before the login
                    assert http.get(file_url(base, path)).status_code in (401, 403), path
                r = http.post(f"{base}login", data={"username": auth[0], "password": auth[1]})
                assert r.status_code == 200, r.text
            total = call(http, base, "next_candidate", "all", 0.0, 0)["total"]
            card = next(c for c in (call(http, base, "next_candidate", "all", 0.0, k)["candidate"]
                                    for k in range(total)) if c["name"] == "s6")   # the one with a clip
            assert card["media_kind"] == "audio"
            clip = http.get(file_url(base, card["media"]))        # the card's clip plays
            assert clip.status_code == 200 and clip.content == (clip_dir / "u6.wav").read_bytes()
            for path in forbidden:
                assert http.get(file_url(base, path)).status_code == 403, path
            for sneaky in (f"{clip_dir}/../samples.csv", f"{clip_dir}/%2e%2e/samples.csv",
                           f"{Path(card['media']).parent}/../../{quote(str(data / 'samples.csv'))}"):
                assert http.get(file_url(base, sneaky)).status_code in (403, 404), sneaky
            # The clip's original path is not a way in either: only the served copy is.
            assert http.get(file_url(base, clip_dir / "u6.wav")).status_code == 403
    finally:
        stop_in_process(demo)
        demo.actions.shutdown()
