"""hostile_replay.py's probes: the Probe record, the stand-ins and data they are built on,
the checks run after a call, the command lines of each probe, and the list (PROBES) with
what it leaves out (NOT_COVERED). The API probes' calls are in hostile_api.py.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import sqlite3
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hostile_api import api, api_foreign_file, api_upload, pool_name
from hostile_env import Call, Env, Result, SetupError, free_port, tests_on_path

REFUSED, ACCEPTED = "refused", "accepted"


# ---------------------------------------------------------------------- records

@dataclass
class Probe:
    id: str
    what: str
    expect: str
    build: Callable[[Env], Call] | None = None       # a command line ...
    api: Callable[[Env], Result] | None = None       # ... or a call to the live server
    once: bool = False                               # database-independent: SQLite pass only


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
