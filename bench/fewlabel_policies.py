"""Which automatic policy adds labels that help: the self-training loop at engine level on the
few-label digits, one run per policy, the same seeds and round 0 for every policy.

Per seed: round 0 on the gold labels, then 3 automatic rounds. Before each, the policy's
thresholds (engine/self_training.propose_thresholds on the open pool) and the class-balance cap
(engine/self_training.select) pick pseudo-labels from the last round's calibrated pool scores,
as `train --auto-accept` does. Prints, per policy: test WAF after round 0 and after round 3,
the pseudo-labels' precision against the pool's truth, and the test ECE. The CLI-level
benchmark (bench/fewlabel.py) measures the default policy with peers; this one compares
policies without the CLI's start-up cost.

    python bench/fewlabel_policies.py --seeds 5 --jobs 2 --policy sample:0.95 sample:0.90 set:0.95
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_data import arrays  # noqa: E402

from mersemi.engine import self_training  # noqa: E402
from mersemi.engine.calibration import expected_calibration_error  # noqa: E402
from mersemi.engine.config import load_config  # noqa: E402
from mersemi.engine.metrics import waf  # noqa: E402
from mersemi.engine.thresholds import TARGET_PER  # noqa: E402
from mersemi.engine.train import TrainSet, train_round  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"
N_CLASSES = 6


def run(seed: int, policy: str, labeled: float, rounds: int) -> dict:
    warnings.filterwarnings("ignore")
    per, target = policy.split(":")
    cfg = load_config(CONFIG)
    d = arrays("digits", seed, labeled)
    y, split = d["y"], d["split"]
    lab, pool, test = (np.flatnonzero(split == s) for s in ("labeled", "unlabeled", "test"))
    extra, extra_y = np.zeros(0, np.int64), np.zeros(0, np.int64)
    history, share = [], None
    for r in range(rounds + 1):
        # as service/rounds.py: rounds on pseudo-labels keep round 0's graph share
        res = train_round(TrainSet(features=d["features"], gold_rows=lab, gold_labels=y[lab],
                                   extra_rows=extra, extra_labels=extra_y, pretrain_rows=np.r_[lab, pool],
                                   score_rows=np.r_[pool, test], graph_share=share if r else None,
                                   extra_from_model=np.ones(len(extra), bool)),
                          N_CLASSES, cfg)
        if r == 0:
            share = self_training.graph_share(res.metrics)
        pool_p, test_p = res.score_probs[:len(pool)], res.score_probs[len(pool):]
        history.append({"test_waf": waf(y[test], test_p.argmax(1)),
                        "test_ece": expected_calibration_error(test_p, y[test]),
                        "temperature": res.metrics["temperature"], "pseudo": len(extra),
                        "pseudo_right": int(np.sum(extra_y == y[extra]))})
        if r == rounds:
            break
        pred, conf = pool_p.argmax(1), pool_p.max(1)
        open_ = ~np.isin(pool, extra)
        th, _ = self_training.propose_thresholds(pred, conf, open_, N_CLASSES, policy="target_precision",
                                                 target=float(target), per=per, fixed=[])
        sel = self_training.select(pred, conf, open_, th, np.bincount(y[lab], minlength=N_CLASSES),
                                   np.bincount(extra_y, minlength=N_CLASSES), cfg.self_training.balance_cap)
        new = np.flatnonzero(sel.mask)
        if len(new) == 0:
            history.append(history[-1])   # nothing new passes: the loop stops, as the CLI's does
            break
        extra, extra_y = np.r_[extra, pool[new]], np.r_[extra_y, pred[new]]
    return {"seed": seed, "policy": policy, "rounds": history}


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
    print(f"| policy | round 0 | after {args.rounds} rounds | gain | pseudo-labels per seed | right "
          f"| test ECE r0 / last |")
    print("|---|---|---|---|---|---|---|")
    for p in args.policy:
        rs = [r["rounds"] for r in results if r["policy"] == p]
        first, last = (np.mean([h[i]["test_waf"] for h in rs]) * 100 for i in (0, -1))
        n = sum(h[-1]["pseudo"] for h in rs)
        right = sum(h[-1]["pseudo_right"] for h in rs)
        ece0, ece1 = (np.mean([h[i]["test_ece"] for h in rs]) for i in (0, -1))
        print(f"| {p} | {first:.1f} | {last:.1f} | {last - first:+.1f} | {n / len(rs):.0f} | "
              f"{100 * right / max(n, 1):.1f} % | {ece0:.3f} / {ece1:.3f} |")


if __name__ == "__main__":
    main()
