"""hostile_replay.py's API probes: calls to the app's HTTP API (Gradio's call endpoints,
upload and file routes) and the live `mersemi serve` they run against.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from hostile_env import Env, Result, free_port, limit_memory, port_answers, stop


# ---------------------------------------------------------------------- probes: the API

def api_call(env: Env, endpoint: str, *data) -> Result:
    """POST /gradio_api/call/<endpoint>, then the event stream: {"ok": true} is an acceptance,
    {"ok": false, "error": ...} a refusal, Gradio's error event or "internal error" a crash."""
    import httpx  # only the API probes need it

    with httpx.Client(timeout=60) as http:
        r = http.post(f"{env.base_url}gradio_api/call/{endpoint}", content=json.dumps({"data": list(data)}),
                      headers={"content-type": "application/json"})
        if r.status_code != 200:
            return Result(1, stderr=f"HTTP {r.status_code}: {r.text[:200]}", cli=False)
        stream = http.get(f"{env.base_url}gradio_api/call/{endpoint}/{r.json()['event_id']}")
    event, payload = None, None
    for line in stream.text.splitlines():
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: ") and event in ("complete", "error"):
            payload = json.loads(line[len("data: "):])
    if event != "complete":
        return Result(1, stderr=f"gradio {event}: {payload}", internal=True, cli=False)
    answer = payload[0] if isinstance(payload, list) and payload else {}
    if answer.get("ok"):
        return Result(0, stdout=json.dumps(answer)[:300], cli=False)
    error = str(answer.get("error"))
    return Result(1, stderr=error, internal="internal error" in error, cli=False)


def api(endpoint: str, *data) -> Callable[[Env], Result]:
    def call(env: Env) -> Result:
        return api_call(env, endpoint, *[d(env) if callable(d) else d for d in data])
    return call


def pool_name(i: int, suffix: str = "") -> Callable[[Env], str]:
    return lambda env: env.pool[i] + suffix


def api_upload(env: Env) -> Result:
    """30 MB POSTed to /gradio_api/upload, although the app has no upload field. Whatever the
    server stored is removed again."""
    import httpx

    with httpx.Client(timeout=120) as http:
        r = http.post(f"{env.base_url}gradio_api/upload",
                      files={"files": ("big.bin", b"\0" * (30 << 20), "application/octet-stream")})
    if r.status_code >= 400:
        return Result(1, stderr=f"HTTP {r.status_code}", cli=False)
    stored = r.json() if r.headers.get("content-type", "").startswith("application/json") else []
    for p in stored if isinstance(stored, list) else []:
        path = Path(str(p))
        if path.is_file() and path.name == "big.bin":
            path.unlink()
            try:
                path.parent.rmdir()
            except OSError:
                pass
    return Result(0, stdout=f"HTTP {r.status_code}: stored {stored}", cli=False)


def api_foreign_file(env: Env) -> Result:
    """GET /gradio_api/file=<a file another Gradio app left in the machine-wide Gradio temp
    folder>: one we put there for the probe and remove afterwards."""
    import httpx

    shared = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")
    made_shared = not shared.exists()
    folder = shared / uuid.uuid4().hex
    folder.mkdir(parents=True)
    secret = folder / "other-app-export.csv"
    secret.write_text("name,label\nsecret_sample,happy\n")
    try:
        with httpx.Client(timeout=60) as http:
            r = http.get(f"{env.base_url}gradio_api/file={secret}")
    finally:
        shutil.rmtree(folder)
        if made_shared:
            shutil.rmtree(shared, ignore_errors=True)
    if r.status_code == 200 and "secret_sample" in r.text:
        return Result(0, stdout="HTTP 200: the other app's file was served", cli=False)
    return Result(1, stderr=f"HTTP {r.status_code}", cli=False)


def start_server(env: Env) -> subprocess.Popen | str:
    """`mersemi serve P` on a free port for the API probes; the process, or why it did not start."""
    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(env.code.argv(["serve", str(env.project), "--port", str(port)]), stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log, env=env.code.env, cwd=env.code.cwd,
                            preexec_fn=limit_memory, start_new_session=True)
    deadline = time.monotonic() + 90
    while proc.poll() is None and time.monotonic() < deadline:
        if port_answers(port):
            env.base_url = f"http://127.0.0.1:{port}/"
            return proc
        time.sleep(0.5)
    if proc.poll() is None:
        stop(proc)
    log.seek(0)
    return "serve did not start: " + (log.read().decode(errors="replace").strip().splitlines() or ["?"])[-1]
