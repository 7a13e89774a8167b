"""Which automatic policy adds labels that help: the self-training loop at engine level on the
few-label digits, one run per policy, the same seeds and round 0 for every policy.

Per seed: round 0 on the gold labels, then up to 3 automatic rounds, driven by the estimator
that `train --auto-accept` drives against the store (engine/loop.SelfTrainer): before each
round the policy's thresholds (proposed after the round in force) and the class-balance cap
pick pseudo-labels from its calibrated pool scores, each fold trains only on those its own
predecessor voted for, and a round worse on the out-of-fold evidence is not kept (the loop
stops there, as the command line does). Prints, per policy: test WAF of round 0 and of the
round in force at the end, the pseudo-labels in force and their precision against the pool's
truth, the test ECE, and why the loops stopped. The CLI-level benchmark (bench/fewlabel.py)
measures the default policy with peers; this one compares policies without the CLI's start-up
cost.

    python bench/fewlabel_policies.py --seeds 5 --jobs 2 --policy sample:0.95 sample:0.90 set:0.95
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_data import CLASSES, arrays  # noqa: E402

from mersemi.engine.config import load_config  # noqa: E402
from mersemi.engine.loop import LoopData, LoopRound, SelfTrainer  # noqa: E402
from mersemi.engine.thresholds import TARGET_PER  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"


def run(seed: int, policy: str, labeled: float, rounds: int) -> dict:
    warnings.filterwarnings("ignore")
    per, target = policy.split(":")
    cfg = load_config(CONFIG).replace(**{"self_training.policy": "target_precision",
                                         "self_training.target_per": per,
                                         "self_training.target_precision": float(target)})
    d = arrays("digits", seed, labeled)
    y, split = d["y"], d["split"]
    lab, pool, test = (np.flatnonzero(split == s) for s in ("labeled", "unlabeled", "test"))
    data = LoopData(features=d["features"], gold_rows=lab, gold_labels=y[lab], pool_rows=pool, test_rows=test,
                    test_labels=y[test], pool_truth=y[pool])
    trainer = SelfTrainer(cfg, CLASSES, max_iter=rounds).fit(data)

    def figures(r: LoopRound) -> dict:
        test_m = r.result.metrics.test
        labels = trainer.labels_ if r.kept else None
        return {"round": r.round_id, "kept": r.kept, "test_waf": test_m.waf if test_m else None,
                "test_ece": test_m.ece if test_m else None,
                "temperature": r.result.metrics.calibration.temperature,
                "new": 0 if r.choice is None else len(r.choice.rows),
                "pseudo": None if labels is None else int(labels.from_model.sum()),
                "pseudo_right": None if labels is None else int(np.sum(
                    labels.labels[labels.from_model] == y[labels.rows[labels.from_model]]))}

    history = [figures(trainer.history_[-1])]
    while (r := trainer.step(data)) is not None:
        history.append(figures(r))
        if not r.kept:
            break
    kept = [h for h in history if h["kept"]]
    return {"seed": seed, "policy": policy, "rounds": history, "in_force": kept[-1],
            "stopped": str(trainer.termination_condition_), "n_iter": trainer.n_iter_}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="run seeds FIRST .. FIRST+SEEDS-1 (choose a default on seeds that bench/fewlabel.py, "
                         "seeds 0-4, does not report)")
    ap.add_argument("--labeled", type=float, default=0.05)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--policy", nargs="+", default=["sample:0.95", "sample:0.90", "set:0.95"],
                    help="READING:TARGET, READING sample or set")
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    for p in args.policy:
        per, _, target = p.partition(":")
        if per not in TARGET_PER or not 0 < float(target or "nan") <= 1:
            ap.error(f"--policy {p!r}: expected sample:T or set:T with T in (0, 1]")
    with ProcessPoolExecutor(max(1, args.jobs)) as ex:
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        jobs = [ex.submit(run, s, p, args.labeled, args.rounds) for p in args.policy for s in seeds]
        results = [j.result() for j in jobs]
    for r in results:
        print(json.dumps(r), file=sys.stderr)
    print(f"| policy | round 0 | in force after up to {args.rounds} rounds | gain | pseudo-labels per seed | right "
          f"| test ECE r0 / last | stopped |")
    print("|---|---|---|---|---|---|---|---|")
    for p in args.policy:
        rs = [r for r in results if r["policy"] == p]
        first = np.mean([r["rounds"][0]["test_waf"] for r in rs]) * 100
        last = np.mean([r["in_force"]["test_waf"] for r in rs]) * 100
        n = sum(r["in_force"]["pseudo"] for r in rs)
        right = sum(r["in_force"]["pseudo_right"] for r in rs)
        ece0 = np.mean([r["rounds"][0]["test_ece"] for r in rs])
        ece1 = np.mean([r["in_force"]["test_ece"] for r in rs])
        stops = ", ".join(f"{k} {v}" for k, v in sorted(Counter(r["stopped"] for r in rs).items()))
        print(f"| {p} | {first:.1f} | {last:.1f} | {last - first:+.1f} | {n / len(rs):.0f} | "
              f"{100 * right / max(n, 1):.1f} % | {ece0:.3f} / {ece1:.3f} | {stops} |")


if __name__ == "__main__":
    main()
