"""Time one training round of the engine alone (no database) on a synthetic data set.

Reads a folder written by `engine.synthetic.make_synthetic` (generated here when missing),
memory-maps its features exactly as a project does, and runs `train_round` with gold labels
from the labeled split, pre-training on labeled + pool and scoring pool + test. Prints the
wall and CPU time (CPU time is the fairer figure on a machine shared with other work), the
phase timings, CV WAF and test WAF as JSON; run under `/usr/bin/time -v` for peak memory.
With --baseline the MERTools attention baseline runs on the same data first and the ratio
of the two wall times is printed too.

    python bench/bench_train.py --scale default [--data /tmp/syn-default] [--config YAML]
    /usr/bin/time -v python bench/bench_train.py --scale mer2024 --data /tmp/syn-mer2024
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mersemi.engine.config import load_config, preset_path
from mersemi.engine.progress import TqdmProgress
from mersemi.engine.synthetic import CLASSES, make_synthetic
from mersemi.engine.train import TrainSet, train_round


def load_synthetic(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Memory-mapped features, row ids per split, and every row's true class id."""
    with open(folder / "samples.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    split = np.array([r["split"] for r in rows])
    truth = np.array([CLASSES.index(r["true_label"]) for r in rows], np.int64)
    feats = {m: np.load(folder / f"{m}.npy", mmap_mode="r") for m in ("audio", "text", "video")}
    ids = {s: np.flatnonzero(split == s).astype(np.int64) for s in ("labeled", "unlabeled", "test")}
    return feats, ids, truth


def synthetic_trainset(feats, ids, truth) -> TrainSet:
    """Round 0 of a synthetic set: gold labels from the labeled split, pre-training on
    labeled + pool, scoring the pool then the test split."""
    return TrainSet(features=feats, gold_rows=ids["labeled"], gold_labels=truth[ids["labeled"]],
                    extra_rows=np.zeros(0, np.int64), extra_labels=np.zeros(0, np.int64),
                    pretrain_rows=np.concatenate([ids["labeled"], ids["unlabeled"]]),
                    pool_rows=ids["unlabeled"], test_rows=ids["test"], test_labels=truth[ids["test"]])


def write_markdown(md: str, out: Path) -> None:
    """Print a result table and keep it in `out` (bench/results/ by default)."""
    print(md)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(md)


def run(feats, ids, truth, cfg, desc: str) -> dict:
    data = synthetic_trainset(feats, ids, truth)
    t0, c0 = time.time(), time.process_time()
    with TqdmProgress(desc) as progress:
        r = train_round(data, len(CLASSES), cfg, progress)
    wall, cpu = time.time() - t0, time.process_time() - c0
    m = r.metrics
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "timings": m.work.timings,
            "cv_waf": round(m.cv.waf, 4), "test_waf": round(m.test.waf, 4),
            "best_epochs": [f["best_epoch"] for f in m.work.folds], "warnings": m.notes}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="default", help="synthetic scale when the data must be generated")
    p.add_argument("--data", type=Path, help="synthetic data folder (generated if missing or empty)")
    p.add_argument("--config", type=Path, default=preset_path("default"))
    p.add_argument("--baseline", action="store_true", help="also time the attention baseline")
    args = p.parse_args()

    folder = args.data or Path(tempfile.mkdtemp(prefix=f"syn-{args.scale}-"))
    if not (folder / "samples.csv").exists():
        t0 = time.time()
        scale = args.scale if args.scale in ("default", "mer2024") else float(args.scale)
        make_synthetic(folder, scale)
        print(f"generated {folder} in {time.time() - t0:.1f} s", file=sys.stderr)
    feats, ids, truth = load_synthetic(folder)
    cfg = load_config(args.config)
    out = {"data": str(folder), "rows": {k: len(v) for k, v in ids.items()},
           "dims": {m: int(x.shape[1]) for m, x in feats.items()}, "config": str(args.config)}
    if args.baseline:
        base = load_config(preset_path("ablation_baseline"))
        out["baseline"] = run(feats, ids, truth, base, "baseline")
    out["round"] = run(feats, ids, truth, cfg, "MR-CCL round")
    if args.baseline:
        out["wall_ratio_vs_baseline"] = round(out["round"]["wall_s"] / out["baseline"]["wall_s"], 2)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
