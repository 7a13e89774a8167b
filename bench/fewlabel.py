"""Few labels on real data: the review loop as a user runs it, through the `mersemi` command
line, against peers measured in the same run.

Data (bench/real_data.py): `digits` (scikit-learn's handwritten digits, round 0 strong) or
`plaid` (appliance current signatures from the sktime wheel, round 0 weak), six classes at
MER2024's proportions as three "modalities", or any other set of the benchmark suite
(bench/suite_sets.py; bench/suite.py runs them all); per seed a stratified split: `--labeled`
share labeled (at least 2 per class), 35 % test, the rest the pool. `--data synthetic` cuts the
synthetic generator down to `--labeled` gold samples. Per seed and labeled share:

  round 0          mersemi init / import / train
  automatic        train --auto-accept --rounds 3 (from a copy of the round-0 project)
  reviewed         a simulated reviewer decides the first B rows of `mersemi queue` (accepts a
                   right prediction, labels the truth otherwise), then `train`, then
                   `train --auto-accept --rounds 3`, for every B of --budgets (the decisions
                   curve; B = the largest budget also gets the verify queue alone, one retrain)
  peers            logistic regression on the labeled samples, SelfTrainingClassifier (0.9),
                   LabelSpreading (knn), logistic regression + B random pool labels and + B
                   least-confident pool labels (one batch), and the oracle (every pool label)

Prints a Markdown report per labeled share (mean, standard error and every seed); --out writes
it and --jsonl every seed's figures.

    python bench/fewlabel.py --data digits --labeled 0.02 0.05 --seeds 10 --jobs 2
    python bench/fewlabel.py --data plaid --labeled 0.05 --seeds 10 --budgets 25 50 100 200

Per-seed results also go to stderr as JSON lines as they finish; `--from-log FILE` rebuilds the
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
from real_data import CLASSES, DATASETS, write_native  # noqa: E402

from mersemi.engine.metrics import waf  # noqa: E402
from mersemi.service.review import DEFAULT_QUEUE  # noqa: E402

MERSEMI = [sys.executable, "-m", "mersemi.ui.cli"]
ORACLE = "oracle: LR, every pool label"
AUTO_PEERS = ("LR (labeled only)", "SelfTrainingClassifier (0.9)", "LabelSpreading (knn)")


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


def last_round(project: Path) -> dict:
    """The round in force: the latest finished one."""
    status = json.loads(cli("status", project, "--json"))
    return next(r for r in reversed(status["rounds"]) if r["id"] == status["current_round"])


def queue(project: Path, kind: str | None, limit: int) -> list[dict]:
    args = ["queue", project, "--limit", limit, "--csv"] + (["--kind", kind] if kind else [])
    return list(csv.DictReader(io.StringIO(cli(*args))))


def simulated_review(project: Path, rows: list[dict], truth: dict[str, str]) -> int:
    """Decide queue rows as a careful reviewer: accept a right prediction, give the true class
    otherwise (a label on a label card, a relabel on a verify card, as the app records them).
    Returns how many predictions were wrong."""
    path = project.parent / f"decisions-{project.name}.csv"   # one per project: seeds run in parallel
    wrong = 0
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "decision", "label"])
        for r in rows:
            true = truth[r["name"]]
            if r["predicted"] == true:
                w.writerow([r["name"], "accept", ""])
            else:
                wrong += 1
                w.writerow([r["name"], "label" if r["kind"] == "label" else "relabel", true])
    if rows:
        cli("decide", project, "--file", path, "--reviewer", "bench")
    return wrong


def candidate_calibration(project: Path, truth: dict[str, str]) -> tuple[float, float, int]:
    """(expected precision, real precision, count) of the round's verify queue, i.e. every
    candidate at the thresholds the policy set."""
    rows = queue(project, "verify", 1_000_000)
    if not rows:
        return float("nan"), float("nan"), 0
    expected = float(np.mean([float(r["confidence"]) for r in rows]))
    real = float(np.mean([truth[r["name"]] == r["predicted"] for r in rows]))
    return expected, real, len(rows)


def write_synthetic_few(folder: Path, seed: int, n_labeled: int) -> dict:
    """`mersemi synth` (default scale: 2,000 labeled, 10,000 pool, 1,000 test) with only
    `n_labeled` of its labeled samples kept (stratified, at least 2 per class), written as a
    native folder; the same dict as real_data.write_native."""
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
            "split": out["split"].to_numpy(), "names": out["name"].tolist(), "classes": CLASSES}


def write_data(data: str, folder: Path, seed: int, labeled: float) -> dict:
    if data in DATASETS:
        return write_native(folder, data, seed=seed, labeled=labeled)
    return write_synthetic_few(folder, seed, int(labeled))


def true_classes(d: dict) -> dict[str, str]:
    """Each sample's true class name, by sample name (what the simulated reviewer knows)."""
    return {n: d["classes"][c] for n, c in zip(d["names"], d["y"].tolist())}


def peers(d: dict, seed: int, budgets: list[int]) -> dict[str, float]:
    X = np.concatenate(list(d["features"].values()), axis=1)
    y, split = d["y"], d["split"]
    lab, pool, test = (np.flatnonzero(split == s) for s in ("labeled", "unlabeled", "test"))

    def lr():
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))

    def score(model, rows) -> float:
        model.fit(X[rows], y[rows])
        return waf(y[test], model.predict(X[test]))

    out = {"LR (labeled only)": score(lr(), lab), ORACLE: score(lr(), np.r_[lab, pool])}
    rng = np.random.default_rng(seed)
    order = rng.permutation(pool)
    # uncertainty sampling in one batch: the pool samples LR on the labeled ones is least sure of
    base = lr().fit(X[lab], y[lab])
    unsure = pool[np.argsort(base.predict_proba(X[pool]).max(1), kind="stable")]
    for b in budgets:
        out[f"LR + {b} random pool labels"] = score(lr(), np.r_[lab, order[:b]])
        out[f"LR + {b} least-confident pool labels"] = score(lr(), np.r_[lab, unsure[:b]])
    semi_rows = np.r_[lab, pool]
    semi_y = np.r_[y[lab], -np.ones(len(pool), int)]
    st = make_pipeline(StandardScaler(), SelfTrainingClassifier(LogisticRegression(max_iter=3000), threshold=0.9))
    st.fit(X[semi_rows], semi_y)
    out["SelfTrainingClassifier (0.9)"] = waf(y[test], st.predict(X[test]))
    ls = make_pipeline(StandardScaler(), LabelSpreading(kernel="knn", n_neighbors=7))
    ls.fit(X[semi_rows], semi_y)
    out["LabelSpreading (knn)"] = waf(y[test], ls.predict(X[test]))
    return out


def run_seed(data_kind: str, seed: int, labeled: float, budgets: list[int], work: Path, config: str) -> dict:
    t_seed = time.time()
    tag = f"{labeled}-{seed}"
    data, base = work / f"data-{tag}", work / f"r0-{tag}"
    d = write_data(data_kind, data, seed, labeled)
    truth = true_classes(d)
    count = {s: int(np.sum(d["split"] == s)) for s in ("labeled", "unlabeled", "test")}
    cli("init", base, "--classes", ",".join(d["classes"]))
    cli("import", base, "--native", data)
    t0 = time.time()
    r0 = train(base, "--config", config)[-1]
    r0_s = time.time() - t0
    exp, real, n_cand = candidate_calibration(base, truth)
    res = {"data": data_kind, "labeled_share": labeled, "seed": seed, "labeled": count["labeled"],
           "pool": count["unlabeled"], "test": count["test"], "round0": r0["test_waf"], "round0_ece": r0["test_ece"],
           "round0_s": r0_s, "round0_graph_weight": r0.get("graph_weight"), "eval_scheme": r0.get("eval_scheme"),
           "cand_expected": exp, "cand_real": real, "cand_n": n_cand}

    auto = work / f"auto-{tag}"
    shutil.copytree(base, auto)
    rounds = train(auto, "--config", config, "--auto-accept", "--rounds", "3")
    last = last_round(auto)
    res |= {"auto": last["test_waf"], "auto_ece": last["test_ece"], "auto_rounds": len(rounds),
            "auto_kept": last["id"], "auto_notes": [r.get("kept_reason") for r in rounds],
            "auto_pseudo": (last["composition"] or {}).get("pseudo", 0),
            "auto_precision": (last["pseudo_precision"] or {}).get("overall")}

    res["label_queue"] = len(queue(base, "label", 1_000_000))
    res["curve"] = {}
    for b in budgets:
        # the default queue (what `mersemi queue` and the app show first), then three automatic rounds
        proj = work / f"default{b}-{tag}"
        shutil.copytree(base, proj)
        rows = queue(proj, None, b)
        wrong = simulated_review(proj, rows, truth)
        retrain = train(proj, "--config", config)[-1]["test_waf"]
        train(proj, "--config", config, "--auto-accept", "--rounds", "3")
        last = last_round(proj)
        res["curve"][str(b)] = {"decided": len(rows), "wrong": wrong, "retrain": retrain,
                                "reviewed": last["test_waf"], "reviewed_ece": last["test_ece"]}
    top = max(budgets)
    proj = work / f"verify-{tag}"   # the verify queue alone, the largest budget, one retrain
    shutil.copytree(base, proj)
    rows = queue(proj, "verify", top)
    res["verify_wrong"], res["verify_decided"] = simulated_review(proj, rows, truth), len(rows)
    res["verify_retrain"] = train(proj, "--config", config)[-1]["test_waf"]
    res["peers"] = peers(d, seed, budgets)
    res["seed_s"] = time.time() - t_seed
    return res


def stats(vals: list[float]) -> tuple[float, float]:
    """Mean and standard error (0 for one value)."""
    v = np.asarray([x for x in vals if x is not None and not np.isnan(x)], float)
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def report(rows: list[dict], data: str, labeled: float, budgets: list[int], config: str, wall_s: float,
           jobs: int = 1) -> str:
    r0 = stats([r["round0"] for r in rows])[0]

    def mean(key: str) -> float:
        return stats([r[key] for r in rows])[0]

    def pct(v: float) -> str:
        return f"{100 * v:.1f}"

    what = {"digits": "six digits at MER2024's class proportions", "plaid": "six appliances (PLAID) at MER2024's "
            "class proportions", "synthetic": "`mersemi synth` at the default scale, labeled samples cut down, "
            "stratified"}.get(data, f"{data}, bench/suite_sets.py")
    share = f"{labeled:.0%} labeled" if data in DATASETS else f"{int(labeled)} labeled"
    scheme = rows[0].get("eval_scheme") or {}
    lines = [f"## {data}, {share}: {len(rows)} seeds, config `{config}`", "",
             f"{rows[0]['labeled']} labeled, {rows[0]['pool']} pool, {rows[0]['test']} test samples per seed "
             f"({what}; bench/real_data.py); evaluation: {scheme.get('text', 'n/a')}. Test WAF in %, mean ± "
             f"standard error over seeds, then every seed. Run: `python bench/fewlabel.py --data {data} "
             f"--labeled {labeled} --seeds {len(rows)} --budgets {' '.join(map(str, budgets))}"
             f"{f' --jobs {jobs}' if jobs > 1 else ''}`; {wall_s / 60:.0f} min on this machine (2 cores).", "",
             "| | test WAF | vs round 0 | per seed |", "|---|---|---|---|"]

    def row(name: str, vals: list[float]) -> None:
        m, se = stats(vals)
        lines.append(f"| {name} | {pct(m)} ± {pct(se)} | {100 * (m - r0):+.1f} | {' '.join(pct(v) for v in vals)} |")

    row("MR-CCL round 0", [r["round0"] for r in rows])
    row("MR-CCL round 0 + `train --auto-accept --rounds 3`", [r["auto"] for r in rows])
    for b in budgets:
        row(f"MR-CCL + {b} default-queue decisions (*{DEFAULT_QUEUE}*), one retrain",
            [r["curve"][str(b)]["retrain"] for r in rows])
        row(f"MR-CCL + {b} default-queue decisions, then `--auto-accept --rounds 3`",
            [r["curve"][str(b)]["reviewed"] for r in rows])
    row(f"MR-CCL + {max(budgets)} decisions from the *verify* queue, one retrain", [r["verify_retrain"] for r in rows])
    for name in rows[0]["peers"]:
        row(f"peer: {name}", [r["peers"][name] for r in rows])

    oracle = stats([r["peers"][ORACLE] for r in rows])[0]
    auto = [r["auto"] - r["round0"] for r in rows]
    best_peer = max(stats([r["peers"][p] for r in rows])[0] for p in AUTO_PEERS)
    reached = [b for b in budgets if stats([r["curve"][str(b)]["reviewed"] for r in rows])[0] >= oracle]
    lines += ["", "| measure | value |", "|---|---|",
              f"| automatic gain over round 0 | {100 * stats(auto)[0]:+.1f} ± {100 * stats(auto)[1]:.1f} points "
              f"(per seed {' '.join(f'{100 * a:+.1f}' for a in auto)}) |",
              f"| automatic minus best automatic peer | {100 * (stats([r['auto'] for r in rows])[0] - best_peer):+.1f} "
              f"points |",
              f"| fewest default-queue decisions (then automatic rounds) reaching the oracle ({pct(oracle)}) | "
              f"{reached[0] if reached else f'not within {max(budgets)}'} |",
              f"| accepted pseudo-labels right (automatic arm) | {pct(mean('auto_precision'))} % "
              f"of {mean('auto_pseudo'):.0f} per seed |",
              f"| automatic rounds kept (round in force after `--rounds 3`) | "
              f"{' '.join(str(r['auto_kept']) for r in rows)} |",
              f"| round 0 candidates: expected / real precision | {pct(mean('cand_expected'))} % "
              f"/ {pct(mean('cand_real'))} % ({mean('cand_n'):.0f} per seed) |",
              f"| test ECE: round 0 / automatic / {max(budgets)} reviewed | {mean('round0_ece'):.3f}"
              f" / {mean('auto_ece'):.3f} / "
              f"{stats([r['curve'][str(max(budgets))]['reviewed_ece'] for r in rows])[0]:.3f} |",
              f"| predictions wrong among {max(budgets)} reviewed: default / verify queue | "
              f"{stats([r['curve'][str(max(budgets))]['wrong'] for r in rows])[0]:.0f} / "
              f"{mean('verify_wrong'):.0f} |",
              f"| samples below their threshold (the label queue) after round 0 | {mean('label_queue'):.0f} |",
              f"| round 0 wall time (CLI, incl. start-up) | {mean('round0_s'):.0f} s |", ""]
    return "\n".join(lines)


def labeled_share(text: str) -> float:
    value = float(text)
    if not 0 < value < 1 and value < 2:
        raise argparse.ArgumentTypeError(f"--labeled: a share in (0, 1) (or a count for --data synthetic), got {text}")
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--data", choices=[*DATASETS, "synthetic"], default="digits")
    ap.add_argument("--labeled", type=labeled_share, nargs="+", default=None,
                    help="shares labeled, e.g. 0.01 0.02 0.05 0.10 (default 0.05); synthetic: labeled counts (100)")
    ap.add_argument("--budgets", type=int, nargs="+", default=[200],
                    help="reviewer decisions for the decisions curve, e.g. 25 50 100 200 (default 200)")
    ap.add_argument("--config", default="default", help="preset or YAML for every round")
    ap.add_argument("--out", type=Path, help="also write the Markdown report here")
    ap.add_argument("--jsonl", type=Path, help="also write every seed's figures here, one JSON line each")
    ap.add_argument("--jobs", type=int, default=1,
                    help="seeds run at once (each trains on one core: 2 on a 2-core machine)")
    ap.add_argument("--from-log", type=Path, metavar="FILE",
                    help="no run: the report of the per-seed JSON lines in FILE")
    args = ap.parse_args()
    if args.data in DATASETS and any(not 0 < v < 1 for v in args.labeled or []):
        ap.error("--labeled: shares in (0, 1) for real data")
    shares = args.labeled or ([0.05] if args.data in DATASETS else [100])
    budgets = sorted(set(args.budgets))
    t0 = time.time()
    rows: list[dict] = []
    if args.from_log:
        rows = [json.loads(line) for line in args.from_log.read_text().splitlines() if line.startswith("{")]
    else:
        with tempfile.TemporaryDirectory(prefix="fewlabel-") as tmp, \
                ThreadPoolExecutor(max(1, args.jobs)) as pool:   # the work is in `mersemi` processes
            runs = [pool.submit(run_seed, args.data, seed, share, budgets, Path(tmp), args.config)
                    for share in shares for seed in range(args.first_seed, args.first_seed + args.seeds)]
            for done in as_completed(runs):
                rows.append(done.result())
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if args.jsonl:
        args.jsonl.parent.mkdir(parents=True, exist_ok=True)
        args.jsonl.write_text("".join(json.dumps(r) + "\n" for r in sorted(rows, key=lambda r: (r["labeled_share"],
                                                                                               r["seed"]))))
    text = f"# Few labels on {args.data}\n\n"
    for share in sorted({r.get("labeled_share", shares[0]) for r in rows}):
        mine = sorted((r for r in rows if r.get("labeled_share", shares[0]) == share), key=lambda r: r["seed"])
        wall = sum(r.get("seed_s", 0) for r in mine) / max(1, args.jobs) if args.from_log else time.time() - t0
        text += report(mine, args.data, share, budgets, args.config, wall, args.jobs) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
