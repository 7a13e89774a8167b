"""hostile_faults.py's probes, by group: F a full disk (a tmpfs), K kills during init, P a
PostgreSQL server that goes away, D damaged files, L lookalike names, X formula cells."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from hostile_env import PYTHON, Code, Result, SetupError, first_line
from hostile_fault_probes import (
    FORMULA_START, LOOKALIKES, TABLES, Outcome, Place, Probe, changes, cli, digest, judge, on_project,
)

SECRET = "note-secret"


def decisions_file(folder: Path, names: list[str], decision: str = "reject") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"decisions-{len(names)}.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["name", "decision", "label", "note"])
        w.writerows([n, decision, "", f"{SECRET}-{i}"] for i, n in enumerate(names))
    return path


# ---------------------------------------------------------------------- F: a full disk

def mount_tmpfs(place: Place, size_mb: int) -> Path:
    disk = place.fresh("disk")
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        raise SetupError("cannot mount a tmpfs here")
    return disk


def fill(disk: Path, leave: int) -> None:
    target = max(0, shutil.disk_usage(disk).free - leave)
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    written = 0
    try:
        while written < target or leave == 0:
            try:
                written += os.write(fd, b"\0" * min(1 << 20, max(4096, target - written)))
            except OSError:
                break
    finally:
        os.close(fd)


def full(expect: str, args, leave: int = 36 * 1024, fresh: bool = False, size_mb: int = 32, dead_round: bool = False,
         on_server: str | None = None):
    """A copy of the template (or, `fresh`, nothing: the command makes it) on a tmpfs filled up to
    `leave` bytes free (36 KB: SQLite's shared memory fits, a page of WAL does not). `on_server`:
    what is due on PostgreSQL when the command writes only to the server, whose disk is not the
    full one (then only the project's files must stay as they were)."""
    def run(place: Place, code: Code, side: str) -> Outcome:
        due = on_server if on_server is not None and place.pg is not None else expect
        disk = mount_tmpfs(place, size_mb)
        try:
            project = disk / "p"
            if not fresh:
                place.copy(project)
                if dead_round:
                    mark_dead_round(project, place)
            fill(disk, leave)
            before = digest(place, project) if not fresh else {}
            res = cli(code, args(project, place))
            after = digest(place, project) if not fresh else {
                n: 1 for n in os.listdir(disk) if n != "filler"}
            changed = [c for c in changes(before, after) if not c.endswith(("-shm", "-wal"))]
            if due != expect:   # the store's rows are the server's to change
                changed = [c for c in changed if c not in TABLES and not c.startswith("SELECT ")]
            return judge(res, due, changed)
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)
    return run


def mark_dead_round(project: Path, place: Place) -> None:
    """A round recorded as running by a process that is gone (status reports it failed)."""
    sql(project, place, "INSERT INTO rounds (id, status, created_at, started_at, config, config_name, thresholds, "
                        "auto_accept, pid, host) SELECT (SELECT max(id) + 1 FROM rounds), 'running', created_at, "
                        "started_at, config, config_name, thresholds, auto_accept, 4194303, host FROM rounds "
                        "WHERE id = 0")


def import_args(project: Path, place: Place) -> list:
    return ["import", project, "--native", place.data, "--dtype", "float32"]


def fresh_project_then(args):
    """`init` on the tmpfs first (with room), then the command under test."""
    def run(place: Place, code: Code, side: str) -> Outcome:
        disk = mount_tmpfs(place, 2)
        try:
            project = disk / "p"
            if cli(code, place.init_args(project)).code != 0:
                raise SetupError("init failed")
            fill(disk, 1 << 20)
            res = cli(code, args(project, place))
            staged = [p.name for p in (project / "features").glob(".staging-*")]
            leftovers = [f"staging {s}" for s in staged] + (["features"] if (project / "features" / "manifest.json")
                                                            .exists() else [])
            return judge(res, "refused", leftovers)
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)
    return run


def migrate_backup(place: Place, code: Code, side: str) -> Outcome:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_migrations import build_v1   # the version-1 store of the migration tests

    disk = mount_tmpfs(place, 2)
    try:
        project = disk / "old"
        project.mkdir()
        build_v1(f"sqlite:///{project / 'project.db'}")
        fill(disk, (project / "project.db").stat().st_size // 2)
        before = digest(place, project)
        res = cli(code, ["migrate", project])
        backups = [p.name for p in project.glob("project.db.v*")]
        return judge(res, "refused", changes(before, digest(place, project)) + backups)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def export_args(what: str):
    return lambda p, place: ["export", p, "--what", what, "--out", p / "exports" / f"{what}.csv"]


def export_to_full_disk(what: str):
    """An export to another disk that is full (a USB stick, say): the project has room."""
    def run(place: Place, code: Code, side: str) -> Outcome:
        project = place.copy(place.fresh(f"e-{side}"))
        disk = mount_tmpfs(place, 1)
        try:
            fill(disk, 0)
            res = cli(code, ["export", project, "--what", what, "--out", disk / f"{what}.csv"])
            left = [n for n in os.listdir(disk) if n != "filler"]
            return judge(res, "refused", left)
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)
    return run


def decide_args(p: Path, place: Place) -> list:
    return ["decide", p, "--file", decisions_file(place.root / "in", place.pool), "--reviewer", "ann"]


FULL = [
    Probe("F1", "decide (500 rows) on a full disk (PostgreSQL: stored on the server)",
          full("refused", decide_args, on_server="accepted")),
    Probe("F2", "thresholds --set on a full disk (PostgreSQL: stored on the server)",
          full("refused", lambda p, _: ["thresholds", p, "--set", "happy=0.5"], on_server="accepted")),
    Probe("F3", "train with 1 MB free (less than a checkpoint)",
          full("refused", lambda p, pl: ["train", p, "--config", pl.fast_config], leave=1 << 20)),
    Probe("F4", "status on a full disk, a dead round to report", full("accepted", lambda p, _: ["status", p],
                                                                        dead_round=True)),
    Probe("F5", "export labels to a full disk", export_to_full_disk("labels")),
    Probe("F6", "export predictions to a full disk", export_to_full_disk("predictions")),
    Probe("F7", "export decisions to a full disk", export_to_full_disk("decisions")),
    Probe("F8", "migrate a version-1 store, room for half its backup", migrate_backup, ("sqlite",)),
    Probe("F9", "import (float32, 1.2 MB of features) with 1 MB free", fresh_project_then(import_args)),
    Probe("F10", "init on a full disk", full("refused", lambda p, pl: pl.init_args(p), leave=0, fresh=True, size_mb=1)),
]


# ---------------------------------------------------------------------- K: kills during init

def killed_init(delay: float):
    def run(place: Place, code: Code, side: str) -> Outcome:
        folder = place.fresh(f"k-{side}")
        argv = code.argv(place.init_args(folder))
        proc = subprocess.Popen(argv, env=code.env, cwd=code.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:   # the store's first file
            if folder.is_dir() and any("project.db" in n or "database.url" in n for n in os.listdir(folder)):
                break
            time.sleep(0.001)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        status = cli(code, ["status", folder])
        if status.code == 0:
            return Outcome(["ok"], "whole: status works")
        again = cli(code, ["init", folder] + (["--db", _url_of(argv)] if place.pg is not None else []))
        if again.code == 0 and cli(code, ["status", folder]).code == 0:
            return Outcome(["ok"], f"repaired by init: {first_line(status)[:60]}")
        return Outcome(["bricked"], f"status: {first_line(status)[:70]}; init again: {first_line(again)[:70]}")
    return run


def _url_of(argv: list[str]) -> str:
    return argv[argv.index("--db") + 1]


KILLS = [Probe(f"K{i + 1}", f"init killed {1000 * d:.0f} ms after its store's first file appeared", killed_init(d))
         for i, d in enumerate([0.0, 0.002, 0.005, 0.01, 0.02, 0.04, 0.07, 0.1])]


# ---------------------------------------------------------------------- P: the server goes away

def outage_during(args, halt_after: float, expect: str = "either"):
    def run(place: Place, code: Code, side: str) -> Outcome:
        project = place.copy(place.fresh(f"o-{side}"))
        before = digest(place, project)
        argv = code.argv([str(a) for a in args(project, place)])
        proc = subprocess.Popen(argv, env=code.env, cwd=code.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        time.sleep(halt_after)
        place.pg.halt()  # type: ignore
        try:
            out, err = proc.communicate(timeout=300)
        finally:
            place.pg.resume()  # type: ignore
        res = Result(proc.returncode, out, err)
        after = digest(place, project)
        delta = after.get("decisions", 0) - before.get("decisions", 0) if isinstance(after.get("decisions"), int) \
            else None
        partial = [f"{delta} of {len(place.pool)} decisions stored"] if delta not in (0, len(place.pool), None) else []
        works = cli(code, ["status", project])
        extra = partial + ([] if works.code == 0 else [f"status after: {first_line(works)[:60]}"])
        return judge(res, expect, [], extra, secrets=(SECRET, place.pool[7]))
    return run


def while_down(args, expect: str = "refused"):
    def run(place: Place, code: Code, side: str) -> Outcome:
        project = place.copy(place.fresh(f"d-{side}"))
        place.pg.halt()  # type: ignore
        try:
            res = cli(code, args(project, place))
        finally:
            place.pg.resume()  # type: ignore
        return judge(res, expect, secrets=(SECRET,))
    return run


API_SCRIPT = """
import io, json, logging, sys
log = io.StringIO()
logging.basicConfig(stream=log, level=logging.INFO)
from mersemi.service.actions import AppActions
from mersemi.service.project import Project
a = AppActions(Project.open(sys.argv[1]))
name = sys.argv[2]
print("ready", flush=True)
sys.stdin.readline()
calls = {"decide": lambda: a.decide(name, "accept", "", "ann"), "candidate_counts": a.candidate_counts,
         "changes": a.changes, "decisions": lambda: a.decisions(sample=name),
         "decisions_offset_1e30": lambda: a.decisions(offset=1e30), "status": a.status}
out = {}
for k, call in calls.items():
    try:
        out[k] = call()
    except Exception as e:
        out[k] = {"raised": repr(e)[:200]}
print(json.dumps({"results": out, "tracebacks": log.getvalue().count("Traceback"),
                  "leaked": name in log.getvalue()}), flush=True)
"""


def api_probe(down: bool, only: tuple[str, ...] = ()):
    """The app's actions (the functions behind the API endpoints) called in a process of the
    code under test, the server stopped first when `down`."""
    def run(place: Place, code: Code, side: str) -> Outcome:
        project = place.copy(place.fresh(f"a-{side}"))
        name = place.pool[3]
        proc = subprocess.Popen([str(PYTHON), "-c", API_SCRIPT, str(project), name], env=code.env, cwd=code.cwd,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdin is not None
        proc.stdout.readline()
        if down:
            place.pg.halt()  # type: ignore
        try:
            out, err = proc.communicate("go\n", timeout=300)
        finally:
            if down:
                place.pg.resume()  # type: ignore
        try:
            found = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return Outcome(["traceback"], (err.strip().splitlines() or [""])[-1][:200])
        answers = {k: v for k, v in found["results"].items() if not only or k in only}
        internal = [k for k, v in answers.items() if "raised" in v or "internal error" in str(v.get("error"))]
        flags = [f"internal ({len(internal)} of {len(answers)})"] if internal else []
        flags += [f"{found['tracebacks']} tracebacks in the log"] if found["tracebacks"] else []
        flags += ["leaked"] if found["leaked"] else []
        flags += ["accepted"] if any(v.get("ok") for v in answers.values()) else []
        first = next(iter(answers.values()))
        return Outcome(flags or ["ok"], str(first.get("error", first.get("raised", "")))[:160])
    return run


def init_with_password(place: Place, code: Code, side: str) -> Outcome:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from postgres_server import PASSWORD, PASSWORD_USER

    name = place.pg.new_database(owner=PASSWORD_USER)  # type: ignore
    folder = place.fresh(f"pw-{side}")
    res = cli(code, ["init", folder, "--db", place.pg.url(name, PASSWORD_USER)],  # type: ignore
              env={"MERSEMI_DB_PASSWORD": PASSWORD, "PGPASSFILE": str(place.root / "none"), "PGPASSWORD": ""})
    return judge(res, "accepted")


def huge_host(project: Path, place: Place) -> None:
    (project / "database.url").write_text(f"postgresql+psycopg://ann@{'h' * 3_000_000}:5432/x\n")


OUTAGE = [
    *[Probe(f"P{i + 1}", f"decide (500 rows, notes) with the server stopped {t} s in", outage_during(decide_args, t),
            ("postgresql",)) for i, t in enumerate([1.0, 2.0, 3.0, 4.0, 5.0])],
    Probe("P6", "train with the server stopped 12 s in",
          outage_during(lambda p, pl: ["train", p, "--config", pl.fast_config], 12.0), ("postgresql",)),
    Probe("P7", "status while the server is down", while_down(lambda p, _: ["status", p]), ("postgresql",)),
    Probe("P8", "decide (notes) while the server is down", while_down(decide_args), ("postgresql",)),
    Probe("P9", "app actions while the server is down (decide, counts, changes, log, status)", api_probe(True),
          ("postgresql",)),
    Probe("P10", "init --db with the password in MERSEMI_DB_PASSWORD", init_with_password, ("postgresql",)),
    Probe("P11", "status with a 3 MB host name in database.url",
          on_project("refused", lambda p, _: ["status", p], huge_host), ("postgresql",)),
]


# ---------------------------------------------------------------------- D: damaged files

def sql(project: Path, place: Place, statement: str) -> None:
    if place.pg is None:
        con = sqlite3.connect(project / "project.db")
        con.execute(statement)
        con.commit()
        con.close()
    else:
        import psycopg

        url = (project / "database.url").read_text().strip().replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(statement)


def truncated(project: Path, place: Place) -> None:
    f = project / "checkpoints" / "round-0.pt"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def garbled(project: Path, place: Place) -> None:
    f = project / "checkpoints" / "round-0.pt"
    f.write_bytes(os.urandom(f.stat().st_size))


def nan_row(project: Path, place: Place) -> None:
    import numpy as np

    m = np.load(project / "features" / "text.npy", mmap_mode="r+")
    m[5] = np.nan
    m.flush()


def linked(project: Path, place: Place) -> None:
    other = place.copy(place.fresh("other"))
    (project / "project.db").unlink()
    os.symlink(other / "project.db", project / "project.db")
    place.other = other


def other_unchanged(project: Path, place: Place, res: Result) -> list[str]:
    assert place.other is not None
    return [f"wrote into the linked project ({c})" for c in changes(place.other_before, digest(place, place.other))]


def broken_page(project: Path, place: Place) -> None:
    con = sqlite3.connect(project / "project.db")
    (page,) = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'threshold_changes'").fetchone()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    with open(project / "project.db", "r+b") as f:
        f.seek(4096 * (page - 1) + 8)
        f.write(os.urandom(4088))


def reported(project: Path, place: Place, res: Result) -> list[str]:
    return [] if "DAMAGED" in res.stdout else ["not reported"]


def link_probe(place: Place, code: Code, side: str) -> Outcome:
    project = place.copy(place.fresh(f"l-{side}"))
    linked(project, place)
    assert place.other is not None
    place.other_before = digest(place, place.other)
    res = cli(code, decide_args(project, place))
    return judge(res, "refused", [], other_unchanged(project, place, res))


TRAIN = lambda p, pl: ["train", p, "--config", pl.fast_config]  # noqa: E731
DAMAGED = [
    Probe("D1", "a dropped table (thresholds); status", on_project("refused", lambda p, _: ["status", p],
                                                                   lambda p, pl: sql(p, pl, "DROP TABLE thresholds"))),
    Probe("D2", "a round's metrics that are not JSON; status",
          on_project("refused", lambda p, _: ["status", p],
                     lambda p, pl: sql(p, pl, "UPDATE rounds SET metrics = '{not json' WHERE id = 0")), ("sqlite",)),
    Probe("D3", "a prediction blob of one byte; export predictions",
          on_project("refused", export_args("predictions"), lambda p, pl: sql(
              p, pl, "UPDATE predictions SET probs = " + ("x'00'" if pl.pg is None else "'\\x00'::bytea")
              + " WHERE sample_id = (SELECT min(sample_id) FROM predictions WHERE kind = 'pool')"))),
    Probe("D4", "a truncated checkpoint; train", on_project("refused", TRAIN, truncated)),
    Probe("D5", "a garbled checkpoint; train", on_project("refused", TRAIN, garbled)),
    Probe("D6", "a NaN row in the features after import; train", on_project("refused", TRAIN, nan_row)),
    Probe("D7", "project.db a link to another project's; decide", link_probe, ("sqlite",)),
    Probe("D8", "API decisions with offset 1e30", api_probe(False, ("decisions_offset_1e30",))),
    Probe("D9", "a broken page (SQLite integrity check fails); train", on_project("refused", TRAIN, broken_page),
          ("sqlite",)),
    Probe("D10", "the same broken page; check DIR says what",
          on_project("refused", lambda p, _: ["check", p], broken_page, reported), ("sqlite",)),
]


# ---------------------------------------------------------------------- L: lookalike names

def reviewer_probe(name: str, expect: str, first: str | None = None):
    def run(place: Place, code: Code, side: str) -> Outcome:
        project = place.copy(place.fresh(f"n-{side}"))
        if first is not None and cli(code, ["decide", project, "--file", decisions_file(
                project.parent / f"in-{project.name}", place.pool[10:11]), "--reviewer", first]).code != 0:
            raise SetupError(f"decide as {first} failed")
        before = digest(place, project)
        res = cli(code, ["decide", project, "--file", decisions_file(project.parent / f"in2-{project.name}",
                                                                      place.pool[11:12]), "--reviewer", name])
        return judge(res, expect, changes(before, digest(place, project)) if expect == "refused" else [])
    return run


NAMES = [Probe(f"L{i + 1}", f"decide --reviewer {n!a}", reviewer_probe(n, "refused")) for i, n in enumerate(LOOKALIKES)]
NAMES += [Probe("L14", "decide --reviewer 'аnn' (Cyrillic а) after 'ann'", reviewer_probe("аnn", "refused", "ann")),
          Probe("L15", "control: decide --reviewer 'José'", reviewer_probe("José", "accepted"))]


# ---------------------------------------------------------------------- X: formula cells

def formula_cells(what: str):
    def run(place: Place, code: Code, side: str) -> Outcome:
        project = place.copy(place.fresh(f"x-{side}"))
        names = place.pool[:3]   # the template's pool begins with formula names
        path = project.parent / f"xin-{project.name}.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["name", "decision", "label", "note"])
            w.writerow([names[0], "label", "@worried", "=cmd|' -C calc'!A0"])
            w.writerow([names[1], "label", "happy", "+1+1"])
            w.writerow([names[2], "reject", "", '=HYPERLINK("http://127.0.0.1:1/?"&A1,"click")'])
        if cli(code, ["decide", project, "--file", path, "--reviewer", "@ann"]).code != 0:
            raise SetupError("decide failed")
        out = project.parent / f"{what}-{project.name}.csv"
        res = cli(code, ["export", project, "--what", what, "--out", out])
        if res.code != 0:
            return judge(res, "accepted")
        rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
        bad = [c for r in rows for c in r if c.startswith(FORMULA_START)]
        return Outcome([f"formula ({len(bad)} cells)"] if bad else ["ok"],
                       f"{len(rows) - 1} rows; e.g. {bad[0][:50]!r}" if bad else f"{len(rows) - 1} rows, none")
    return run


FORMULAS = [Probe(f"X{i + 1}", f"export --what {w}: cells a spreadsheet runs", formula_cells(w))
            for i, w in enumerate(["labels", "predictions", "decisions"])]

GROUPS = {"F": FULL, "K": KILLS, "P": OUTAGE, "D": DAMAGED, "L": NAMES, "X": FORMULAS}
