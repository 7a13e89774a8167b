"""The Markdown report of bench/suite.py's units (its --jsonl): per data set and labeled share the
means over seeds, the per-seed gain of the automatic rounds over round 0 with its worst seed, the
decision arms, the peers, the diagnostics of every automatic run, and, given several
configurations, the same seeds side by side. WAF in %."""
from __future__ import annotations

from collections import defaultdict

import numpy as np

TARGET_MEAN, TARGET_WORST = -0.5, -3.0   # issue 30: mean gain at least -0.5, no seed below -3 points
PEERS = [("LR", "LR (labeled only)"), ("SelfTraining", "SelfTrainingClassifier (0.9)"),
         ("LabelSpreading", "LabelSpreading (knn)"), ("LR + 200 random", "LR + 200 random pool labels"),
         ("oracle", "oracle: LR, every pool label")]


def meets_target(gains_points) -> bool:
    """Issue 30's target for one data set x share: the mean gain over round 0 at least
    TARGET_MEAN points and no seed below TARGET_WORST."""
    return float(np.mean(gains_points)) >= TARGET_MEAN and min(gains_points) >= TARGET_WORST


def pct(v: float | None) -> str:
    return "–" if v is None or np.isnan(v) else f"{100 * v:.1f}"


def signed(v: float) -> str:
    return f"{100 * v:+.1f}".replace("-", "−")


def mean(vals) -> float:
    v = [x for x in vals if x is not None]
    return float(np.mean(v)) if v else float("nan")


def arms(row: dict) -> list[dict]:
    """A journal row as arm rows (bench/suite.py): the first runs' rows held every arm at once."""
    if row["kind"] != "mersemi" or "arm" in row:
        return [row]
    base = {k: v for k, v in row.items() if k != "reviewed"}
    return [base | {"arm": "auto"}] + [{k: v for k, v in base.items() if k != "auto"}
                                       | {"arm": "review", "budget": int(b), "reviewed": {b: r}}
                                       for b, r in row["reviewed"].items()]


def groups(rows: list[dict], config: str) -> dict[tuple, list[dict]]:
    """One configuration's splits by (data, share), each a list in seed order of the split's arms
    merged: round 0 and `auto` from the automatic arm, `reviewed` by budget from the others.
    Splits whose automatic arm has not run yet are left out."""
    merged: dict[tuple, dict] = {}
    for row in rows:
        for a in arms(row):
            if a["kind"] != "mersemi" or a["config"] != config:
                continue
            m = merged.setdefault((a["data"], a["labeled_share"], a["seed"]), {"reviewed": {}})
            if a["arm"] == "auto":
                m.update({k: v for k, v in a.items() if k != "reviewed"})
            else:
                m["reviewed"].update(a["reviewed"])
    out: dict[tuple, list[dict]] = defaultdict(list)
    for (data, share, _), m in sorted(merged.items()):
        if "auto" in m:
            out[(data, share)].append(m)
    return out


def peer_rows(rows: list[dict]) -> dict[tuple, dict]:
    return {(r["data"], r["labeled_share"], r["seed"]): r["peers"] for r in rows if r["kind"] == "peers"}


def gains(units: list[dict]) -> list[float]:
    return [u["auto"]["test_waf"] - u["round0"] for u in units]


def main_table(rows: list[dict], config: str, budgets: list[str]) -> list[str]:
    peers = peer_rows(rows)
    head = (["data set", "labeled", "seeds", "round 0", "automatic", "auto − round 0 per seed", "worst"]
            + [f"{b} decisions + auto" for b in budgets] + [p for p, _ in PEERS])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    suite: dict[str, list[float]] = defaultdict(list)
    for (data, share), units in sorted(groups(rows, config).items()):
        g = gains(units)
        cells = {"round 0": mean(u["round0"] for u in units), "automatic": mean(u["auto"]["test_waf"] for u in units)}
        for b in budgets:
            cells[f"{b} decisions + auto"] = mean(u["reviewed"][b]["auto"]["test_waf"] for u in units
                                                 if b in u["reviewed"])
        for name, full in PEERS:
            cells[name] = mean(peers.get((data, share, u["seed"]), {}).get(full) for u in units)
        for k, v in cells.items():
            suite[k].append(v)
        suite["gain"].append(float(np.mean(g)))
        ok = meets_target([100 * x for x in g])
        lines.append(f"| {data} | {share:.0%} ({units[0]['counts']['labeled']}) | {len(units)} | "
                     f"{pct(cells['round 0'])} | {pct(cells['automatic'])} | **{signed(float(np.mean(g)))}** "
                     f"({' '.join(signed(x) for x in g)})"
                     f"{'' if ok else ' ✗'} | {signed(min(g))} | "
                     + " | ".join(pct(cells[k]) for k in head[7:]) + " |")
    if suite["gain"]:
        lines.append(f"| **suite mean** | | | {pct(mean(suite['round 0']))} | {pct(mean(suite['automatic']))} | "
                     f"**{signed(mean(suite['gain']))}** | | "
                     + " | ".join(pct(mean(suite[k])) for k in head[7:]) + " |")
    return lines


def targets(rows: list[dict], config: str, budgets: list[str]) -> list[str]:
    gs = groups(rows, config)
    if not gs:
        return []
    missed = [f"{d} {s:.0%} (mean {signed(float(np.mean(gains(u))))}, worst {signed(min(gains(u)))})"
              for (d, s), u in sorted(gs.items())
              if not meets_target([100 * g for g in gains(u)])]
    lines = [f"- Automatic rounds (mean ≥ round 0 − 0.5, no seed below round 0 − 3): met on "
             f"{len(gs) - len(missed)} of {len(gs)} data set × share cells"
             + (f"; missed on {', '.join(missed)}." if missed else ".")]
    top = budgets[-1] if budgets else None
    if top:
        peers = peer_rows(rows)
        pairs = [(u["reviewed"][top]["auto"]["test_waf"], peers.get((d, s, u["seed"]), {}).get(PEERS[-1][1]))
                 for (d, s), us in gs.items() for u in us if top in u["reviewed"]]
        pairs = [p for p in pairs if p[1] is not None]
        if pairs:
            reviewed, oracle = (float(np.mean(v)) for v in zip(*pairs))
            lines.append(f"- {top} decisions then automatic rounds against the oracle, mean of the {len(pairs)} "
                         f"splits that have both: {pct(reviewed)} against {pct(oracle)} ({signed(reviewed - oracle)}).")
    return lines


def diagnostics(rows: list[dict], config: str) -> list[str]:
    head = ["data set", "labeled", "pseudo-labels in force per seed", "right", "rounds run / discarded",
            "round 0 candidates: expected / real precision", "seeds below round 0 − 0.5: gain, pseudo-labels, right"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (data, share), units in sorted(groups(rows, config).items()):
        autos = [u["auto"] for u in units]
        right = [a["pseudo_right"] for a in autos if a["pseudo_right"] is not None]
        hurt = [f"{signed(u['auto']['test_waf'] - u['round0'])}, {u['auto']['pseudo']}, "
                f"{pct(u['auto']['pseudo_right'])} %"
                for u in units if u["auto"]["test_waf"] - u["round0"] < TARGET_MEAN / 100]
        cand = [u["candidates"] for u in units if u["candidates"]["n"]]
        lines.append(f"| {data} | {share:.0%} | {' '.join(str(a['pseudo']) for a in autos)} | "
                     f"{pct(mean(right))} % | {sum(len(a['rounds']) for a in autos)} / "
                     f"{sum(a['discarded'] for a in autos)} | "
                     f"{pct(mean(c['expected'] for c in cand))} / {pct(mean(c['real'] for c in cand))} % "
                     f"({mean(c['n'] for c in cand) if cand else 0:.0f} per seed) | {'; '.join(hurt) or '–'} |")
    return lines


def per_seed(rows: list[dict], config: str) -> list[str]:
    """Every automatic run: the round before and each automatic round with its pseudo-labels, their
    precision, what the guard saw (out-of-fold log-loss, WAF) and its test WAF."""
    lines = ["| data set | labeled | seed | round 0 test / OOF log-loss / OOF WAF | automatic rounds: status, "
             "pseudo-labels (right), OOF log-loss, OOF WAF, test | in force | pseudo-labels per class | "
             "largest test F1 drop | gain |", "|---|---|---|---|---|---|---|---|---|"]
    for (data, share), units in sorted(groups(rows, config).items()):
        for u in units:
            a, b = u["auto"], u["auto"]["before"]
            steps = "; ".join(f"{r['id']} {r['status']}, {r['pseudo']} ({pct(r['pseudo_right'])} %), "
                              f"{_f(r.get('oof_log_loss'))}, {pct(r.get('cv_waf'))}, {pct(r['test_waf'])}"
                              for r in a["rounds"])
            per_class = "·".join(str(v) for v in (a.get("pseudo_per_class") or {}).values()) or "–"
            lines.append(f"| {data} | {share:.0%} | {u['seed']} | {pct(b['test_waf'])} / {_f(b.get('oof_log_loss'))} / "
                         f"{pct(b.get('cv_waf'))} | {steps or 'no candidate'} | {a['in_force']} | {per_class} | "
                         f"{_f1_drop(b.get('test_f1'), a.get('test_f1'))} | {signed(a['test_waf'] - u['round0'])} |")
    return lines


def _f1_drop(before: dict | None, after: dict | None) -> str:
    """The class whose test F1 fell most from the round before to the round in force."""
    if not before or not after:
        return "–"
    c = min(before, key=lambda k: after[k] - before[k])
    return f"{c} {pct(before[c])} → {pct(after[c])}" if after[c] < before[c] else "none"


def _f(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def comparison(rows: list[dict], configs: list[str], budgets: list[str]) -> list[str]:
    """The configurations on the same splits: each one's round 0, automatic gain (worst seed) and
    decision arm, and per seed the automatic WAF of each against the first."""
    base = groups(rows, configs[0])
    top = budgets[-1] if budgets else None
    head = ["data set", "labeled"] + [f"{c}: round 0 / auto − r0 (worst)" for c in configs] \
        + ([f"{c}: {top} + auto" for c in configs] if top else []) \
        + [f"{c} − {configs[0]} automatic, per seed" for c in configs[1:]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cell in sorted(base):
        per = {c: {u["seed"]: u for u in groups(rows, c).get(cell, [])} for c in configs}
        seeds = sorted(set.intersection(*(set(p) for p in per.values())))
        if not seeds:
            continue
        parts = []
        for c in configs:
            us = [per[c][s] for s in seeds]
            parts.append(f"{pct(mean(u['round0'] for u in us))} / {signed(float(np.mean(gains(us))))} "
                         f"({signed(min(gains(us)))})")
        if top:
            parts += [pct(mean(per[c][s]["reviewed"][top]["auto"]["test_waf"] for s in seeds)) for c in configs]
        for c in configs[1:]:
            diffs = [per[c][s]["auto"]["test_waf"] - per[configs[0]][s]["auto"]["test_waf"] for s in seeds]
            parts.append(f"{signed(float(np.mean(diffs)))} ({' '.join(signed(d) for d in diffs)})")
        lines.append(f"| {cell[0]} | {cell[1]:.0%} ({len(seeds)} seeds) | " + " | ".join(parts) + " |")
    return lines


def report(rows: list[dict], configs: list[str]) -> str:
    units = [r for r in rows if r["kind"] == "mersemi"]
    budgets = sorted({b for r in units for a in arms(r) for b in a.get("reviewed", {})}, key=int)
    sessions = [r for r in rows if r["kind"] == "session"]
    errors = [r for r in rows if r["kind"] == "error"]
    out = ["# Benchmark suite", "",
           f"Units: {sum(len(arms(r)) for r in units)} MR-CCL arms, "
           f"{sum(r['kind'] == 'peers' for r in rows)} peer runs; commits "
           f"{', '.join(sorted({r['commit'] for r in units})) or '–'}. Runs: "
           + "; ".join(f"{s['finished_at']}, {s['units']} units in {s['wall_s'] / 60:.0f} min wall, "
                       f"{s['cpu_s'] / 60:.0f} min CPU (user+sys), {s['jobs']} jobs, {s['cpu']}" for s in sessions)
           + ". Test WAF in %; `auto` is `train --auto-accept --rounds 3`; gains in points.", ""]
    if errors:
        out += [f"Failed units (run again by the same command): {len(errors)}, e.g. {errors[-1]['error']}", ""]
    for c in configs:
        out += [f"## Configuration `{c}`", "", *main_table(rows, c, budgets), "", *targets(rows, c, budgets), "",
                "### Why: the pseudo-labels and the guard", "", *diagnostics(rows, c), "",
                "### Every automatic run", "", *per_seed(rows, c), ""]
    if len(configs) > 1:
        out += ["## Configurations on the same splits", "", *comparison(rows, configs, budgets), ""]
    return "\n".join(out)
