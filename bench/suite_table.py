"""Issue 30's table, per data set and labeled share, joined from the three journals of
bench/suite_methods.py that share their splits: round 0 and the automatic rounds of one method
(--methods-jsonl), the first 25 decisions of the default queue (--queue-jsonl), and 200 decisions
then automatic rounds with the peers of the same splits (--decisions-jsonl: LR, SelfTraining,
LabelSpreading, LR + 200 random pool labels, the oracle). Each column counts its own seeds, since
the journals need not be equally far along. Reads only; WAF in %.

    python bench/suite_table.py --out bench/results/suite_table.md
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite_report import PEERS, TARGET_WORST, meets_target  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def table(methods: list[dict], queue: list[dict], decisions: list[dict], method: str = "quota",
          order: str = "default") -> str:
    """One row per (data set, share) that `method` has run on; a column with no split is "–"."""
    auto = [u for u in methods if u["method"] == method]
    q25 = [u for u in queue if u["queue"] == order and u["budget"] == 25]
    dec = [u for u in decisions if u["queue"] == order and "decided_auto" in u]
    b = dec[0]["budget"] if dec else 200
    peers = [(name.replace("200", str(b)), key.replace("200", str(b))) for name, key in PEERS]
    head = ["data set", "labeled", "round 0", "automatic − r0: mean (worst seed), seeds", "25 decisions − r0, seeds",
            f"{b} decisions + auto, seeds"] + [name for name, _ in peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    every: dict[str, list[float]] = {k: [] for k in ("r0", "auto", "q25", "dec", *(n for n, _ in peers))}
    for data, share in sorted({(u["data"], u["labeled_share"]) for u in auto}):
        a, q, d = ([u for u in us if (u["data"], u["labeled_share"]) == (data, share)] for us in (auto, q25, dec))
        gains = [u["auto"] - u["round0"] for u in a]
        r0 = [u["round0"] for u in a]
        q_gains = [u["decided"] - u["round0"] for u in q]
        decided = [u["decided_auto"] for u in d]
        every["r0"] += r0
        every["auto"] += gains
        every["q25"] += q_gains
        every["dec"] += decided
        miss = "" if meets_target(gains) else " **miss**"
        row = [data, f"{share:.0%}", f"{np.mean(r0):.1f}",
               f"{np.mean(gains):+.2f} ({min(gains):+.1f}), {len(a)}{miss}",
               f"{np.mean(q_gains):+.1f}, {len(q)}" if q else "–",
               f"{np.mean(decided):.1f}, {len(d)}" if d else "–"]
        for name, key in peers:
            vals = [u["peers"][key] for u in d]
            every[name] += vals
            row.append(f"{np.mean(vals):.1f}" if vals else "–")
        lines.append("| " + " | ".join(row) + " |")
    m = {k: (f"{np.mean(v):.1f}" if v else "–") for k, v in every.items()}
    below = sum(g < TARGET_WORST for g in every["auto"])
    lines.append(f"| **suite** | | {m['r0']} | **{np.mean(every['auto']):+.2f}** (worst {min(every['auto']):+.1f}, "
                 f"{below} below {TARGET_WORST:+.0f}), {len(every['auto'])} | "
                 f"{np.mean(every['q25']):+.1f}, {len(every['q25'])} | **{m['dec']}**, {len(every['dec'])} | "
                 + " | ".join(m[name] for name, _ in peers) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods-jsonl", type=Path, default=RESULTS / "suite_methods_seeds.jsonl")
    ap.add_argument("--queue-jsonl", type=Path, default=RESULTS / "suite_queue_seeds.jsonl")
    ap.add_argument("--decisions-jsonl", type=Path, default=RESULTS / "suite_decisions_seeds.jsonl")
    ap.add_argument("--method", default="quota", help="the automatic arm (quota: what configs/default.yaml says)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    text = table(read(args.methods_jsonl), read(args.queue_jsonl), read(args.decisions_jsonl), args.method)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
