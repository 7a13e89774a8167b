"""Issue 31's faults and hostile data, replayed against two versions of the code in one run:
a full disk (a small tmpfs mounted here), kills during `init`, a PostgreSQL server stopped
before and during commands, damaged stores, checkpoints and features, lookalike names, and
formula cells in exports. Prints (and with --out writes) one table: per probe and database,
the outcome before (--before REF, default main's 5936fb9) and after (the working tree).

    python bench/hostile_faults.py [--postgres] [--before REF] [--only F K ...] [--out FILE] [--keep]

(any python: it runs itself again under .venv/bin/python). About 10 minutes on SQLite and as
much again with --postgres, on 2 cores. As root (mount); without a tmpfs the F probes say
"not run". Everything is written under one temporary folder; the tmpfs mounts live there.

An outcome is "ok" when the probe ended as the issue asks:
- a refusal: exit 1, one line on stderr starting "mersemi:" (notes about repairs aside), no
  traceback, the project's data and files as they were (SQLite's shared-memory file and an
  empty WAL aside: opening makes them, only SQLite may remove them);
- an acceptance (status on a full disk, the controls): exit 0, nothing changed it should not;
- a kill probe: the next command uses the project, or the next `init` makes it, with no file
  deleted by hand;
- an outage probe: a one-line refusal or a success, all or nothing stored, no SQL parameter
  (a sample name, a note) on stderr or in the log.
Otherwise the outcome lists what went wrong: traceback, multi-line, exit-N, killed (a signal:
SIGBUS), changed (data or files), leaked (a sample name or note on stderr), bricked (a killed
init that needs files deleted by hand), formula (cells a spreadsheet runs), internal (the
API's "internal error"), accepted (a refusal was due).

The probes are in hostile_fault_groups.py, their ground (a template project per database, what
changed, judging) in hostile_fault_probes.py; running a command, the snapshots and the frozen
copies of the code are hostile_env.py's (hostile_replay.py's ground).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile_env import PYTHON, REPO, SetupError, frozen_code, start_postgres  # noqa: E402
from hostile_fault_groups import GROUPS  # noqa: E402
from hostile_fault_probes import Outcome, Place, build_template  # noqa: E402

BEFORE = "5936fb9"


def run_all(args, tmp: Path) -> tuple[list[tuple[str, str, str, Outcome, Outcome]], list[str]]:
    codes = {"before": frozen_code(args.before, tmp / "before"), "after": frozen_code(None, tmp / "after")}
    rows, notes, pg = [], [], None
    databases = ["sqlite"] + (["postgresql"] if args.postgres else [])
    try:
        for db in databases:
            if db == "postgresql":
                try:
                    pg = start_postgres()
                except BaseException as e:  # pytest.fail is a BaseException
                    if isinstance(e, KeyboardInterrupt):
                        raise
                    notes.append(f"postgresql not run: the server did not start: {e}")
                    break
            place = Place(db, tmp / db, pg)
            place.root.mkdir()
            try:
                build_template(place, codes["after"])
            except SetupError as e:
                notes.append(f"{db}: not run: {e}")
                continue
            for group, probes in GROUPS.items():
                if args.only and group not in args.only:
                    continue
                for probe in probes:
                    if db not in probe.databases:
                        continue
                    found = {}
                    for side, code in codes.items():
                        found[side] = probe.run(place, code, side)
                        print(f"{probe.id:>4} {db:<10} {side:<6} {found[side].text()[:110]}", file=sys.stderr,
                              flush=True)
                    rows.append((probe.id, db, probe.what, found["before"], found["after"]))
    finally:
        if pg is not None:
            pg.stop()
    return rows, notes


def cell(text: str, width: int = 90) -> str:
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    text = text.replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def report(rows, notes: list[str], before: str) -> str:
    def ok(o: Outcome) -> int:
        return int(o.ok)

    out = ["# Issue 31: faults and hostile data, before and after", "",
           f"Before: git {before}; after: the working tree of {REPO} (copied at the start); "
           f"{time.strftime('%Y-%m-%d %H:%M')}; `.venv/bin/python bench/hostile_faults.py` "
           "(docstring: what each outcome means). Each cell: the outcome, then the first line of stderr (or "
           "of what the probe saw).", "",
           "| probe | database | what | before | after |", "|---|---|---|---|---|"]
    for pid, db, what, b, a in rows:
        out.append(f"| {pid} | {db} | {cell(what, 70)} | {cell(b.text())} | {cell(a.text())} |")
    out += ["", "## Counts", "", "| database | probes | ok before | ok after |", "|---|---|---|---|"]
    for db in sorted({r[1] for r in rows}):
        mine = [r for r in rows if r[1] == db]
        out.append(f"| {db} | {len(mine)} | {sum(ok(r[3]) for r in mine)} | {sum(ok(r[4]) for r in mine)} |")
    if notes:
        out += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--postgres", action="store_true", help="also on a throwaway PostgreSQL server")
    ap.add_argument("--before", default=BEFORE, help=f"the commit to compare with (default {BEFORE})")
    ap.add_argument("--only", nargs="+", metavar="GROUP", help=f"only these groups ({', '.join(GROUPS)})")
    ap.add_argument("--out", type=Path, help="also write the Markdown report here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args(argv)
    if Path(sys.executable).absolute() != PYTHON and PYTHON.exists():
        os.execv(PYTHON, [str(PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])
    tmp = Path(tempfile.mkdtemp(prefix="mersemi-faults-"))
    t0 = time.time()
    try:
        rows, notes = run_all(args, tmp)
    finally:
        subprocess.run(["bash", "-c", f"grep ' {tmp}' /proc/mounts | cut -d' ' -f2 | xargs -r -n1 umount -l"],
                       check=False)
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    notes.append(f"wall time {time.time() - t0:.0f} s")
    text = report(rows, notes, args.before)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
