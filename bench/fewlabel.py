"""Few labels on real data: the review loop as a user runs it, through the `mersemi` command
line, against peers measured in the same run.

Data: scikit-learn's bundled digits as three "modalities" (bench/digits_data.py), six digits
at MER2024's class proportions, stratified `--labeled` share labeled, 60 % pool, 35 % test.
Per seed:

  round 0          mersemi init / import / train
  automatic        train --auto-accept --rounds 3 (from a copy of the round-0 project)
  reviewed         a simulated reviewer decides the first --budget rows of `mersemi queue`
                   (accepts right predictions, labels the truth otherwise; rejects never),
                   then `train`, then `train --auto-accept --rounds 3`; the verify queue alone
                   gets the same decisions and one retrain, to compare the orders
  peers            logistic regression on the labeled samples, SelfTrainingClassifier (0.9),
                   LabelSpreading (knn), logistic regression + --budget random pool labels,
                   the oracle (logistic regression with every pool label)

Also measured: the expected precision of round 0's candidates (their mean calibrated
confidence) against their real precision, the accepted pseudo-labels' precision and the
test ECE. Prints a Markdown table; --out writes it.

    python bench/fewlabel.py --seeds 5 --labeled 0.05 --jobs 2 --out bench/results/fewlabel.md
    python bench/fewlabel.py --data synthetic --seeds 1 --labeled 100 --out bench/results/fewlabel_synthetic.md

Per-seed results go to stderr as JSON lines as they finish; `--from-log FILE` rebuilds the
report from such lines (a run cut short still reports the seeds it finished).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits_data import write_native  # noqa: E402

from mersemi.engine.metrics import waf  # noqa: E402
from mersemi.service.review import DEFAULT_QUEUE  # noqa: E402

MERSEMI = [sys.executable, "-m", "mersemi.ui.cli"]
CLASSES = ["neutral", "angry", "happy", "sad", "worried", "surprise"]


def cli(*args: str) -> str:
    """Run `mersemi ARGS` as a user would; its stdout, or the error and exit."""
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    p = subprocess.run(MERSEMI + [str(a) for a in args], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"mersemi {' '.join(map(str, args))}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def train(project: Path, *extra: str) -> list[dict]:
    """Rounds trained by one `mersemi train` (one JSON line each)."""
    out = cli("train", project, "--json", *extra)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def queue(project: Path, kind: str | None, limit: int) -> list[dict]:
    args = ["queue", project, "--limit", limit, "--csv"] + (["--kind", kind] if kind else [])
    return list(csv.DictReader(io.StringIO(cli(*args))))


def simulated_review(project: Path, rows: list[dict], truth: dict[str, int], folder: Path) -> int:
    """Decide queue rows as a careful reviewer: accept a right prediction, give the true class
    otherwise. Returns how many predictions were wrong."""
    path = folder / f"decisions-{project.name}.csv"   # one per project: seeds run in parallel
    wrong = 0
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "decision", "label"])
        for r in rows:
            true = CLASSES[truth[r["name"]]]
            if r["predicted"] == true:
                w.writerow([r["name"], "accept", ""])
            else:
                wrong += 1
                w.writerow([r["name"], "label", true])
    if rows:
        cli("decide", project, "--file", path, "--reviewer", "bench")
    return wrong


def candidate_calibration(project: Path, truth: dict[str, int]) -> tuple[float, float, int]:
    """(expected precision, real precision, count) of the round's verify queue, i.e. every
    candidate at the thresholds the policy set."""
    rows = queue(project, "verify", 1_000_000)
    if not rows:
        return float("nan"), float("nan"), 0
    expected = float(np.mean([float(r["confidence"]) for r in rows]))
    real = float(np.mean([CLASSES[truth[r["name"]]] == r["predicted"] for r in rows]))
    return expected, real, len(rows)


def write_synthetic_few(folder: Path, seed: int, n_labeled: int) -> dict:
    """`mersemi synth` (default scale: 2,000 labeled, 10,000 pool, 1,000 test) with only
    `n_labeled` of its labeled samples kept (stratified, at least 2 per class), written as a
    native folder; the same dict as digits_data.write_native."""
    import pandas as pd

    full = folder.parent / f"{folder.name}-full"
    cli("synth", full, "--seed", seed)
    df = pd.read_csv(full / "samples.csv", dtype=str, keep_default_na=False)
    rng = np.random.default_rng(seed)
    lab = df.index[df["split"] == "labeled"].to_numpy()
    share = n_labeled / len(lab)
    keep = np.concatenate([rng.choice(g, max(2, int(round(share * len(g)))), replace=False)
                           for _, g in df.loc[lab].groupby("label").groups.items()])
    rows = np.sort(np.r_[keep, df.index[df["split"] != "labeled"].to_numpy()])
    folder.mkdir(parents=True)
    feats = {}
    for npy in sorted(full.glob("*.npy")):
        feats[npy.stem] = np.load(npy)[rows].astype(np.float32)
        np.save(folder / npy.name, feats[npy.stem])
    out = df.loc[rows].drop(columns=["media"])
    out.to_csv(folder / "samples.csv", index=False)
    shutil.rmtree(full)
    return {"features": feats, "y": np.array([CLASSES.index(c) for c in out["true_label"]]),
            "split": out["split"].to_numpy(), "names": out["name"].tolist()}


def write_data(data: str, folder: Path, seed: int, labeled: float) -> dict:
    if data == "digits":
        return write_native(folder, seed=seed, labeled=labeled)
    return write_synthetic_few(folder, seed, int(labeled))


def peers(d: dict, seed: int, budget: int) -> dict[str, float]:
    X = np.concatenate(list(d["features"].values()), axis=1)
    y, split = d["y"], d["split"]
    lab, pool, test = (np.flatnonzero(split == s) for s in ("labeled", "unlabeled", "test"))

    def lr():
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))

    def score(model, rows) -> float:
        model.fit(X[rows], y[rows])
        return waf(y[test], model.predict(X[test]))

    rng = np.random.default_rng(seed)
    reviewed = rng.choice(pool, min(budget, len(pool)), replace=False)
    out = {"LR (labeled only)": score(lr(), lab),
           f"LR + {budget} random pool labels": score(lr(), np.r_[lab, reviewed]),
           "oracle: LR, every pool label": score(lr(), np.r_[lab, pool])}
    semi_rows = np.r_[lab, pool]
    semi_y = np.r_[y[lab], -np.ones(len(pool), int)]
    st = make_pipeline(StandardScaler(), SelfTrainingClassifier(LogisticRegression(max_iter=3000), threshold=0.9))
    st.fit(X[semi_rows], semi_y)
    out["SelfTrainingClassifier (0.9)"] = waf(y[test], st.predict(X[test]))
    ls = make_pipeline(StandardScaler(), LabelSpreading(kernel="knn", n_neighbors=7))
    ls.fit(X[semi_rows], semi_y)
    out["LabelSpreading (knn)"] = waf(y[test], ls.predict(X[test]))
    return out


def run_seed(data_kind: str, seed: int, labeled: float, budget: int, work: Path, config: str) -> dict:
    t_seed = time.time()
    data, base = work / f"data-{seed}", work / f"r0-{seed}"
    d = write_data(data_kind, data, seed, labeled)
    truth = dict(zip(d["names"], d["y"].tolist()))
    count = {s: int(np.sum(d["split"] == s)) for s in ("labeled", "unlabeled", "test")}
    cli("init", base, "--classes", ",".join(CLASSES))
    cli("import", base, "--native", data)
    t0 = time.time()
    r0 = train(base, "--config", config)[-1]
    r0_s = time.time() - t0
    exp, real, n_cand = candidate_calibration(base, truth)
    res = {"seed": seed, "labeled": count["labeled"], "pool": count["unlabeled"], "test": count["test"],
           "round0": r0["test_waf"], "round0_ece": r0["test_ece"], "round0_s": r0_s,
           "round0_graph_weight": r0.get("graph_weight"),
           "cand_expected": exp, "cand_real": real, "cand_n": n_cand}

    auto = work / f"auto-{seed}"
    shutil.copytree(base, auto)
    rounds = train(auto, "--config", config, "--auto-accept", "--rounds", "3")
    status = json.loads(cli("status", auto, "--json"))
    last = status["rounds"][-1]
    res |= {"auto": last["test_waf"], "auto_ece": last["test_ece"], "auto_rounds": len(rounds),
            "auto_pseudo": (last["composition"] or {}).get("pseudo", 0),
            "auto_graph_weights": [r.get("graph_weight") for r in rounds],
            "auto_precision": (last["pseudo_precision"] or {}).get("overall")}

    res["label_queue"] = len(queue(base, "label", 1_000_000))
    # The default queue (what `mersemi queue` and the app show first) against the verify
    # queue alone; the default one goes on with three automatic rounds.
    for arm, kind in (("default", None), ("verify", "verify")):
        proj = work / f"{arm}-{seed}"
        shutil.copytree(base, proj)
        rows = queue(proj, kind, budget)
        res[f"{arm}_wrong"] = simulated_review(proj, rows, truth, work)
        res[f"{arm}_decided"] = len(rows)
        res[f"{arm}_retrain"] = train(proj, "--config", config)[-1]["test_waf"]
        if arm == "default":
            train(proj, "--config", config, "--auto-accept", "--rounds", "3")
            last = json.loads(cli("status", proj, "--json"))["rounds"][-1]
            res["reviewed"] = last["test_waf"]
            res["reviewed_ece"] = last["test_ece"]
    res["peers"] = peers(d, seed, budget)
    res["seed_s"] = time.time() - t_seed
    return res


def mean(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if r.get(key) is not None and not np.isnan(r[key])]
    return float(np.mean(vals)) if vals else float("nan")


def report(rows: list[dict], data: str, labeled: float, budget: int, config: str, wall_s: float,
           jobs: int = 1) -> str:
    r0 = mean(rows, "round0")
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    what = ("six digits at MER2024's class proportions; bench/digits_data.py" if data == "digits"
            else "`mersemi synth` at the default scale, labeled samples cut down, stratified")
    share = f"{labeled:.0%} labeled" if data == "digits" else f"{int(labeled)} labeled"
    lines = [f"# Few labels on {data}: {len(rows)} seeds, {share}, config `{config}`", "",
             f"{rows[0]['labeled']} labeled, {rows[0]['pool']} pool, {rows[0]['test']} test samples per seed "
             f"({what}). Test WAF in %, mean over seeds (per seed after it). Run: `python "
             f"bench/fewlabel.py --data {data} --seeds {len(rows)} --labeled {labeled}"
             f"{f' --jobs {jobs}' if jobs > 1 else ''}`; "
             f"{wall_s / 60:.0f} min on this machine (2 cores, shared with other jobs).", "",
             "| | test WAF | vs round 0 | per seed |", "|---|---|---|---|"]

    def row(name: str, key: str | None = None, vals: list[float] | None = None) -> None:
        vals = vals if vals is not None else [r[key] for r in rows]
        m = float(np.mean(vals))
        lines.append(f"| {name} | {pct(m)} | {100 * (m - r0):+.1f} | {' '.join(pct(v) for v in vals)} |")

    row("MR-CCL round 0", "round0")
    row("MR-CCL round 0 + `train --auto-accept --rounds 3`", "auto")
    row(f"MR-CCL + {budget} decisions from the default queue (*{DEFAULT_QUEUE}*), one retrain", "default_retrain")
    row(f"MR-CCL + {budget} decisions from the *verify* queue, one retrain", "verify_retrain")
    row(f"MR-CCL + {budget} default-queue decisions, then `--auto-accept --rounds 3`", "reviewed")
    for name in rows[0]["peers"]:
        row(f"peer: {name}", vals=[r["peers"][name] for r in rows])
    auto_peers = ["LR (labeled only)", "SelfTrainingClassifier (0.9)", "LabelSpreading (knn)"]
    best_peer = max(float(np.mean([r["peers"][p] for r in rows])) for p in auto_peers)
    oracle = float(np.mean([r["peers"]["oracle: LR, every pool label"] for r in rows]))
    lines += ["", "| measure | value |", "|---|---|",
              f"| automatic gain over round 0 | {100 * (mean(rows, 'auto') - r0):+.1f} points |",
              f"| automatic minus best automatic peer | {100 * (mean(rows, 'auto') - best_peer):+.1f} points |",
              f"| reviewed minus oracle | {100 * (mean(rows, 'reviewed') - oracle):+.1f} points |",
              f"| accepted pseudo-labels right (automatic arm) | {pct(mean(rows, 'auto_precision'))} % "
              f"of {mean(rows, 'auto_pseudo'):.0f} per seed "
              f"({' '.join(pct(r['auto_precision']) for r in rows)}) |",
              f"| round 0 candidates: expected precision (mean confidence) | {pct(mean(rows, 'cand_expected'))} % |",
              f"| round 0 candidates: real precision | {pct(mean(rows, 'cand_real'))} % "
              f"({mean(rows, 'cand_n'):.0f} per seed) |",
              f"| test ECE: round 0 / automatic / reviewed | {mean(rows, 'round0_ece'):.3f} / "
              f"{mean(rows, 'auto_ece'):.3f} / {mean(rows, 'reviewed_ece'):.3f} |",
              f"| test ECE per seed, automatic | {' '.join(format(r['auto_ece'], '.3f') for r in rows)} |",
              f"| predictions wrong among those reviewed: default / verify queue | "
              f"{mean(rows, 'default_wrong'):.0f} of {mean(rows, 'default_decided'):.0f} / "
              f"{mean(rows, 'verify_wrong'):.0f} of {mean(rows, 'verify_decided'):.0f} |",
              f"| samples below their threshold (the label queue) after round 0 | {mean(rows, 'label_queue'):.0f} |",
              f"| round 0 wall time (CLI, incl. start-up) | {mean(rows, 'round0_s'):.0f} s |"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--data", choices=["digits", "synthetic"], default="digits",
                    help="digits (real, bundled with scikit-learn) or the synthetic generator")
    ap.add_argument("--labeled", type=float, default=None,
                    help="digits: share of samples labeled (default 0.05; 0.02, 0.10); "
                         "synthetic: number of labeled samples kept (default 100)")
    ap.add_argument("--budget", type=int, default=200, help="reviewer decisions (default 200)")
    ap.add_argument("--config", default="default", help="preset or YAML for every round")
    ap.add_argument("--out", type=Path, help="also write the Markdown table here")
    ap.add_argument("--jobs", type=int, default=1,
                    help="seeds run at once (each trains on one core: 2 on a 2-core machine)")
    ap.add_argument("--from-log", type=Path, metavar="FILE",
                    help="no run: the report of the per-seed JSON lines in FILE")
    args = ap.parse_args()
    labeled = args.labeled if args.labeled is not None else (0.05 if args.data == "digits" else 100)
    t0 = time.time()
    rows = []
    if args.from_log:
        rows = [json.loads(line) for line in args.from_log.read_text().splitlines() if line.startswith("{")]
        args.seeds = 0
    with tempfile.TemporaryDirectory(prefix="fewlabel-") as tmp, \
            ThreadPoolExecutor(max(1, args.jobs)) as pool:   # the work is in `mersemi` processes
        runs = [pool.submit(run_seed, args.data, seed, labeled, args.budget, Path(tmp), args.config)
                for seed in range(args.seeds)]
        for done in as_completed(runs):
            rows.append(done.result())
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    rows.sort(key=lambda r: r["seed"])
    wall = sum(r.get("seed_s", 0) for r in rows) if args.from_log else time.time() - t0
    text = report(rows, args.data, labeled, args.budget, args.config, wall, args.jobs)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
