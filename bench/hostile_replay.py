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

This file runs the list and writes the report; the probes are in hostile_probes.py (the
API probes' calls in hostile_api.py), running a command, the sentinel and the setup in
hostile_env.py.
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile_api import start_server  # noqa: E402
from hostile_env import (  # noqa: E402
    PYTHON,
    REPO,
    Env,
    Result,
    SetupError,
    differences,
    error_lines,
    first_line,
    frozen_code,
    real_devices,
    snapshot,
    start_postgres,
    stop,
    tool_temp_folders,
)
from hostile_probes import NOT_COVERED, PROBES, REFUSED, Probe  # noqa: E402


# ---------------------------------------------------------------------- records

@dataclass
class Row:
    probe: Probe
    db: str
    flags: list[str]
    exit: str
    message: str
    changes: list[str] = field(default_factory=list)


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



def cell(text: str, width: int = 110) -> str:
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    text = text.replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


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
