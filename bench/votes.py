"""Votes with simulated reviewers (issue 27, item 6): the review loop through the `mersemi`
command line on real few-label data (bench/real_data.py, 5 % labeled), with a panel of reviewers
who answer from confusion matrices of their own: three careful ones who confuse sad with worried
and happy with surprise (Krippendorff's alpha about 0.45 on those classes) and one careless one
right half the time.

For the same 200 human decisions (votes and adjudications alike) from the default queue:

  single     one reviewer per card (200 cards)
  overlap    `overlap --votes 2 --share 0.25`: a quarter of the cards take two votes, a tie goes to
             a third reviewer (`queue --kind adjudicate`)
  triple     `overlap --votes 3 --share 1`: three votes on every card, a tie to the fourth
then `train` and `train --auto-accept --rounds 3`; test WAF of the round in force. The triple
arm's votes also train as soft targets (`votes.disagreement: soft`) and weighed by the gold
probes (`votes.weights: probes`; every reviewer answers the probes first, decisions beyond the
200). Alpha: what `mersemi agreement` reports against the simulation's own (the alpha the
confusion matrices imply for the same cards and reviewers, and for the population).

Gold audit: 10 % of the gold labels planted wrong (never leaving a class under 2); round 0; the
first 50 cards of `queue --kind audit`; three votes each (`overlap --votes 3`) change a gold
label by their consensus; one retrain. Test WAF: clean round 0, planted round 0, after the audit.

    python bench/votes.py --data digits plaid --seeds 3 --jobs 2 --out bench/results/votes.md
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from itertools import combinations
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fewlabel import cli, last_round, queue, stats, train  # noqa: E402
from real_data import CLASSES, write_native  # noqa: E402

from mersemi.engine.agreement import alpha_of, collapse  # noqa: E402
from mersemi.service.project import Project  # noqa: E402

BUDGET = 200     # human decisions per arm (--budget)
ROUNDS = 3       # automatic rounds after the retrain (--rounds)
CONFIG = str(Path(__file__).resolve().parent.parent / "configs" / "default.yaml")   # --config
PANEL = ("ann", "bob", "cara", "dan")       # dan is the careless one
CONFUSABLE = ((3, 4), (2, 5))               # sad / worried, happy / surprise
PARTNER = 0.6                               # a careful reviewer's errors on those: this share the partner
TARGET_ALPHA = 0.45
VARIANTS = {"hold_out": {}, "soft": {"disagreement": "soft"}, "probes": {"weights": "probes"}}


# ---------------------------------------------------------------------- the simulated reviewers

def panel(q: float, C: int = 6, careful: float = 0.95, careless: float = 0.5) -> np.ndarray:
    """[reviewer, true class, answer] probabilities: careful reviewers right with `careful`, on a
    confusable class right with `q` and otherwise mostly (PARTNER) its partner; the careless one
    right half the time, wrong uniformly."""
    partner = {a: b for pair in CONFUSABLE for a, b in (pair, pair[::-1])}
    out = np.zeros((len(PANEL), C, C))
    for r in range(len(PANEL)):
        for t in range(C):
            if r == len(PANEL) - 1:
                out[r, t] = (1 - careless) / (C - 1)
                out[r, t, t] = careless
            elif t in partner:   # wrong: mostly the partner, else any other class
                out[r, t] = (1 - q) * (1 - PARTNER) / (C - 2)
                out[r, t, t], out[r, t, partner[t]] = q, (1 - q) * PARTNER
            else:
                out[r, t] = (1 - careful) / (C - 1)
                out[r, t, t] = careful
    return out


def expected_coincidence(confusion: np.ndarray, units: list[tuple[int, tuple[int, ...]]]) -> np.ndarray:
    """The coincidence matrix the confusion matrices imply for units of (true class, reviewers):
    each ordered pair of distinct reviewers adds P_i(c | t) P_j(k | t) / (m - 1)."""
    C = confusion.shape[1]
    o = np.zeros((C, C))
    for t, who in units:
        m = len(who)
        for i in who:
            for j in who:
                if i != j:
                    o += np.outer(confusion[i, t], confusion[j, t]) / (m - 1)
    return o


def population_alpha(confusion: np.ndarray, k: int, prior: np.ndarray) -> tuple[float, list[float]]:
    """Alpha overall and per class for cards of class prior `prior`, k reviewers drawn at random."""
    teams = list(combinations(range(len(PANEL)), k))
    o = sum(prior[t] * expected_coincidence(confusion, [(t, team)]) / len(teams)
            for t in range(len(prior)) for team in teams)
    per = [alpha_of(collapse(o, c)) for c in range(len(prior))]
    return float(alpha_of(o)), [np.nan if a is None else float(a) for a in per]


def tune(prior: np.ndarray) -> float:
    """q (a careful reviewer's accuracy on a confusable class) giving those classes about TARGET_ALPHA
    with three votes a card."""
    lo, hi = 0.2, 0.98   # alpha grows with q over this range
    for _ in range(30):
        q = (lo + hi) / 2
        per = population_alpha(panel(q), 3, prior)[1]
        mean = np.mean([per[c] for pair in CONFUSABLE for c in pair])
        lo, hi = (q, hi) if mean < TARGET_ALPHA else (lo, q)
    return (lo + hi) / 2


# ---------------------------------------------------------------------- reviewing through the CLI

def answer(rng: np.random.Generator, confusion: np.ndarray, reviewer: int, truth: int) -> int:
    return int(rng.choice(confusion.shape[2], p=confusion[reviewer, truth]))


def decide(project: Path, rows: list[tuple[str, str, str, str]]) -> None:
    """rows of (reviewer, name, decision, label), each reviewer's in one `mersemi decide`."""
    for who in PANEL:
        mine = [r[1:] for r in rows if r[0] == who]
        if mine:
            path = project.parent / f"{project.name}-{who}.csv"
            with open(path, "w", newline="") as f:
                csv.writer(f).writerows([("name", "decision", "label"), *mine])
            cli("decide", project, "--file", path, "--reviewer", who)


def as_decision(row: dict, label: int) -> tuple[str, str]:
    if row["kind"] == "verify" and CLASSES[label] == row["predicted"]:
        return "accept", ""
    return ("relabel" if row["kind"] == "verify" else "label"), CLASSES[label]


def review(project: Path, k: int, share: float, truth: dict[str, int], confusion: np.ndarray,
           rng: np.random.Generator) -> dict:
    """BUDGET human decisions on the default queue with K votes on `share` of the cards and ties
    adjudicated by a reviewer who did not vote; returns what was spent and the simulation's units."""
    if k > 1:
        cli("overlap", project, "--votes", k, "--share", share)
    with Project.open(project) as p:
        cards = {p.store.samples.names([s])[s] for s in p.store.votes.cards()}
    rows, ties, units, spent, n_cards = [], [], [], 0, 0
    for row in queue(project, None, 100_000):
        needed = k if row["name"] in cards else 1
        who = rng.choice(len(PANEL), needed, replace=False)
        votes = [answer(rng, confusion, int(r), truth[row["name"]]) for r in who]
        tie = needed > 1 and max(np.bincount(votes)) * 2 <= needed
        if spent + needed + tie > BUDGET:
            break
        spent, n_cards = spent + needed + tie, n_cards + 1
        rows += [(PANEL[int(r)], row["name"], *as_decision(row, v)) for r, v in zip(who, votes)]
        if needed > 1:
            units.append((truth[row["name"]], tuple(int(r) for r in who)))
        if tie:
            ties.append((row["name"], [int(r) for r in who]))
    decide(project, rows)
    waiting = {r["name"]: r for r in queue(project, "adjudicate", 100_000)}
    assert set(waiting) == {n for n, _ in ties}, "the tool's ties are the simulation's"
    adjudications = []
    for name, voters in ties:
        judge = int(rng.choice([r for r in range(len(PANEL)) if r not in voters]))
        adjudications.append((PANEL[judge], name, "label", CLASSES[answer(rng, confusion, judge, truth[name])]))
    decide(project, adjudications)
    return {"cards": n_cards, "spent": spent, "ties": len(ties), "units": units}


def agreement(project: Path) -> dict:
    return json.loads(cli("agreement", project, "--json"))


def retrain(project: Path, config: str) -> dict:
    """One retrain, then three automatic rounds: test WAF of both."""
    once = train(project, "--config", config)[-1]["test_waf"]
    train(project, "--config", config, "--auto-accept", "--rounds", ROUNDS)
    return {"retrain": once, "auto": last_round(project)["test_waf"]}


def answer_probes(project: Path, truth_gold: dict[str, int], confusion: np.ndarray, rng) -> int:
    """Every reviewer answers every gold probe (as a label); returns the decisions made."""
    with Project.open(project) as p:
        probes = sorted(p.store.samples.names(list(p.store.votes.cards("probe"))).values())
    rows = [(who, n, "label", CLASSES[answer(rng, confusion, r, truth_gold[n])])
            for r, who in enumerate(PANEL) for n in probes]
    decide(project, rows)
    return len(rows)


# ---------------------------------------------------------------------- one seed

def preset(work: Path, name: str, votes: dict) -> str:
    """The preset of a variant: --config with its `votes:` settings."""
    if not votes:
        return CONFIG
    path = work / f"votes-{name}.yaml"
    lines = [f"extends: {CONFIG}", "votes:"]
    lines += [f"  {k}: {v}" for k, v in votes.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def run_seed(data_kind: str, seed: int, work: Path, confusion: np.ndarray) -> dict:
    t0 = time.time()
    tag = f"{data_kind}-{seed}"
    data, base = work / f"data-{tag}", work / f"r0-{tag}"
    d = write_native(data, data_kind, seed=seed, labeled=0.05)
    truth = dict(zip(d["names"], d["y"].tolist()))
    cli("init", base, "--classes", ",".join(CLASSES))
    cli("import", base, "--native", data)
    res: dict = {"data": data_kind, "seed": seed, "round0": train(base, "--config", CONFIG)[-1]["test_waf"],
                 "labeled": int(np.sum(d["split"] == "labeled"))}
    rng = np.random.default_rng(seed)
    prior = np.bincount([truth[n] for n in truth], minlength=6) / len(truth)
    for arm, (k, share) in {"single": (1, 0.0), "overlap": (2, 0.25), "triple": (3, 1.0)}.items():
        proj = work / f"{arm}-{tag}"
        shutil.copytree(base, proj)
        spent = review(proj, k, share, truth, confusion, rng)
        out = {key: spent[key] for key in ("cards", "spent", "ties")}
        if k > 1:
            tool = agreement(proj)
            own = expected_coincidence(confusion, spent["units"])
            out |= {"alpha_tool": tool["alpha"], "alpha_interval": tool["alpha_interval"],
                    "alpha_sim": float(alpha_of(own)), "alpha_population": population_alpha(confusion, k, prior)[0],
                    "alpha_tool_class": {c: tool["per_class"][c]["alpha"] for c in CLASSES},
                    "alpha_sim_class": {c: alpha_of(collapse(own, i)) for i, c in enumerate(CLASSES)}}
        variants = {"hold_out": {}} if arm != "triple" else VARIANTS
        for name, votes in variants.items():
            copy = work / f"{arm}-{name}-{tag}"
            shutil.copytree(proj, copy)
            if name == "probes":
                cli("overlap", copy, "--votes", k, "--share", share, "--probes", 0.25)
                gold = {n: truth[n] for n, s in zip(d["names"], d["split"]) if s == "labeled"}
                out["probe_decisions"] = answer_probes(copy, gold, confusion, rng)
                out["probe_scores"] = {r["reviewer"]: [r["probe_right"], r["probe_votes"]]
                                       for r in agreement(copy)["reviewers"]}
            out[name] = retrain(copy, preset(work, name, votes))
        res[arm] = out
    res["audit"] = gold_audit(data_kind, seed, work, confusion, rng)
    res["seed_s"] = time.time() - t0
    return res


def gold_audit(data_kind: str, seed: int, work: Path, confusion: np.ndarray, rng) -> dict:
    tag = f"{data_kind}-{seed}"
    data, proj = work / f"planted-data-{tag}", work / f"planted-{tag}"
    d = write_native(data, data_kind, seed=seed, labeled=0.05)
    with open(data / "samples.csv") as f:
        rows = list(csv.DictReader(f))
    gold = [i for i, r in enumerate(rows) if r["split"] == "labeled"]
    counts = {c: sum(rows[i]["label"] == c for i in gold) for c in CLASSES}
    planted = []
    for i in rng.permutation(gold):
        if len(planted) >= round(0.1 * len(gold)):
            break
        if counts[rows[i]["label"]] > 2:     # every class keeps two right gold labels at least
            counts[rows[i]["label"]] -= 1
            rows[i]["label"] = CLASSES[(CLASSES.index(rows[i]["label"]) + int(rng.integers(1, 6))) % 6]
            planted.append(rows[i]["name"])
    with open(data / "samples.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    truth = dict(zip(d["names"], d["y"].tolist()))
    cli("init", proj, "--classes", ",".join(CLASSES))
    cli("import", proj, "--native", data)
    before = train(proj, "--config", CONFIG)[-1]["test_waf"]
    cli("overlap", proj, "--votes", 3, "--share", 0)
    cards = queue(proj, "audit", 50)
    found = [r["name"] for r in cards if r["name"] in planted]
    votes = []
    for r in cards:
        for who in rng.choice(len(PANEL), 3, replace=False):
            label = CLASSES[answer(rng, confusion, int(who), truth[r["name"]])]
            votes.append((PANEL[int(who)], r["name"], "label", label))
    decide(proj, votes)
    with Project.open(proj) as p:
        changes = p.store.votes.gold_changes()
        names = p.store.samples.names([c.sample_id for c in changes])
        changed = {names[c.sample_id]: c.new_label for c in changes}
    fixed = sum(1 for n in planted if n in changed and changed[n] == truth[n])
    broken = sum(1 for n, lab in changed.items() if n not in planted)
    after = train(proj, "--config", CONFIG)[-1]["test_waf"]
    return {"planted": len(planted), "gold": len(gold), "flagged": len(cards), "found": len(found),
            "votes": len(votes), "changed": len(changed), "fixed": fixed, "broken": broken,
            "round0_planted": before, "after_audit": after}


# ---------------------------------------------------------------------- report

def report(rows: list[dict], data: str, wall_s: float, jobs: int, q: float) -> str:
    def pct(v: float) -> str:
        return f"{100 * v:.1f}"

    def cell(vals: list[float]) -> str:
        m, se = stats(vals)
        return f"{pct(m)} ± {pct(se)} | {' '.join(pct(v) for v in vals)}"

    lines = [f"## {data}, 5 % labeled: {len(rows)} seeds, {BUDGET} human decisions per arm", "",
             f"{rows[0]['labeled']} gold samples per seed; panel: three careful reviewers (0.95 right, {q:.2f} on "
             f"sad/worried and happy/surprise, mostly confusing the pair) and one careless (0.50 right). Test WAF in "
             f"%, mean ± standard error, then every seed. {wall_s / 60:.0f} min with --jobs {jobs}.", "",
             f"| arm | cards | ties | retrain | after `--auto-accept --rounds {ROUNDS}` | per seed |",
             "|---|---|---|---|---|---|",
             f"| round 0 (gold only) | - | - | {pct(stats([r['round0'] for r in rows])[0])} | - | "
             f"{' '.join(pct(r['round0']) for r in rows)} |"]
    for arm, label in (("single", "single review"), ("overlap", "2 votes on 25 %, ties adjudicated"),
                       ("triple", "3 votes on every card, ties adjudicated")):
        for name in VARIANTS if arm == "triple" else ("hold_out",):
            setting = "disagreement: soft" if name == "soft" else "weights: probes"
            extra = "" if name == "hold_out" else f", `votes.{setting}`"
            rr = [r[arm][name] for r in rows]
            cards, ties = np.mean([r[arm]["cards"] for r in rows]), np.mean([r[arm]["ties"] for r in rows])
            lines.append(f"| {label}{extra} | {cards:.0f} | {ties:.1f} | {pct(stats([x['retrain'] for x in rr])[0])} | "
                         f"{cell([x['auto'] for x in rr])} |")
    lines += ["", "| alpha | reported by `mersemi agreement` | the simulation's own (same cards) | difference | "
              "population |", "|---|---|---|---|---|"]
    for arm in ("overlap", "triple"):
        tool = [r[arm]["alpha_tool"] for r in rows]
        sim = [r[arm]["alpha_sim"] for r in rows]
        diff = " ".join(f"{a - b:+.3f}" for a, b in zip(tool, sim))
        lines.append(f"| {arm} | {' '.join(f'{a:.3f}' for a in tool)} | {' '.join(f'{a:.3f}' for a in sim)} | "
                     f"{diff} | {rows[0][arm]['alpha_population']:.3f} |")
    a = [r["audit"] for r in rows]

    def each(*keys: str) -> str:
        return " ".join("/".join(str(x[k]) for k in keys) for x in a)

    waf_line = " ".join(f"{pct(r['round0'])}/{pct(x['round0_planted'])}/{pct(x['after_audit'])}"
                        for r, x in zip(rows, a))
    lines += ["", "| gold audit | per seed |", "|---|---|",
              f"| planted wrong / gold | {each('planted', 'gold')} |",
              f"| flagged (audit queue, first 50) | {each('flagged')} |",
              f"| planted among them | {each('found')} |",
              f"| gold labels changed by 3 votes: planted fixed / right ones broken | {each('fixed', 'broken')} |",
              f"| audit votes | {each('votes')} |",
              f"| test WAF: clean round 0 / planted round 0 / after the audit | {waf_line} |", ""]
    return "\n".join(lines)


def _plain(value):
    """NumPy scalars as JSON numbers."""
    return value.item()


def main() -> None:
    global BUDGET, ROUNDS, CONFIG
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", default=["digits", "plaid"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--jsonl", type=Path)
    ap.add_argument("--from-log", type=Path)
    ap.add_argument("--budget", type=int, default=BUDGET, help="human decisions per arm (default 200)")
    ap.add_argument("--rounds", type=int, default=ROUNDS, help="automatic rounds after the retrain (default 3)")
    ap.add_argument("--config", type=Path, default=Path(CONFIG), help="the preset every round trains with")
    args = ap.parse_args()
    BUDGET, ROUNDS, CONFIG = args.budget, args.rounds, str(args.config.resolve())
    prior = np.array([1248, 1208, 1038, 730, 616, 190], float)
    q = tune(prior / prior.sum())
    confusion = panel(q)
    t0 = time.time()
    rows: list[dict] = []
    if args.from_log:
        rows = [json.loads(line) for line in args.from_log.read_text().splitlines() if line.startswith("{")]
    else:
        with tempfile.TemporaryDirectory(prefix="votes-") as tmp, ThreadPoolExecutor(args.jobs) as pool:
            runs = [pool.submit(run_seed, data, seed, Path(tmp), confusion)
                    for data in args.data for seed in range(args.first_seed, args.first_seed + args.seeds)]
            for done in as_completed(runs):
                rows.append(done.result())
                print(json.dumps(rows[-1], default=_plain), file=sys.stderr, flush=True)
    if args.jsonl:
        args.jsonl.write_text("".join(json.dumps(r, default=_plain) + "\n" for r in rows))
    per_class = population_alpha(confusion, 3, prior / prior.sum())[1]
    text = ("# Votes with simulated reviewers\n\n"
            "Population alpha per class with three votes a card (the panel's confusion matrices): "
            + ", ".join(f"{c} {a:.2f}" for c, a in zip(CLASSES, per_class)) + "\n\n")
    for data in args.data:
        mine = sorted((r for r in rows if r["data"] == data), key=lambda r: r["seed"])
        if mine:
            wall = sum(r["seed_s"] for r in mine) / args.jobs if args.from_log else time.time() - t0
            text += report(mine, data, wall, args.jobs, q) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
