"""hostile_faults.py's ground: the place a database's probes run in (a trained template project,
copied per probe), what changed, judging an outcome. The probes themselves are
hostile_fault_groups.py's."""
from __future__ import annotations

import csv
import hashlib
import itertools
import os
import shutil
import signal
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hostile_env import Call, Code, Result, SetupError, error_lines, first_line

CLASSES = ["neutral", "angry", "happy", "sad", "@worried", "surprise"]
FORMULA_NAMES = ['=HYPERLINK("x"&A1,"click")', "=cmd|' -C calc'!A0", "+SUM(1,1)", "-2+3", "@SUM(1)", "=1+1"]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
LOOKALIKES = ["ａｕｔｏ", "аuto", "𝚊𝚞𝚝𝚘", "autó", "pоlicy", "ｉｎｉｔ", "paper\u00a0preset", "suggest（ann）",
              "AUTO", "Pоlicy", "ɑuto", "aut0", "paper  preset"]
TABLES = ("samples", "rounds", "predictions", "decisions", "current_decisions", "thresholds", "threshold_changes",
          "meta", "classes")


# ---------------------------------------------------------------------- where a database's probes run

@dataclass
class Place:
    db: str
    root: Path
    pg: object | None = None
    template: Path | None = None
    template_db: str | None = None
    data: Path | None = None
    fast_config: Path | None = None
    pool: list[str] = field(default_factory=list)
    other: Path | None = None            # D7: the project a linked project.db leads into
    other_before: dict = field(default_factory=dict)
    serial: itertools.count = field(default_factory=itertools.count)

    def fresh(self, name: str) -> Path:
        return self.root / f"{name}-{next(self.serial)}"

    def new_db(self, template: str | None = None) -> str:
        name = f"f_{os.getpid()}_{next(self.serial)}"
        self.pg.admin(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))  # type: ignore
        return name

    def init_args(self, folder: Path) -> list[str]:
        return ["init", str(folder), "--classes", ",".join(CLASSES)] + (
            ["--db", self.pg.url(self.new_db())] if self.pg else [])  # type: ignore

    def copy(self, target: Path) -> Path:
        """A copy of the trained template project at `target` (its own database on PostgreSQL)."""
        shutil.copytree(self.template, target, symlinks=True)
        if self.pg is not None:
            (target / "database.url").write_text(self.pg.url(self.new_db(self.template_db)) + "\n")  # type: ignore
        return target


def cli(code: Code, args: list, timeout: float = 300, env: dict | None = None) -> Result:
    saved = code.env
    if env:
        code.env = dict(code.env, **env)
    try:
        return code.run(Call([str(a) for a in args], timeout=timeout))
    finally:
        code.env = saved


def build_template(place: Place, code: Code) -> None:
    """Synthetic data (scale 0.05) whose names and a class start formulas, imported and round 0
    trained: every probe copies it."""
    data = place.root / "data"
    if cli(code, ["synth", data, "--scale", "0.05"]).code != 0:
        raise SetupError("synth failed")
    rows = list(csv.DictReader(open(data / "samples.csv", newline="", encoding="utf-8")))
    labeled = [r for r in rows if r["split"] == "labeled"][:3]
    pool = [r for r in rows if r["split"] == "unlabeled"][:3]
    for r, name in zip(labeled + pool, FORMULA_NAMES):
        r["name"] = name
    for r in rows:
        for k in ("label", "true_label"):
            r[k] = "@worried" if r[k] == "worried" else r[k]
    with open(data / "samples.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    place.data, place.pool = data, [r["name"] for r in rows if r["split"] == "unlabeled"]
    place.fast_config = code.fast_config
    place.template = place.root / "template"
    args = ["init", place.template, "--classes", ",".join(CLASSES)]
    if place.pg is not None:
        place.template_db = place.new_db()
        args += ["--db", place.pg.url(place.template_db)]  # type: ignore
    for step in (args, ["import", place.template, "--native", data],
                 ["train", place.template, "--config", code.fast_config]):
        res = cli(code, step, timeout=600)
        if res.code != 0:
            raise SetupError(f"template: {step[0]} failed: {first_line(res)}")


# ---------------------------------------------------------------------- what changed

def digest(place: Place, project: Path) -> dict:
    """The store's data (row counts and a hash of the small tables) and the project's files
    (SQLite's shared memory and an empty WAL aside, and project.db*, whose data the counts say)."""
    out: dict = {}
    url = (project / "database.url").read_text().strip() if (project / "database.url").is_file() else None
    try:
        if url is None:
            con = sqlite3.connect(f"file:{project / 'project.db'}?mode=ro", uri=True)
            query = lambda q: con.execute(q).fetchall()  # noqa: E731
        else:
            import psycopg

            con = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
            query = lambda q: con.execute(q).fetchall()  # noqa: E731
        for t in TABLES:
            try:
                out[t] = query(f"SELECT count(*) FROM {t}")[0][0]
            except Exception as e:
                out[t] = f"unreadable ({type(e).__name__})"
                if url is not None:
                    con.rollback() if not con.autocommit else None
        for q in ("SELECT id, status FROM rounds ORDER BY id", "SELECT class_id, value FROM thresholds ORDER BY 1"):
            try:
                out[q] = [tuple(r) for r in query(q)]
            except Exception:
                pass
        con.close()
    except Exception as e:
        out["store"] = f"unreadable ({type(e).__name__})"
    for p in sorted(project.rglob("*")) if project.is_dir() else []:
        name = str(p.relative_to(project))
        if p.is_file() and not name.startswith("project.db"):
            out[name] = hashlib.sha256(p.read_bytes()).hexdigest()[:12]
    return out


def changes(before: dict, after: dict) -> list[str]:
    return [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]


# ---------------------------------------------------------------------- outcomes

@dataclass
class Outcome:
    flags: list[str]
    line: str

    @property
    def ok(self) -> bool:
        return self.flags == ["ok"]

    def text(self) -> str:
        return ", ".join(self.flags) + (f": {self.line}" if self.line else "")


def judge(res: Result, expect: str, changed: list[str] = (), extra: list[str] = (), secrets: tuple = ()) -> Outcome:
    """`expect`: refused, accepted or either (see hostile_faults.py's docstring)."""
    flags = list(extra)
    if res.hung:
        flags.append("hang")
    elif res.code is not None and res.code < 0:
        flags.append(f"killed ({signal.Signals(-res.code).name})")
    if "Traceback" in res.stderr:
        flags.append("traceback")
    if any(s and s in res.stderr for s in secrets):
        flags.append("leaked")
    if changed:
        flags.append(f"changed ({', '.join(changed[:3])})")
    lines = error_lines(res.stderr)
    refused = res.code == 1 and len(lines) == 1 and lines[0].startswith("mersemi:")
    if expect == "refused" and res.code == 0:
        flags.append("accepted")
    elif expect == "accepted" and res.code != 0 and not any(f.startswith(("killed", "hang")) for f in flags):
        flags.append(f"refused (exit {res.code})")
    elif expect in ("refused", "either") and res.code != 0 and not refused and "traceback" not in flags \
            and not any(f.startswith(("killed", "hang")) for f in flags):
        flags.append("multi-line" if len(lines) > 1 else f"exit-{res.code}")
    return Outcome(flags or ["ok"], first_line(res))


@dataclass
class Probe:
    id: str
    what: str
    run_fn: Callable[[Place, Code, str], Outcome]
    databases: tuple[str, ...] = ("sqlite", "postgresql")

    def run(self, place: Place, code: Code, side: str) -> Outcome:
        try:
            return self.run_fn(place, code, side)
        except SetupError as e:
            return Outcome(["not run"], str(e))
        except Exception as e:   # the probe's own failure: reported, the others still run
            return Outcome(["probe error"], f"{type(e).__name__}: {e}"[:200])


def on_project(expect: str, args: Callable[[Path, Place], list], damage: Callable[[Path, Place], None] | None = None,
               after: Callable[[Path, Place, Result], list[str]] | None = None, secrets: tuple = ()):
    """A probe on a fresh copy of the template: damage it, run the command, judge."""
    def run(place: Place, code: Code, side: str) -> Outcome:
        project = place.copy(place.fresh(f"p-{side}"))
        if damage:
            damage(project, place)
        before = digest(place, project)
        res = cli(code, args(project, place))
        extra = after(project, place, res) if after else []
        return judge(res, expect, changes(before, digest(place, project)), extra, secrets)
    return run
