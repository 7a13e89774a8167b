"""Expected precision (what the app shows) against the real precision of the candidates.

Builds a project from synthetic data, trains round 0 with configs/default.yaml, then per
class, at the paper's thresholds: the undecided candidates, their expected precision as the
app shows it (mean calibrated confidence, service/review.class_table), the out-of-fold precision
with its support, and the share of the candidates whose hidden true label is the predicted
class. Then the same for the thresholds that "suggest"
picks for a target precision. Writes a markdown table.

    python bench/bench_precision.py [--seed 0] [--target 0.95] [--out bench/results/precision.md]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench_train import write_markdown
from mersemi.engine import self_training
from mersemi.engine.config import load_config
from mersemi.engine.synthetic import make_synthetic
from mersemi.service.project import Project
from mersemi.service.review import class_table, paper_preset, round_view, suggest_thresholds
from mersemi.service.rounds import run_round


def table(project: Project, thresholds: dict[str, float]) -> tuple[list[str], tuple[int, int]]:
    view = round_view(project)
    pool_ids, _, pool_true = project.store.samples.split_arrays("unlabeled")
    true_of = dict(zip(pool_ids.tolist(), pool_true.tolist()))
    truth = np.array([true_of[i] for i in view.pool_ids.tolist()])
    lines, right, total = [], 0, 0
    for c, row in enumerate(class_table(project, thresholds)):
        t = row["threshold"]
        sel = (view.pool_pred == c) & (view.pool_conf >= t)
        n = int(sel.sum())
        hits = int((truth[sel] == c).sum())
        right, total = right + hits, total + n
        exp = "-" if row["expected_precision"] is None else f"{100 * row['expected_precision']:.1f} %"
        oof = "-" if row["oof_precision"] is None else f"{100 * row['oof_precision']:.1f} % ({row['oof_support']})"
        act = "-" if n == 0 else f"{100 * hits / n:.1f} %"
        lines.append(f"| {row['class']} ({t:.3f}) | {n:,} | {exp} | {oof} | {act} |")
    return lines, (right, total)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "precision.md")
    args = ap.parse_args()
    head = ["| class (threshold) | candidates | expected precision | out-of-fold precision (n) | actual precision |",
            "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        make_synthetic(Path(tmp) / "data", scale="default", seed=args.seed)
        with Project.init(Path(tmp) / "proj") as project:
            project.import_native(Path(tmp) / "data")
            r = run_round(project, load_config())
            preset = paper_preset(project)
            paper, (pr, pt) = table(project, preset)
            suggested = suggest_thresholds(project, args.target)
            unreachable = [c for c, t in suggested.items() if t is None]
            chosen = {c: self_training.closed_if_unreachable(t) for c, t in suggested.items()}
            sugg, (sr, st) = table(project, chosen)
    md = "\n".join([
        f"Synthetic data (scale `default`, seed {args.seed}), round 0 with configs/default.yaml "
        f"(CV WAF {100 * r['cv_waf']:.2f}, test WAF {100 * r['test_waf']:.2f}).", "",
        "At the paper's thresholds:", "", *head, *paper,
        f"\nAll candidates: {pt:,}, {100 * pr / max(pt, 1):.1f} % correct.", "",
        f"Suggested for a target of {args.target} (classes that cannot reach it get 1.0, "
        f"as the target-precision policy sets them: {', '.join(unreachable) or 'none'}):", "", *head, *sugg,
        f"\nAll candidates: {st:,}, {100 * sr / max(st, 1):.1f} % correct.", ""])
    write_markdown(md, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
