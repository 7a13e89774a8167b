"""The benchmark suite: the review loop as a user runs it (the `mersemi` command line, through
bench/fewlabel.py's helpers) on every data set of bench/real_data.py, with peers from the same
splits, so that a default is judged on many data sets rather than the one it was tuned on.

Per data set, labeled share and seed (one split, the same for every configuration):

  round 0      init, import, `train`
  automatic    `train --auto-accept --rounds 3` from a copy of round 0
  B decisions  a simulated reviewer decides the first B rows of the default queue (accepts a
               right prediction, gives the truth otherwise), `train`, then
               `train --auto-accept --rounds 3`; for each B of --budgets
  peers        (once per split, whatever the configurations) logistic regression on the labeled
               samples, + B random pool labels, + B least-confident ones, SelfTrainingClassifier,
               LabelSpreading and the oracle (every pool label)

With each automatic run go the diagnostics that explain a loss: per round, the pseudo-labels it
trained on and the share really right (the pool's hidden truth), whether the round was kept or
discarded, and what the discard guard saw (out-of-fold log-loss and WAF on the gold samples).

Every finished unit is appended at once to --jsonl, which is also the state of the run: run the
same command again and it skips what the file holds (a run cut short keeps what it finished).
--configs takes several presets or YAML files, run on the same splits; the report puts them side
by side. A configuration file changed since its units were measured is refused.

    python bench/suite.py --jobs 2 --jsonl bench/results/suite_seeds.jsonl --out bench/results/suite_default.md
    python bench/suite.py --configs default mine.yaml --jobs 2 --jsonl ... --out ...
    python bench/suite.py --report-only --jsonl bench/results/suite_seeds.jsonl
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fewlabel import (  # noqa: E402
    candidate_calibration, cli, peers, queue, simulated_review, train, true_classes,
)
from real_data import DATASETS, write_native  # noqa: E402
from suite_report import arms, report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 3


def config_identity(config: str) -> tuple[str, str]:
    """(name, sha1 of the file) of a preset name or a YAML path: a unit measured with another
    version of the file is not reused."""
    path = Path(config)
    if not path.suffix:
        path = ROOT / "configs" / f"{config}.yaml"
    if not path.is_file():
        raise SystemExit(f"--configs: no preset or file {config!r}")
    return path.stem, hashlib.sha1(path.read_bytes()).hexdigest()[:12]


def key(unit: dict) -> tuple:
    return (unit["kind"], unit.get("config"), unit["data"], unit["labeled_share"], unit["seed"], unit.get("arm"),
            unit.get("budget"))


def guard_figures(project: Path) -> dict[int, dict]:
    """Per round of the project: what the discard guard compares (out-of-fold log-loss, WAF and
    ECE on the gold samples), read from the store (`status --json` leaves out the log-loss)."""
    from mersemi.service.project import Project

    with Project.open(project) as p:
        return {r.id: {k: (r.metrics or {}).get(k) for k in ("oof_log_loss", "cv_waf", "oof_ece")}
                for r in p.store.rounds()}


def automatic(project: Path, config: str, before: dict) -> dict:
    """`train --auto-accept --rounds 3` after the round `before` (its `train --json` line) and per
    round what explains its result."""
    rounds = train(project, "--config", config, "--auto-accept", "--rounds", ROUNDS)
    guard = guard_figures(project)
    # the round in force: the last one kept (a discarded round leaves the one before it)
    now = next((r for r in reversed(rounds) if r["status"] == "done"), before)

    def one(r: dict) -> dict:
        comp, prec = r.get("composition") or {}, r.get("pseudo_precision") or {}
        return {"id": r["id"], "status": r["status"], "test_waf": r["test_waf"], **guard.get(r["id"], {}),
                "pseudo": comp.get("pseudo", 0), "pseudo_new": comp.get("pseudo_new", 0),
                "pseudo_right": prec.get("overall"), "kept_reason": r.get("kept_reason")}

    comp, prec = now.get("composition") or {}, now.get("pseudo_precision") or {}
    return {"test_waf": now["test_waf"], "test_ece": now["test_ece"], "in_force": now["id"], "test_f1": now["test_f1"],
            "before": {"id": before["id"], "test_waf": before["test_waf"], "test_f1": before["test_f1"],
                       **guard.get(before["id"], {})},
            "rounds": [one(r) for r in rounds],
            "discarded": sum(r["status"] == "discarded" for r in rounds),
            "pseudo": comp.get("pseudo", 0), "pseudo_right": prec.get("overall"),
            "pseudo_per_class": comp.get("pseudo_per_class"),
            "pseudo_right_per_class": {c: v for c, v in prec.items() if c != "overall"}}


class RoundZero:
    """Round 0 of each split and configuration, trained once and kept under `cache` (with the
    data's truth) for every arm that starts from it, also across runs."""

    def __init__(self, cache: Path) -> None:
        self.cache, self.lock, self.locks = cache, threading.Lock(), {}

    def get(self, data: str, share: float, seed: int, config: str, sha: str) -> tuple[Path, dict]:
        base = self.cache / f"{data}-{share}-{seed}-{Path(config).stem}-{sha}"
        with self.lock:
            lock = self.locks.setdefault(base, threading.Lock())
        with lock:
            if not (base / "round0.json").exists():
                shutil.rmtree(base, ignore_errors=True)   # a run cut short while it trained
                self._train(base, data, share, seed, config)
        return base / "project", json.loads((base / "round0.json").read_text())

    @staticmethod
    def _train(base: Path, data: str, share: float, seed: int, config: str) -> None:
        d = write_native(base / "data", data, seed=seed, labeled=share)
        truth = true_classes(d)
        proj = base / "project"
        cli("init", proj, "--classes", ",".join(d["classes"]))
        cli("import", proj, "--native", base / "data")
        shutil.rmtree(base / "data")
        r0 = train(proj, "--config", config)[-1]
        exp, real, n_cand = candidate_calibration(proj, truth)
        summary = {"summary": r0, "truth": truth, "round0": r0["test_waf"], "round0_ece": r0["test_ece"],
                   "round0_oof_waf": r0["cv_waf"], "eval_scheme": (r0.get("eval_scheme") or {}).get("text"),
                   "graph_weight": r0.get("graph_weight"), "candidates": {"n": n_cand, "expected": exp, "real": real},
                   "counts": {s: int(np.sum(d["split"] == s)) for s in ("labeled", "unlabeled", "test")}}
        (base / "round0.tmp").write_text(json.dumps(summary))
        (base / "round0.tmp").rename(base / "round0.json")   # complete, or absent


def run_arm(unit: dict, config: str, zero: RoundZero, work: Path) -> dict:
    """One arm from round 0: `auto` (automatic rounds), or `review` (`budget` decisions from the
    default queue, `train`, automatic rounds)."""
    t0 = time.time()
    base, r0 = zero.get(unit["data"], unit["labeled_share"], unit["seed"], config, unit["config_sha"])
    proj = work / "project"
    shutil.copytree(base, proj)
    out = {k: v for k, v in r0.items() if k not in ("summary", "truth")}
    if unit["arm"] == "auto":
        out["auto"] = automatic(proj, config, r0["summary"])
    else:
        b = unit["budget"]
        rows = queue(proj, None, b)
        wrong = simulated_review(proj, rows, r0["truth"])
        retrain = train(proj, "--config", config)[-1]
        out["reviewed"] = {str(b): {"decided": len(rows), "wrong": wrong, "retrain": retrain["test_waf"],
                                    "auto": automatic(proj, config, retrain)}}
    return out | {"wall_s": round(time.time() - t0, 1)}


def run_peers(data: str, share: float, seed: int, budgets: list[int], work: Path) -> dict:
    t0 = time.time()
    folder = work / f"peers-{data}-{share}-{seed}"
    d = write_native(folder, data, seed=seed, labeled=share)
    shutil.rmtree(folder)
    return {"peers": peers(d, seed, budgets), "wall_s": round(time.time() - t0, 1)}


class Journal:
    """The --jsonl file: units read at start, each new one appended (and flushed to disk) as it
    finishes, from any thread."""

    def __init__(self, path: Path) -> None:
        self.path, self.lock = path, threading.Lock()
        self.rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] \
            if path.exists() else []

    def done(self) -> dict[tuple, dict]:
        return {key(a): a for r in self.rows if r["kind"] in ("mersemi", "peers") for a in arms(r)}

    def add(self, row: dict) -> None:
        with self.lock:
            self.rows.append(row)
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())


def git_commit() -> str:
    p = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return p.stdout.strip() or "unknown"


def cpu_seconds() -> float:
    """User + system CPU of this process and every finished child (the `mersemi` commands)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", choices=DATASETS, default=list(DATASETS))
    ap.add_argument("--labeled", type=float, nargs="+", default=[0.02, 0.05])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--budgets", type=int, nargs="+", default=[25, 200])
    ap.add_argument("--configs", nargs="+", default=["default"], help="presets or YAML files, first = baseline")
    ap.add_argument("--jobs", type=int, default=1, help="units at once (each trains on one core)")
    ap.add_argument("--jsonl", type=Path, required=True, help="every finished unit, one JSON line; resumed from")
    ap.add_argument("--out", type=Path, help="also write the Markdown report here")
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "suite-round0",
                    help="round-0 projects kept for the arms that start from them (default build/suite-round0)")
    ap.add_argument("--report-only", action="store_true", help="no run: the report of --jsonl")
    args = ap.parse_args()
    if any(not 0 < v < 0.65 for v in args.labeled):
        ap.error("--labeled: shares in (0, 0.65)")
    configs = [config_identity(c) for c in args.configs]
    journal = Journal(args.jsonl)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # `kill`: the session line is still written
    if not args.report_only:
        run(args, configs, journal)
    text = report(journal.rows, [name for name, _ in configs])
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


def run(args, configs: list[tuple[str, str]], journal: Journal) -> None:
    done = journal.done()
    for row in done.values():
        for name, sha in configs:
            if row.get("config") == name and row.get("config_sha") != sha:
                raise SystemExit(f"{args.jsonl}: config {name!r} changed since its units were measured "
                                 f"({row['config_sha']} -> {sha}); use another --jsonl")
    budgets = sorted(set(args.budgets))
    by_name = dict(zip((n for n, _ in configs), args.configs))
    # the automatic arms first, then the decisions (the largest budget first), each seed-major: a
    # run cut short has the automatic rounds of every data set at fewer seeds
    todo = []
    for arm, budget in [("auto", None)] + [("review", b) for b in sorted(budgets, reverse=True)]:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for data in args.data:
                for share in args.labeled:
                    unit = {"data": data, "labeled_share": share, "seed": seed, "budgets": budgets}
                    if arm == "auto" and key({"kind": "peers", **unit}) not in done:
                        todo.append({"kind": "peers", **unit})
                    todo += [{"kind": "mersemi", "config": name, "config_sha": sha, "arm": arm, "budget": budget,
                              **unit} for name, sha in configs
                             if key({"kind": "mersemi", "config": name, "arm": arm, "budget": budget, **unit})
                             not in done]
    print(f"{len(done)} units in {args.jsonl}, {len(todo)} to run", file=sys.stderr, flush=True)
    t0, cpu0, finished = time.time(), cpu_seconds(), 0
    commit = git_commit()
    zero = RoundZero(args.work)

    def one(u: dict, tmp: Path) -> dict:
        (work := tmp / f"u{id(u)}").mkdir()
        try:
            if u["kind"] == "peers":
                res = run_peers(u["data"], u["labeled_share"], u["seed"], budgets, work)
            else:
                res = run_arm(u, by_name[u["config"]], zero, work)
        except (Exception, SystemExit) as e:   # a failed unit is reported and run again next time
            return u | {"kind": "error", "unit": u["kind"], "error": str(e)[:500], "commit": commit}
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return u | res | {"commit": commit}

    pool = ThreadPoolExecutor(max(1, args.jobs))
    try:
        with tempfile.TemporaryDirectory(prefix="suite-") as tmp:
            for fut in as_completed([pool.submit(one, u, Path(tmp)) for u in todo]):
                row = fut.result()
                journal.add(row)
                finished += row["kind"] != "error"
                print(f"[{finished}/{len(todo)}] {row['kind']} {row.get('config', '')} {row.get('arm', '')} "
                      f"{row.get('budget') or ''} {row['data']} "
                      f"{row['labeled_share']} seed {row['seed']}: {row.get('wall_s', 0):.0f} s "
                      f"{row.get('error', '')}", file=sys.stderr, flush=True)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)   # Ctrl-C: the units under way die with their commands
        journal.add({"kind": "session", "commit": commit, "jobs": args.jobs, "units": finished,
                     "wall_s": round(time.time() - t0, 1), "cpu_s": round(cpu_seconds() - cpu0, 1),
                     "cpu": cpu_model(), "finished_at": time.strftime("%Y-%m-%d %H:%M")})


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
