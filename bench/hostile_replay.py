"""Replay issue 21's hostile inputs against the `mersemi` command line (and a few against the
app's HTTP API) and report, per probe, what happened.

    python bench/hostile_replay.py [--postgres] [--out FILE] [--ref GITREF] [--only ID ...] [--keep]

(any python: the script runs itself again under the project's .venv/bin/python, which has
httpx for the API probes and pytest for tests/postgres_server.py). About 3 minutes for the
SQLite pass and as much again for PostgreSQL, on 2 cores.

Each probe is a record: an id, what the issue says, the command it runs and the outcome the
issue asks for:

- "refused": exit code 1, exactly one non-empty line on stderr starting with "mersemi:"
  (a "mersemi: note: ..." line about a repair is not counted), no "Traceback" anywhere, and
  nothing in the watched folder changed;
- "accepted": exit 0 (or, for `serve`, the port answers), and only the files the probe names
  changed (the control probes: they show that the refusals are not a blanket "no").

A result is "ok" or lists what went wrong: traceback, wrong-acceptance (a refusal was due),
wrong-refusal, multi-line (or no-message / exit-N: a refusal that is not one line, exit 1),
outside-changed (a file outside the project changed: path, type, size, mtime or sha256 differ),
hang (killed after its timeout), killed (ended by a signal: out of memory under the 2 GB
address-space limit every probe runs with), project-damaged, round-started (a `train` that
should refuse its config started a round). The table shows the first line of stderr, or for
a traceback its last line (the exception).

Everything runs in one temporary folder, which is the sentinel: before and after each probe
every entry in it except the project folders is recorded (path, type, size, mtime, sha256 of
regular files; FIFOs and devices are never opened). Writes are never aimed at a real device or
at /etc: /dev/null is stood in for by a character device node 1:3 made with mknod in the
temporary folder (a write to it is discarded; if the tool replaces it, the node becomes a
regular file there) and by a FIFO, /etc/passwd by a regular file of ours. /proc/self and
/proc/self/status are used as they are (nothing can be created there). Reads may target
/dev/zero, always under a timeout and the 2 GB limit.

The projects are built once per database (synth --scale 0.05, init, import, train with
tests/fast.yaml); with --postgres a throwaway PostgreSQL server (tests/postgres_server.py)
holds the second set. Probes that do not depend on the database (synth, demo, serve's
--users and --host) run once, in the SQLite pass, shown with database "-". The code run is a
copy of the working tree's packages taken at the start (edits during the run do not mix in;
a copy that does not start is taken again, 30 s later), or with --ref GITREF a commit's
(git archive), put first on PYTHONPATH.
Always exits 0: it is a report. Probes run one after another (the machine is shared).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv" / "bin" / "python"
MEMORY_LIMIT = 2 << 30  # address space of every probe: a read of /dev/zero ends in MemoryError
TIMEOUT_S = 30
REFUSED, ACCEPTED = "refused", "accepted"
PACKAGES = ("engine", "db", "service", "ui", "configs")


# ---------------------------------------------------------------------- records

@dataclass
class Call:
    """One command line to run and what the runner must arrange around it."""
    argv: list[str]
    allowed: tuple[Path, ...] = ()       # paths (and what is under them) the call may create or change
    timeout: float = TIMEOUT_S
    port: int | None = None              # serve/demo: the port that, answering, means "serving"
    drain: Path | None = None            # a FIFO held open for reading while the call runs
    after: Callable[[], list[str]] | None = None   # extra checks, returning flags


@dataclass
class Result:
    code: int | None                     # exit code; None when killed by us
    stdout: str = ""
    stderr: str = ""
    hung: bool = False
    served: bool = False
    internal: bool = False               # API: Gradio's error event or "internal error"
    cli: bool = True                     # a command line (its message must start "mersemi:")


@dataclass
class Probe:
    id: str
    what: str
    expect: str
    build: Callable[[Env], Call] | None = None       # a command line ...
    api: Callable[[Env], Result] | None = None       # ... or a call to the live server
    once: bool = False                               # database-independent: SQLite pass only


@dataclass
class Row:
    probe: Probe
    db: str
    flags: list[str]
    exit: str
    message: str
    changes: list[str] = field(default_factory=list)


@dataclass
class Env:
    """One database's pass: the folders, the trained project, the server for API probes."""
    db: str
    tmp: Path                    # the watched folder
    data: Path                   # synthetic native data, shared by the passes
    code: Code
    pg: object | None = None     # tests/postgres_server.PostgresServer
    project: Path | None = None
    pool: list[str] = field(default_factory=list)    # unlabeled sample names (decide probes)
    unwatched: set[Path] = field(default_factory=set)
    base_url: str | None = None  # the live server, for API probes
    serial: itertools.count = field(default_factory=itertools.count)

    def scratch(self, probe_id: str) -> Path:
        d = self.tmp / "x" / self.db / f"{probe_id}-{next(self.serial)}"
        d.mkdir(parents=True)
        return d

    def init_argv(self, folder: Path) -> list[str]:
        if self.pg is None:
            return ["init", str(folder)]
        return ["init", str(folder), "--db", self.pg.url(self.pg.new_database())]

    def new_project(self, name: str, data: Path | None = None) -> Path:
        """A fresh project (not watched), imported from `data` when given."""
        folder = self.tmp / "projects" / self.db / f"{name}-{next(self.serial)}"
        folder.parent.mkdir(parents=True, exist_ok=True)
        self.unwatched.add(folder)
        self.code.check(self.init_argv(folder))
        if data is not None:
            self.code.check(["import", str(folder), "--native", str(data)])
        return folder


@dataclass
class Code:
    """How to run the command line: `python -m mersemi.ui.cli` on the frozen copy (make_code)."""
    env: dict[str, str]
    fast_config: Path
    cwd: Path

    def argv(self, args: list[str]) -> list[str]:
        return [str(PYTHON), "-m", "mersemi.ui.cli", *args]

    def run(self, call: Call) -> Result:
        return run_command(self.argv(call.argv), self.env, self.cwd, call)

    def check(self, args: list[str], timeout: float = 300) -> str:
        """A setup step that must succeed; its stdout."""
        res = self.run(Call(args, timeout=timeout))
        if res.code != 0:
            raise SetupError(f"mersemi {' '.join(args[:2])} failed: {first_line(res)}")
        return res.stdout


class SetupError(RuntimeError):
    pass


# ---------------------------------------------------------------------- running one command

def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_command(argv: list[str], env: dict[str, str], cwd: Path, call: Call) -> Result:
    """Run `argv` in its own process group under the memory limit; kill it (the group) at the
    timeout, or as soon as `call.port` answers (it is serving)."""
    reader = os.open(call.drain, os.O_RDONLY | os.O_NONBLOCK) if call.drain else None
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                cwd=cwd, preexec_fn=limit_memory, start_new_session=True)
        hung, served = wait_for(proc, call, reader)
        if proc.poll() is None:
            stop(proc)
        if reader is not None:
            drain(reader)
            os.close(reader)
        out.seek(0)
        err.seek(0)
        code = None if (hung or served) else proc.returncode
        return Result(code, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                      hung=hung, served=served)


def wait_for(proc: subprocess.Popen, call: Call, reader: int | None) -> tuple[bool, bool]:
    """(hung, served) once the process ends, serves, or runs past its timeout."""
    deadline = time.monotonic() + call.timeout
    while proc.poll() is None:
        if call.port is not None and port_answers(call.port):
            return False, True
        if time.monotonic() > deadline:
            return True, False
        if reader is not None:
            drain(reader)
        time.sleep(0.25)
    return False, False


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the group (serve stops like Ctrl-C), SIGKILL after 15 s."""
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def drain(fd: int) -> None:
    try:
        while os.read(fd, 1 << 16):
            pass
    except BlockingIOError:
        pass


def port_answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------- the sentinel

def snapshot(root: Path, unwatched: set[Path], cache: dict) -> dict[str, tuple]:
    """Every entry under `root` except the unwatched folders: (type, size, mtime, sha256 or link
    target). Only regular files are read; hashes are reused while (inode, size, ctime) hold."""
    entries = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [n for n in dirnames if here / n not in unwatched]
        for name in dirnames + filenames:
            path = here / name
            try:
                entries[str(path)] = describe(path, cache)
            except FileNotFoundError:
                continue
    return entries


def describe(path: Path, cache: dict) -> tuple:
    st = os.lstat(path)
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return ("link", os.readlink(path))
    if stat.S_ISDIR(mode):
        return ("folder",)
    if stat.S_ISREG(mode):
        key = (str(path), st.st_ino, st.st_size, st.st_ctime_ns)
        if key not in cache:
            cache[key] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        return ("file", st.st_size, st.st_mtime_ns, cache[key])
    kind = "fifo" if stat.S_ISFIFO(mode) else "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "other"
    return (kind, st.st_rdev, st.st_mtime_ns)


def differences(before: dict, after: dict, allowed: tuple[Path, ...]) -> list[str]:
    out = []
    for path in sorted(set(before) | set(after)):
        if before.get(path) == after.get(path) or any(Path(path).is_relative_to(p) for p in allowed):
            continue
        was, now = before.get(path), after.get(path)
        out.append(f"{path}: {was[0] if was else 'absent'} -> {now[0] if now else 'absent'}"
                   + (" (content)" if was and now and was[0] == now[0] else ""))
    return out


# ---------------------------------------------------------------------- classification

def classify(expect: str, res: Result, changes: list[str], extra: list[str]) -> list[str]:
    flags = []
    if res.hung:
        flags.append("hang")
    elif res.code is not None and res.code < 0:
        flags.append("killed")
    if "Traceback" in res.stdout + res.stderr or res.internal:
        flags.append("traceback")
    if changes:
        flags.append("outside-changed")
    flags += extra
    if expect == REFUSED:
        if res.code == 0 or res.served:
            flags.append("wrong-acceptance")
        elif not set(flags) & {"hang", "killed", "traceback"}:
            flags += message_flags(res)
    elif res.code != 0 and not res.served and not set(flags) & {"hang", "killed"}:
        flags.append("wrong-refusal")
    return flags or ["ok"]


def message_flags(res: Result) -> list[str]:
    """A refusal's message: exit 1 and one line ("mersemi: ..." for the command line)."""
    lines = error_lines(res.stderr)
    flags = [] if res.code == 1 else [f"exit-{res.code}"]
    if not lines:
        flags.append("no-message")
    elif len(lines) > 1 or (res.cli and not lines[0].startswith("mersemi:")):
        flags.append("multi-line")
    return flags


def error_lines(stderr: str) -> list[str]:
    lines = [ln.strip() for chunk in stderr.splitlines() for ln in chunk.split("\r")]
    return [ln for ln in lines if ln and not ln.startswith("mersemi: note:")]


def first_line(res: Result) -> str:
    lines = error_lines(res.stderr)
    if "Traceback" in res.stderr and lines:
        raised = [ln for ln in lines if EXCEPTION_LINE.match(ln)] or lines
        return "(traceback) " + raised[-1]
    if lines:
        return lines[0]
    return (res.stdout.strip().splitlines() or [""])[0]


EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")


def cell(text: str, width: int = 110) -> str:
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    text = text.replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


# ---------------------------------------------------------------------- stand-ins and data

def null_device(folder: Path) -> Path | None:
    """A character device node 1:3 (the null device: writes are discarded) in our folder."""
    path = folder / "null"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except OSError:
        return None
    return path


def fifo(folder: Path, name: str = "fifo") -> Path:
    path = folder / name
    os.mkfifo(path)
    return path


def regular_file(folder: Path, name: str = "passwd") -> Path:
    """The stand-in for /etc/passwd: a regular file of ours."""
    path = folder / name
    path.write_text("root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n")
    return path


def native_variant(env: Env, name: str, edit_rows: Callable[[list[dict]], None] | None = None,
                   text_npy: str = "copy") -> Path:
    """A copy of the synthetic native data (without clips) with its rows edited; text.npy
    copied, or replaced by a folder ("folder") or a link to /dev/zero ("devzero")."""
    folder = env.tmp / "data" / name
    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    with open(env.data / "samples.csv", newline="", encoding="utf-8") as f:
        rows = [{k: v for k, v in r.items() if k != "media"} for r in csv.DictReader(f)]
    if edit_rows:
        edit_rows(rows)
    write_rows(folder / "samples.csv", rows)
    for npy in env.data.glob("*.npy"):
        if npy.name == "text.npy" and text_npy == "folder":
            (folder / npy.name).mkdir()
        elif npy.name == "text.npy" and text_npy == "devzero":
            (folder / npy.name).symlink_to("/dev/zero")
        else:
            shutil.copyfile(npy, folder / npy.name)
    return folder


def write_rows(path: Path, rows: list[dict]) -> None:
    """CSV rows; the two characters "\\0" in a value become a NUL byte in the file."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    path.write_bytes(path.read_bytes().replace(b"\\0", b"\0"))


def decisions_csv(folder: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    path = folder / "decisions.csv"
    write_rows(path, [dict(zip(("name", "decision", "label", "note"), r)) for r in rows])
    return path


def mertools_data(env: Env) -> tuple[Path, dict[str, str], Path]:
    """A small MERTools layout (tests/fixtures.build_mertools): its root, the modality map,
    and a copy of the audio feature folder outside the features root."""
    root = env.tmp / "data" / "mertools"
    tests_on_path()
    from fixtures import FEATURE_FOLDERS, build_mertools  # the tests' builder

    if not root.exists():
        data = build_mertools(root, modalities=("audio", "text"), transcripts=False, media=False)
        shutil.copytree(data.features / data.modality_map["audio"], env.tmp / "data" / "elsewhere" / "audio")
    labels = root / "label-6way.npz"
    return labels, {m: FEATURE_FOLDERS[m][0] for m in ("audio", "text")}, env.tmp / "data" / "elsewhere" / "audio"


# ---------------------------------------------------------------------- post-checks

def project_intact(env: Env, project: Path, guarded: Path) -> Callable[[], list[str]]:
    """After the call: `guarded` has its old bytes, a SQLite store passes integrity_check,
    and `mersemi status` opens the project."""
    digest = hashlib.sha256(guarded.read_bytes()).hexdigest()

    def check() -> list[str]:
        problems = hashlib.sha256(guarded.read_bytes()).hexdigest() != digest
        if guarded.name == "project.db":
            try:
                with sqlite3.connect(f"file:{guarded}?mode=ro", uri=True) as con:
                    problems |= con.execute("PRAGMA integrity_check").fetchone()[0] != "ok"
            except sqlite3.DatabaseError:
                problems = True
        problems |= env.code.run(Call(["status", str(project)])).code != 0
        return ["project-damaged"] if problems else []
    return check


def rounds_unchanged(env: Env) -> Callable[[], list[str]]:
    """After a `train` that must refuse its config: no round was started."""
    def count() -> int | None:
        res = env.code.run(Call(["status", str(env.project), "--json"]))
        return len(json.loads(res.stdout)["rounds"]) if res.code == 0 else None

    before = count()
    return lambda: [] if count() == before else ["round-started"]


# ---------------------------------------------------------------------- probes: export

def export_to(target: Path, env: Env, **kw) -> Call:
    return Call(["export", str(env.project), "--what", "labels", "--out", str(target)], **kw)


def p_export_device(env: Env) -> Call:
    node = null_device(env.scratch("E1"))
    if node is None:
        raise SetupError("mknod refused here: no device stand-in (E2 covers a FIFO)")
    return export_to(node, env)


def p_export_fifo(env: Env) -> Call:
    pipe = fifo(env.scratch("E2"))
    return export_to(pipe, env, drain=pipe)


def p_export_folder(env: Env) -> Call:
    return export_to(env.scratch("E3"), env)


def p_export_planted_link(env: Env) -> Call:
    """ln -s P/project.db X/out.csv.tmp, then export --out X/out.csv: the link and the
    project survive, the export lands in X/out.csv."""
    project = env.new_project("planted", native_variant(env, "clean"))
    guarded = project / "project.db" if (project / "project.db").exists() else project / "database.url"
    x = env.scratch("E4")
    (x / "out.csv.tmp").symlink_to(guarded)
    return Call(["export", str(project), "--what", "labels", "--out", str(x / "out.csv")],
                allowed=(x / "out.csv",), after=project_intact(env, project, guarded))


def p_export_link_out(env: Env) -> Call:
    x = env.scratch("E5")
    victim = x / "victim.txt"
    victim.write_text("somebody's file\n")
    (x / "out.csv").symlink_to(victim)
    return export_to(x / "out.csv", env)


def p_export_proc(env: Env) -> Call:
    return export_to(Path("/proc/self/status"), env)


def p_export_new(env: Env) -> Call:
    target = env.scratch("E7") / "labels.csv"
    return export_to(target, env, allowed=(target,))


def p_export_replace(env: Env) -> Call:
    target = env.scratch("E8") / "labels.csv"
    target.write_text("old export\n")
    return export_to(target, env, allowed=(target,))


# ---------------------------------------------------------------------- probes: init, synth, demo

def p_init_file(env: Env) -> Call:
    return Call(env.init_argv(regular_file(env.scratch("I1"))))


def p_init_device(env: Env) -> Call:
    folder = env.scratch("I2")
    return Call(env.init_argv(null_device(folder) or fifo(folder)))


def p_init_proc(env: Env) -> Call:
    return Call(env.init_argv(Path("/proc/self")))


def p_init_fifo(env: Env) -> Call:
    return Call(env.init_argv(fifo(env.scratch("I4"))))


def init_classes(probe_id: str, classes: str) -> Callable[[Env], Call]:
    def build(env: Env) -> Call:
        target = env.scratch(probe_id) / "project"  # a new name: what init makes there is the project
        return Call(env.init_argv(target) + ["--classes", classes], allowed=(target,))
    return build


def p_synth_seed(env: Env) -> Call:
    target = env.scratch("S1") / "data"  # a new name, synth's own output
    return Call(["synth", str(target), "--scale", "0.05", "--seed", "-1"], allowed=(target,))


def p_demo_cache_file(env: Env) -> Call:
    port = free_port()
    cache = regular_file(env.scratch("D1"))
    return Call(["demo", "--cache", str(cache), "--port", str(port)], port=port, timeout=120)


# ---------------------------------------------------------------------- probes: thresholds, decide

def thresholds_by(name: str) -> Callable[[Env], Call]:
    def build(env: Env) -> Call:
        return Call(["thresholds", str(env.project), "--set", "happy=0.9", "--by", name])
    return build


def decide(probe_id: str, rows: Callable[[list[str]], list[tuple]], reviewer: str | None = None
           ) -> Callable[[Env], Call]:
    def build(env: Env) -> Call:
        path = decisions_csv(env.scratch(probe_id), rows(env.pool))
        extra = [] if reviewer is None else ["--reviewer", reviewer]
        return Call(["decide", str(env.project), "--file", str(path), *extra])
    return build


# ---------------------------------------------------------------------- probes: import

def import_native(name: str, edit: Callable[[list[dict]], None] | None = None, text_npy: str = "copy"
                  ) -> Callable[[Env], Call]:
    def build(env: Env) -> Call:
        data = native_variant(env, name, edit, text_npy)
        return Call(["import", str(env.new_project(f"import-{name}")), "--native", str(data)], timeout=60)
    return build


def rename_first(new_name: str) -> Callable[[list[dict]], None]:
    def edit(rows: list[dict]) -> None:
        rows[0]["name"] = new_name
    return edit


def all_test(rows: list[dict]) -> None:
    for r in rows:
        r["split"] = "test"
        r["label"] = r["label"] or r["true_label"]


def none_labeled(rows: list[dict]) -> None:
    for r in rows:
        if r["split"] == "labeled":
            r["split"], r["label"] = "unlabeled", ""


def import_mertools(audio: str) -> Callable[[Env], Call]:
    """audio: "inside" (the normal map), "absolute" or "dotdot" (a folder beside the root)."""
    def build(env: Env) -> Call:
        labels, folders, elsewhere = mertools_data(env)
        if audio == "absolute":
            folders["audio"] = str(elsewhere)
        elif audio == "dotdot":
            folders["audio"] = os.path.relpath(elsewhere, labels.parent / "features")
        argv = ["import", str(env.new_project(f"mertools-{audio}")), "--mertools", "--labels", str(labels),
                "--features", str(labels.parent / "features")]
        for m, f in folders.items():
            argv += ["--modality", f"{m}={f}"]
        return Call(argv, timeout=60)
    return build


# ---------------------------------------------------------------------- probes: configs

def train_config(probe_id: str, yaml_text: str = "", path: str | None = None, extends: str | None = None,
                 expect_round: bool = False) -> Callable[[Env], Call]:
    """train P --config F: F a YAML file that extends tests/fast.yaml (or `extends`) and adds
    `yaml_text`; or `path` as given ("FIFO": a FIFO of ours with no writer)."""
    def build(env: Env) -> Call:
        config = path
        if config is None:
            file = env.scratch(probe_id) / "config.yaml"
            file.write_text(f"extends: {extends or env.code.fast_config}\n{yaml_text}")
            config = str(file)
        elif config == "FIFO":
            config = str(fifo(env.scratch(probe_id), "config.yaml"))
        return Call(["train", str(env.project), "--config", config], timeout=180 if expect_round else 60,
                    after=None if expect_round else rounds_unchanged(env))
    return build


# ---------------------------------------------------------------------- probes: serve

def serve(extra: list[str]) -> Callable[[Env], Call]:
    def build(env: Env) -> Call:
        port = free_port()
        return Call(["serve", str(env.project), "--port", str(port), *extra], port=port, timeout=60)
    return build


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


# ---------------------------------------------------------------------- the list

LONG = "x" * 129
PROBES = [
    Probe("E1", "export --out a device (stand-in for /dev/null: a char device node 1:3 of ours)", REFUSED,
          p_export_device),
    Probe("E2", "export --out a FIFO (a special file; read end held open)", REFUSED, p_export_fifo),
    Probe("E3", "export --out an existing folder", REFUSED, p_export_folder),
    Probe("E4", "ln -s P/project.db X/out.csv.tmp; export --out X/out.csv: link and project intact, "
                "export written", ACCEPTED, p_export_planted_link),
    Probe("E5", "export --out a link to somebody's file (never follow a link)", REFUSED, p_export_link_out),
    Probe("E6", "export --out /proc/self/status", REFUSED, p_export_proc),
    Probe("E7", "control: export --out a new file", ACCEPTED, p_export_new),
    Probe("E8", "control: export --out an existing regular file", ACCEPTED, p_export_replace),
    Probe("I1", "init on a regular file (stand-in for /etc/passwd)", REFUSED, p_init_file),
    Probe("I2", "init on a device (stand-in for /dev/null: char device node 1:3 of ours)", REFUSED,
          p_init_device),
    Probe("I3", "init /proc/self", REFUSED, p_init_proc),
    Probe("I4", "init on a FIFO", REFUSED, p_init_fifo),
    Probe("I5", "init --classes with a newline in a class name", REFUSED,
          init_classes("I5", "neutral,ang\nry,happy,sad,worried,surprise")),
    Probe("I6", "init --classes with a control character (BEL) in a class name", REFUSED,
          init_classes("I6", "neutral,angry,hap\x07py,sad,worried,surprise")),
    Probe("I7", "init --classes with an escape sequence in a class name", REFUSED,
          init_classes("I7", "neutral,angry,\x1b[31mhappy,sad,worried,surprise")),
    Probe("S1", "synth --seed -1", REFUSED, p_synth_seed, once=True),
    Probe("D1", "demo --cache a regular file (stand-in for /etc/passwd); serving = accepted", REFUSED,
          p_demo_cache_file, once=True),
    Probe("T1", "thresholds --by a name of 129 characters", REFUSED, thresholds_by(LONG)),
    Probe("T2", "thresholds --by a name of 120,000 characters", REFUSED, thresholds_by("y" * 120_000)),
    Probe("T3", "thresholds --by '' (empty)", REFUSED, thresholds_by("")),
    Probe("T4", "thresholds --by auto (reserved)", REFUSED, thresholds_by("auto")),
    Probe("T5", "thresholds --by with an escape sequence", REFUSED, thresholds_by("ann\x1b[2J")),
    Probe("T6", "thresholds --by with a control character (BEL)", REFUSED, thresholds_by("ann\x07")),
    Probe("T7", "thresholds --by with a newline", REFUSED, thresholds_by("ann\nbob")),
    Probe("T8", "thresholds --by 'paper preset (alice)' (dressed as the tool)", REFUSED,
          thresholds_by("paper preset (alice)")),
    Probe("T9", "control: thresholds --set happy=0.9 --by alice", ACCEPTED, thresholds_by("alice")),
    Probe("C1", "decide --reviewer auto", REFUSED, decide("C1", lambda p: [(p[0], "accept", "", "")], "auto")),
    Probe("C2", "decide --reviewer with a newline", REFUSED,
          decide("C2", lambda p: [(p[0], "accept", "", "")], "bob\nx")),
    Probe("C3", "decide --reviewer with a control character (BEL)", REFUSED,
          decide("C3", lambda p: [(p[0], "accept", "", "")], "bob\x07")),
    Probe("C4", "decide CSV with a NUL byte in a name", REFUSED,
          decide("C4", lambda p: [(p[1] + "\\0x", "accept", "", "")])),
    Probe("C5", "decide CSV with a NUL byte in a note", REFUSED,
          decide("C5", lambda p: [(p[1], "accept", "", "a\\0b")])),
    Probe("C6", "decide CSV accepting and rejecting the same sample", REFUSED,
          decide("C6", lambda p: [(p[2], "accept", "", ""), (p[2], "reject", "", "")])),
    Probe("C7", "control: decide CSV, one accept, --reviewer alice", ACCEPTED,
          decide("C7", lambda p: [(p[3], "accept", "", "fine")], "alice")),
    Probe("M1", "import --native, a sample named ../../etc/passwd", REFUSED,
          import_native("traversal", rename_first("../../etc/passwd"))),
    Probe("M2", "import --native, a NUL byte in a name in samples.csv", REFUSED,
          import_native("nul", rename_first("sample_000000\\0evil"))),
    Probe("M3", "import --native, a newline in a sample name", REFUSED,
          import_native("newline", rename_first("sample_000000\nline two"))),
    Probe("M4", "import --native, an escape sequence in a sample name", REFUSED,
          import_native("escape", rename_first("sample\x1b[31m_000000"))),
    Probe("M5", "import --native, every sample in test", REFUSED, import_native("all-test", all_test)),
    Probe("M6", "import --native, none labeled", REFUSED, import_native("none-labeled", none_labeled)),
    Probe("M7", "import --native, text.npy is a folder", REFUSED, import_native("npy-folder", text_npy="folder")),
    Probe("M8", "import --native, text.npy is a link to /dev/zero", REFUSED,
          import_native("npy-devzero", text_npy="devzero")),
    Probe("M9", "control: import --native, clean data", ACCEPTED, import_native("clean")),
    Probe("M10", "import --mertools --modality audio=/abs/path outside --features", REFUSED,
          import_mertools("absolute")),
    Probe("M11", "import --mertools --modality audio=../folder outside --features", REFUSED,
          import_mertools("dotdot")),
    Probe("M12", "control: import --mertools, folders under --features", ACCEPTED, import_mertools("inside")),
    Probe("G1", "train --config with seed: -5", REFUSED, train_config("G1", "seed: -5\n")),
    Probe("G2", "train --config with seed: 1e23", REFUSED, train_config("G2", "seed: 1e23\n")),
    Probe("G3", "train --config with model.hidden: 100000000", REFUSED,
          train_config("G3", "model:\n  hidden: 100000000\n")),
    Probe("G4", "train --config /dev/zero (read)", REFUSED, train_config("G4", path="/dev/zero")),
    Probe("G5", "train --config with extends: /dev/zero", REFUSED, train_config("G5", extends="/dev/zero")),
    Probe("G6", "train --config with self_training.thresholds: {ecstatic: 0.5}", REFUSED,
          train_config("G6", "self_training:\n  thresholds: {ecstatic: 0.5}\n")),
    Probe("G7", "train --config a FIFO with no writer (never read to the end)", REFUSED,
          train_config("G7", path="FIFO")),
    Probe("G8", "control: train --config tests/fast.yaml", ACCEPTED, train_config("G8", "", expect_round=True)),
    Probe("V1", "serve --users /dev/zero (read)", REFUSED, serve(["--users", "/dev/zero"]), once=True),
    Probe("V2", "serve --host 0.0.0.0 without --auth; serving = accepted", REFUSED,
          serve(["--host", "0.0.0.0"]), once=True),
    Probe("V3", "serve --host no.such.host.invalid", REFUSED, serve(["--host", "no.such.host.invalid"]), once=True),
    Probe("A1", "API set_thresholds by 'paper preset (alice)' (no logins)", REFUSED,
          api=api("set_thresholds", {"happy": 0.9}, "paper preset (alice)")),
    Probe("A2", "API set_thresholds with a number sent as a string (\"0.5\")", REFUSED,
          api=api("set_thresholds", {"happy": "0.5"}, "alice")),
    Probe("A3", "API decide with a NUL byte in the name", REFUSED,
          api=api("decide", pool_name(4, "\0x"), "accept", "", "alice")),
    Probe("A4", "API decide by a reviewer with a newline", REFUSED,
          api=api("decide", pool_name(4), "accept", "", "bob\nx")),
    Probe("A5", "API upload of 30 MB to /gradio_api/upload (the app has no upload field)", REFUSED,
          api=api_upload),
    Probe("A6", "API /gradio_api/file= of another app's file in the shared Gradio temp folder", REFUSED,
          api=api_foreign_file),
    Probe("A7", "control: API set_thresholds {happy: 0.9} by alice", ACCEPTED,
          api=api("set_thresholds", {"happy": 0.9}, "alice")),
]

NOT_COVERED = [
    "the crash and concurrency figures (85 `kill -9`s, two servers and the CLI writing at once): "
    "the issue asks to keep them; they are not hostile inputs and are measured elsewhere",
    "leftovers after a kill (a killed server's mersemi-clips-* folder and held cards, a killed "
    "`train` shown as running, a `train` killed between the round's commit and the threshold "
    "policy): they need kills at chosen points, not an input",
    "a NUL byte in a note through the API: the API's decide takes no note (A3 sends one in the name)",
    "item 5's fuzz test (Hypothesis over the CLI and the API): a test suite, not this replay",
]


# ---------------------------------------------------------------------- running the list

def run_probe(probe: Probe, env: Env, cache: dict) -> Row:
    """Prepare the probe's stand-ins, snapshot the watched folder, run, snapshot, classify."""
    db = "-" if probe.once else env.db
    try:
        call = probe.build(env) if probe.build else None
        if call is None and env.base_url is None:
            raise SetupError("no live server for the API probes")
    except (SetupError, OSError) as e:
        return Row(probe, db, ["not-run"], "-", str(e))
    before = snapshot(env.tmp, env.unwatched, cache)
    if call is None:
        try:
            res = probe.api(env)
        except Exception as e:  # the server went away, say: the probe did not run
            return Row(probe, db, ["not-run"], "-", f"{type(e).__name__}: {e}")
        extra, allowed = [], ()
    else:
        res = env.code.run(call)
        extra, allowed = (call.after() if call.after else []), call.allowed
    changes = differences(before, snapshot(env.tmp, env.unwatched, cache), allowed)
    return Row(probe, db, classify(probe.expect, res, changes, extra), exit_text(res), first_line(res), changes)


def exit_text(res: Result) -> str:
    if not res.cli:
        return "ok" if res.code == 0 else "error"
    if res.hung:
        return "timeout"
    if res.served:
        return "served"
    return str(res.code)


def build_main_project(env: Env) -> None:
    """The project most probes use: the synthetic data imported and round 0 trained."""
    env.project = env.new_project("main", env.data)
    env.code.check(["train", str(env.project), "--config", str(env.code.fast_config)], timeout=300)
    with open(env.data / "samples.csv", newline="", encoding="utf-8") as f:
        env.pool = [r["name"] for r in csv.DictReader(f) if r["split"] == "unlabeled"]


def run_pass(env: Env, probes: list[Probe]) -> tuple[list[Row], list[str]]:
    """Every probe on one database; API probes last, against one live server."""
    try:
        build_main_project(env)
    except SetupError as e:
        return [], [f"{env.db} pass not run: {e}"]
    rows, notes, cache = [], [], {}
    cli = [p for p in probes if p.build]
    on_server = [p for p in probes if p.api]
    for probe in cli:
        rows.append(report_progress(run_probe(probe, env, cache)))
    if on_server:
        server = start_server(env)
        if isinstance(server, str):
            notes.append(f"{env.db}: API probes not run: {server}")
        for probe in on_server:
            rows.append(report_progress(run_probe(probe, env, cache)))
        if not isinstance(server, str):
            stop(server)
    return rows, notes


def report_progress(row: Row) -> Row:
    print(f"{row.probe.id:>4} {row.db:<10} {', '.join(row.flags):<30} {cell(row.message, 90)}",
          file=sys.stderr, flush=True)
    return row


# ---------------------------------------------------------------------- setup

def make_code(ref: str | None, tmp: Path) -> Code:
    """A frozen copy of the code to run: the working tree's packages as they are now (copied,
    so that edits made during the run do not mix in), or a commit's (git archive REF). The copy
    is put first on PYTHONPATH as the `mersemi` namespace (the editable install's finder comes
    after PYTHONPATH); tests/fast.yaml comes along, as it extends configs/default.yaml."""
    src = tmp / "code" / "src"
    src.mkdir(parents=True)
    if ref is None:
        for name in PACKAGES:
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        (src / "tests").mkdir()
        shutil.copyfile(REPO / "tests" / "fast.yaml", src / "tests" / "fast.yaml")
    else:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, *PACKAGES, "tests/fast.yaml"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    package = tmp / "code" / "py" / "mersemi"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name in PACKAGES:
        (package / name).symlink_to(src / name)
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(package.parent))
    return Code(env, src / "tests" / "fast.yaml", tmp)


IMPORT_ALL = """
import importlib, pkgutil, mersemi
for m in pkgutil.walk_packages(mersemi.__path__, "mersemi."):
    if ".migrations" not in m.name:
        importlib.import_module(m.name)
"""


def frozen_code(ref: str | None, tmp: Path, tries: int = 10) -> Code:
    """make_code, again until the copy imports: the working tree may be caught half-edited
    (other people work in it), so a copy that does not start is taken again 30 s later."""
    for _ in range(tries):
        shutil.rmtree(tmp / "code", ignore_errors=True)
        code = make_code(ref, tmp)
        res = run_command([str(PYTHON), "-c", IMPORT_ALL], code.env, tmp, Call([], timeout=120))
        if res.code == 0 or ref is not None:
            return code
        print(f"the code does not import ({first_line(res)}); copying again in 30 s", file=sys.stderr)
        time.sleep(30)
    raise SetupError(f"the code did not import in {tries} copies: {first_line(res)}")


def tests_on_path() -> None:
    if str(REPO / "tests") not in sys.path:
        sys.path.insert(0, str(REPO / "tests"))


def start_postgres():
    """tests/postgres_server.PostgresServer: initdb and pg_ctl in a temporary folder."""
    tests_on_path()
    from postgres_server import PostgresServer  # only with --postgres

    return PostgresServer()


def real_devices() -> list[tuple]:
    """The real /dev/null and /dev/zero, to show at the end that they are untouched."""
    return [(p, stat.S_ISCHR(os.lstat(p).st_mode), os.lstat(p).st_rdev) for p in ("/dev/null", "/dev/zero")]


def tool_temp_folders() -> set[str]:
    """The tool's own temporary folders (mersemi-clips-*, mersemi-export-*); not ours, nor the
    PostgreSQL helper's (mersemi-pg-*)."""
    return {p.name for p in Path(tempfile.gettempdir()).glob("mersemi-*")
            if not p.name.startswith(("mersemi-hostile-", "mersemi-pg-"))}


# ---------------------------------------------------------------------- the report

def report(rows: list[Row], notes: list[str], code_name: str) -> str:
    out = ["# Issue 21: hostile inputs replayed", "",
           f"Code: {code_name}; {time.strftime('%Y-%m-%d %H:%M')}; "
           "`.venv/bin/python bench/hostile_replay.py` (docstring: what each outcome means).", "",
           "| probe | database | expected | got | exit | first line of stderr |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r.probe.id} | {r.db} | {r.probe.expect} | {', '.join(r.flags)} | {r.exit} | "
                   f"{cell(r.message)} |")
    out += ["", "## Counts", "", *counts(rows), "", "## Probes", "", "| probe | expected | what |", "|---|---|---|"]
    seen = {r.probe.id: r.probe for r in rows}
    out += [f"| {p.id} | {p.expect} | {cell(p.what, 200)} |" for p in seen.values()]
    changed = [r for r in rows if r.changes]
    if changed:
        out += ["", "## Files outside the project that changed", ""]
        out += [f"- {r.probe.id} ({r.db}): {c}" for r in changed for c in r.changes[:10]]
    out += ["", "## Not covered", "", *[f"- {n}" for n in NOT_COVERED]]
    if notes:
        out += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(out) + "\n"


def counts(rows: list[Row]) -> list[str]:
    def n(*flags: str) -> int:
        return sum(1 for r in rows if set(r.flags) & set(flags))

    message = n("multi-line", "no-message") + sum(
        1 for r in rows if any(f.startswith("exit-") for f in r.flags))
    run = [r for r in rows if "not-run" not in r.flags]
    return [f"- total: {len(run)} probes run ({n('not-run')} not run)",
            f"- ok: {n('ok')}",
            f"- tracebacks: {n('traceback')}",
            f"- wrong acceptances: {n('wrong-acceptance')}",
            f"- outside changed: {n('outside-changed')}",
            f"- hangs (timeout or killed at the memory limit): {n('hang', 'killed')}",
            f"- refusals not one line or not exit 1: {message}",
            f"- wrong refusals (controls refused): {n('wrong-refusal')}",
            f"- project damaged: {n('project-damaged')}; rounds started by a bad config: {n('round-started')}"]


# ---------------------------------------------------------------------- main

def selected(only: list[str] | None, pass_index: int) -> list[Probe]:
    return [p for p in PROBES if (not only or any(p.id.startswith(o) for o in only))
            and (pass_index == 0 or not p.once)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--postgres", action="store_true", help="also replay on a throwaway PostgreSQL server")
    ap.add_argument("--out", type=Path, help="also write the Markdown report here")
    ap.add_argument("--ref", help="run a commit's code (git archive REF) instead of the working tree's")
    ap.add_argument("--only", nargs="+", metavar="ID", help="only the probes whose id starts so (E, T1, ...)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (its path goes to stderr)")
    args = ap.parse_args(argv)
    if Path(sys.executable).absolute() != PYTHON and PYTHON.exists():
        os.execv(PYTHON, [str(PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])

    tmp = Path(tempfile.mkdtemp(prefix="mersemi-hostile-"))
    devices, temp_before = real_devices(), tool_temp_folders()
    rows, notes, pg = [], [], None
    try:
        code = frozen_code(args.ref, tmp)
        data = tmp / "data" / "base"
        code.check(["synth", str(data), "--scale", "0.05"])
        databases = ["sqlite"] + (["postgresql"] if args.postgres else [])
        for i, db in enumerate(databases):
            if db == "postgresql":
                try:
                    pg = start_postgres()
                except BaseException as e:  # pytest.fail is a BaseException
                    if isinstance(e, KeyboardInterrupt):
                        raise
                    notes.append(f"postgresql pass not run: the server did not start: {e}")
                    break
            env = Env(db, tmp, data, code, pg, unwatched={tmp / "code"})
            found, said = run_pass(env, selected(args.only, i))
            rows += found
            notes += said
    except (SetupError, subprocess.CalledProcessError) as e:
        notes.append(f"stopped: {e}")
    finally:
        if pg is not None:
            pg.stop()
        if real_devices() != devices:
            notes.append("WARNING: the real /dev/null or /dev/zero changed during the run")
        left = sorted(tool_temp_folders() - temp_before)
        if left:
            notes.append(f"new mersemi-* entries in {tempfile.gettempdir()} after the run (servers' clip or "
                         f"export folders left behind, or other people's runs): {', '.join(left)}")
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    text = report(rows, notes, f"git {args.ref}" if args.ref else f"working tree of {REPO} (copied at the start)")
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
