"""Which self-training method holds on the suite: the loop at engine level (arrays, no command
line), one split per data set x labeled share x seed, round 0 trained once per split and shared by
every method, each method a configuration override of configs/default.yaml driven through the
estimator that `train --auto-accept` drives (engine/loop.SelfTrainer: choose, train, judge).

Rounds are memoised per split on what they train on (the labels, their sources, the fold votes
they inherit, the config bar its self_training section): two methods that choose the same
pseudo-labels share the trained round, so a method that only judges differently (the reverse
guard) costs no training where its verdicts match. Each split's units are appended to --jsonl as
they finish; a unit already there is skipped (a run cut short keeps what it finished).

    python bench/suite_methods.py --sets jvowels digits --shares 0.02 0.05 --seeds 0 1 \\
        --methods default quota reverse quota_reverse --jsonl bench/results/suite_methods_seeds.jsonl \\
        --out bench/results/suite_methods.md
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import resource
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_data import CLASSES, DATASETS, arrays  # noqa: E402
from suite_report import TARGET_WORST, meets_target  # noqa: E402
from trial_gates import GatedTrainer  # noqa: E402
from trial_weights import SoftMatchTrainer, weighted_folds  # noqa: E402

from mersemi.engine.config import Config, load_config  # noqa: E402
from mersemi.engine.loop import Choice, Labels, LoopData, LoopRound, SelfTrainer  # noqa: E402
from mersemi.engine.results import AutoAccept  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"
# Each names what it measures in full, so that a change of configs/default.yaml changes `default` only.
METHODS: dict[str, dict] = {
    "default": {},
    "cap": {"self_training.balance": "cap", "self_training.gate": "none"},
    "quota": {"self_training.balance": "quota", "self_training.gate": "none"},
    "reverse": {"self_training.balance": "cap", "self_training.gate": "none", "self_training.guard": "reverse"},
    "quota_reverse": {"self_training.balance": "quota", "self_training.gate": "none", "self_training.guard": "reverse"},
    "no_starve": {"self_training.balance": "no_starve", "self_training.gate": "none"},
    "folds": {"self_training.balance": "cap", "self_training.gate": "folds"},
    "quota_folds": {"self_training.balance": "quota", "self_training.gate": "folds"},
    "quota_dr": {"self_training.balance": "quota", "self_training.gate": "none",
                 "self_training.pseudo_loss": "doubly_robust"},
    "quota_cold": {"self_training.balance": "quota", "self_training.gate": "none", "finetune.warm_epochs": 0},
    # quota with a gate tried in bench/trial_gates.py, not (yet) a self_training.gate value
    "quota_spread": {"self_training.balance": "quota", "self_training.gate": "none"},
    "quota_density": {"self_training.balance": "quota", "self_training.gate": "none"},
    # every open pool sample, weighted by SoftMatch's truncated Gaussian (bench/trial_weights.py)
    "softmatch": {"self_training.gate": "none"},
    # the control: one more round as the loop trains it, with no pseudo-label at all. What it
    # moves test WAF by is the training's own noise, which no choice of pseudo-labels removes.
    "null": {},
}
TRIAL_GATES = {"quota_spread": "spreading", "quota_density": "density"}


def trainer_for(name: str, cfg: Config, classes: list[str], rounds: int, train, data: LoopData):
    """The loop method `name` drives, and what must be in place while it runs."""
    if name == "softmatch":   # the memo does not see its weights; its rows, the whole open pool, are no other's
        t = SoftMatchTrainer(cfg, classes, max_iter=rounds, train=train)
        return t, weighted_folds(t.weights_)
    if name in TRIAL_GATES:
        return (GatedTrainer(cfg, classes, max_iter=rounds, train=train, gate=TRIAL_GATES[name], data=data),
                contextlib.nullcontext())
    return SelfTrainer(cfg, classes, max_iter=rounds, train=train), contextlib.nullcontext()


def memoised(train):
    """`train` (engine/train.train_round) remembered on what a round trains on."""
    seen: dict[str, object] = {}

    def run(ts, n_classes: int, cfg: Config, progress=None):
        # the self_training section chooses the pseudo-labels (hashed below); its loss trains only
        # a round with pseudo-labels, against the round before's out-of-fold classes
        pseudo = ts.extra_from_model is not None and bool(ts.extra_from_model.any())
        loss = cfg.self_training.pseudo_loss if pseudo else "plain"
        h = hashlib.sha1(json.dumps([cfg.model_dump(exclude={"self_training"}), loss], sort_keys=True,
                                    default=str).encode())
        if loss != "plain" and ts.prior is not None and ts.prior.oof_classes is not None:
            h.update(np.ascontiguousarray(ts.prior.oof_classes).tobytes())
        for a in (ts.extra_rows, ts.extra_labels, ts.extra_from_model):
            h.update(np.ascontiguousarray(a).tobytes())
        votes = ts.prior.fold_votes if ts.prior is not None else None
        h.update(b"-" if votes is None else np.ascontiguousarray(votes).tobytes())
        h.update(b"warm" if ts.prior is not None and ts.prior.fold_states is not None else b"cold")
        k = h.hexdigest()
        if k not in seen:
            seen[k] = train(ts, n_classes, cfg, progress)
        return seen[k]

    return run


def split_data(data_name: str, share: float, seed: int) -> tuple[LoopData, np.ndarray, list[str]]:
    """One split of a suite data set as the estimator's arrays, with every sample's truth and the
    classes."""
    d = arrays(data_name, seed, share)
    y, split = d["y"], d["split"]
    lab, pool, test = (np.flatnonzero(split == s) for s in ("labeled", "unlabeled", "test"))
    data = LoopData(features=d["features"], gold_rows=lab, gold_labels=y[lab], pool_rows=pool, test_rows=test,
                    test_labels=y[test], pool_truth=y[pool])
    return data, y, d["classes"]


def native_split(folder: Path) -> tuple[LoopData, np.ndarray, list[str]]:
    """A native import folder with every sample's truth (`mersemi synth`: samples.csv with
    split, label and true_label, one .npy matrix per modality, rows in samples.csv's order) as
    the estimator's arrays, the matrices memory-mapped as the product's store keeps them."""
    with (folder / "samples.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    truth = [r["true_label"] or r["label"] for r in rows]
    classes = CLASSES if set(truth) <= set(CLASSES) else sorted(set(truth))
    y = np.array([classes.index(t) for t in truth], np.int64)
    split = np.array([r["split"] for r in rows])
    lab, pool, test = (np.flatnonzero(split == s) for s in ("labeled", "unlabeled", "test"))
    features = {p.stem: np.load(p, mmap_mode="r") for p in sorted(folder.glob("*.npy"))}
    data = LoopData(features=features, gold_rows=lab, gold_labels=y[lab], pool_rows=pool, test_rows=test,
                    test_labels=y[test], pool_truth=y[pool])
    return data, y, classes


def one_split(data_name: str, share: float, seed: int, methods: list[str], rounds: int) -> list[dict]:
    warnings.filterwarnings("ignore")
    from mersemi.engine.train import train_round

    t0, r0 = time.time(), resource.getrusage(resource.RUSAGE_SELF)
    native = Path(data_name)
    data, y, classes = native_split(native) if native.is_dir() else split_data(data_name, share, seed)
    lab = data.gold_rows
    base = load_config(CONFIG)
    train = memoised(train_round)
    first = SelfTrainer(base, classes, max_iter=rounds, train=train).fit(data)
    zero = first.history_[-1]
    out = []
    for name in methods:
        cfg = base.replace(**METHODS[name]) if METHODS[name] else base
        t, in_place = trainer_for(name, cfg, classes, rounds, train, data)
        t.resume(first.in_force_, first.labels_, first.reuse_)
        t.thresholds_ = first.thresholds_
        history = []
        with in_place:
            if name == "null":
                nothing = Choice(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0),
                                 AutoAccept(thresholds={}, classes={}, accepted=0))
                r = t.step(data, nothing, train_if_nothing_new=True)
                history.append(_round(r, t, y))
            while name != "null" and (r := t.step(data)) is not None:
                history.append(_round(r, t, y))
                if not r.kept:
                    break
        kept = [h for h in history if h["kept"]]
        pseudo = t.labels_.from_model
        right = int(np.sum(t.labels_.labels[pseudo] == y[t.labels_.rows[pseudo]]))
        per_class = np.bincount(t.labels_.labels[pseudo], minlength=len(classes)).tolist()
        out.append({"data": data_name, "labeled_share": share, "seed": seed, "method": name,
                    "overrides": METHODS[name] | ({"trial_gate": TRIAL_GATES[name]} if name in TRIAL_GATES else {}),
                    "n_gold": int(len(lab)),
                    "round0": _waf(zero), "auto": kept[-1]["test_waf"] if kept else _waf(zero),
                    "pseudo": int(pseudo.sum()), "pseudo_right": right, "pseudo_per_class": per_class,
                    "stopped": str(t.termination_condition_), "rounds": history}
                   | ({"mean_weight": round(float(np.mean(list(t.weights_.values()))), 4)}
                      if isinstance(t, SoftMatchTrainer) and t.weights_ else {}))
    ru = resource.getrusage(resource.RUSAGE_SELF)
    for o in out:
        o["split_wall_s"] = round(time.time() - t0, 1)
        o["split_cpu_s"] = round(ru.ru_utime - r0.ru_utime + ru.ru_stime - r0.ru_stime, 1)
    return out


QUEUE_ORDERS = ("default", "margin", "typical")


def queue_split(data_name: str, share: float, seed: int, orders: list[str], budget: int,
                then_auto: int = 0) -> list[dict]:
    """Item 3: round 0, then per queue order a simulated reviewer gives the truth to the first
    `budget` samples of the queue (engine/selection.review_queue, kind both) and a round trains
    on them: the decisions' own effect. With `then_auto` > 0, up to that many automatic rounds
    follow (`train --auto-accept` after the decisions) and the peers of bench/fewlabel.py (LR
    with the budget's random pool labels, the oracle: LR with every pool label) run on the same
    split."""
    warnings.filterwarnings("ignore")
    from fewlabel import peers
    from mersemi.engine.selection import review_queue
    from mersemi.engine.train import train_round
    from mersemi.engine.vocab import Source

    t0, r0 = time.time(), resource.getrusage(resource.RUSAGE_SELF)
    data, y, classes = split_data(data_name, share, seed)
    lab, pool = data.gold_rows, data.pool_rows
    base = load_config(CONFIG)
    train = memoised(train_round)
    first = SelfTrainer(base, classes, train=train).fit(data)
    zero = first.history_[-1]
    probs = zero.result.scores.pool
    x = np.concatenate([np.asarray(v[pool], np.float64) for v in data.features.values()], axis=1)
    x = (x - x.mean(0)) / (x.std(0) + 1e-9)
    out = []
    for order in orders:
        q = review_queue(probs, np.ones(len(pool), bool), first.thresholds_, "both", order=order, features=x)
        at = q.order[:budget]
        rows, truth = pool[at], y[pool[at]]
        sources = np.where(probs[at].argmax(1) == truth, Source.VERIFIED, Source.LABELED).astype(object)
        t = SelfTrainer(base, classes, max_iter=then_auto, train=train).resume(first.in_force_, first.labels_,
                                                                               first.reuse_)
        t.fit(data, Labels(rows, truth, sources))
        decided = _waf(t.history_[-1])
        while then_auto and (r := t.step(data)) is not None and r.kept:
            pass
        more = {} if not then_auto else {
            "decided_auto": _waf(next(h for h in reversed(t.history_) if h.kept)),
            "pseudo": int(t.labels_.from_model.sum()),
            "pseudo_right": int(np.sum((t.labels_.labels == y[t.labels_.rows])[t.labels_.from_model]))}
        out.append(more | {"data": data_name, "labeled_share": share, "seed": seed, "queue": order, "budget": budget,
                    "n_gold": int(len(lab)), "round0": _waf(zero), "decided": decided,
                    "label_cards": int(q.is_label[:budget].sum()),
                    "model_wrong": int(np.sum(probs[at].argmax(1) != truth)),
                    "classes_decided": np.bincount(truth, minlength=len(classes)).tolist()})
    if then_auto:
        p = {k: round(100 * v, 2) for k, v in peers(arrays(data_name, seed, share), seed, [budget]).items()}
        out = [o | {"peers": p} for o in out]
    ru = resource.getrusage(resource.RUSAGE_SELF)
    for o in out:
        o["split_wall_s"] = round(time.time() - t0, 1)
        o["split_cpu_s"] = round(ru.ru_utime - r0.ru_utime + ru.ru_stime - r0.ru_stime, 1)
    return out


def _waf(r: LoopRound) -> float:
    m = r.result.metrics.test
    assert m is not None and m.waf is not None
    return round(100 * m.waf, 2)


def _round(r: LoopRound, t: SelfTrainer, y: np.ndarray) -> dict:
    rv = r.record.reverse_validation
    new = 0 if r.choice is None else len(r.choice.rows)
    right = None if r.choice is None else int(np.sum(r.choice.labels == y[r.choice.rows]))
    per_class = None if r.choice is None else [p.accepted for p in r.choice.why.classes.values()]
    held = None if r.choice is None else sum(p.disagreed for p in r.choice.why.classes.values())
    return {"round": r.round_id, "kept": r.kept, "test_waf": _waf(r), "new": new, "new_right": right,
            "new_per_class": per_class, "held_back": held, "wall_s": r.record.wall_s,
            "phases_s": r.result.metrics.work.timings,
            "oof_log_loss": r.record.metrics.calibration.log_loss,
            "reverse": None if rv is None else rv.to_json(), "discard_reason": r.record.discard_reason}


def table(units: list[dict], methods: list[str]) -> str:
    lines = ["| data set | labeled | seeds | round 0 | " + " | ".join(
        f"{m}: auto − r0 mean (worst), pseudo (right)" for m in methods) + " |",
        "|---|---|---|---|" + "---|" * len(methods)]
    cells = sorted({(u["data"], u["labeled_share"]) for u in units})
    overall: dict[str, list[float]] = {m: [] for m in methods}
    for data, share in cells:
        us = [u for u in units if u["data"] == data and u["labeled_share"] == share]
        seeds = sorted({u["seed"] for u in us})
        r0 = np.mean([next(u["round0"] for u in us if u["seed"] == s) for s in seeds])
        row = [data, f"{share:.0%} ({us[0]['n_gold']})" if share else f"its own ({us[0]['n_gold']})",
               str(len(seeds)), f"{r0:.1f}"]
        for m in methods:
            mu = [u for u in us if u["method"] == m]
            if not mu:
                row.append("–")
                continue
            gains = [u["auto"] - u["round0"] for u in mu]
            overall[m] += gains
            n = sum(u["pseudo"] for u in mu)
            right = sum(u["pseudo_right"] for u in mu)
            row.append(f"{np.mean(gains):+.1f} ({min(gains):+.1f}), {n / len(mu):.0f} "
                       f"({100 * right / max(n, 1):.0f} %)")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("| **mean of the cells' seeds** | | | | " + " | ".join(
        f"**{np.mean(overall[m]):+.2f}** (worst {min(overall[m]):+.1f}, {sum(g < -3 for g in overall[m])} "
        f"below −3)" if overall[m] else "–" for m in methods) + " |")
    return "\n".join(lines)


def summary(units: list[dict], methods: list[str], baseline: str = "quota") -> str:
    """Per method over the splits every method has: the mean gain, the worst split, splits
    below the target, cells (data set x share) meeting it, and split by split against
    `baseline` (better / worse by more than 0.05 points, or the same)."""
    by = {m: {(u["data"], u["labeled_share"], u["seed"]): u["auto"] - u["round0"] for u in units
              if u["method"] == m} for m in methods}
    common = sorted(set.intersection(*(set(v) for v in by.values()))) if by else []
    if not common:
        return ""
    lines = [f"| method | splits | mean gain | worst split | splits below {TARGET_WORST:+.0f} | cells meeting "
             f"the target | against {baseline}: better / worse / same |", "|---|---|---|---|---|---|---|"]
    cells = sorted({k[:2] for k in common})
    for m in methods:
        g = np.array([by[m][k] for k in common])
        ok = sum(meets_target([by[m][k] for k in common if k[:2] == cell]) for cell in cells)
        vs = "–"
        if baseline in by and m != baseline:
            d = g - np.array([by[baseline][k] for k in common])
            vs = f"{int((d > 0.05).sum())} / {int((d < -0.05).sum())} / {int((abs(d) <= 0.05).sum())}"
        lines.append(f"| {m} | {len(common)} | {g.mean():+.2f} | {g.min():+.1f} | {int((g < TARGET_WORST).sum())} | "
                     f"{ok} of {len(cells)} | {vs} |")
    return "\n".join(lines)


def queue_table(units: list[dict], orders: list[str]) -> str:
    lines = ["| data set | labeled | seeds | round 0 | " + " | ".join(
        f"{o}: {units[0]['budget'] if units else ''} decisions − r0 (worst), model wrong" for o in orders) + " |",
        "|---|---|---|---|" + "---|" * len(orders)]
    overall: dict[str, list[float]] = {o: [] for o in orders}
    for data, share in sorted({(u["data"], u["labeled_share"]) for u in units}):
        us = [u for u in units if u["data"] == data and u["labeled_share"] == share]
        seeds = sorted({u["seed"] for u in us})
        r0 = np.mean([next(u["round0"] for u in us if u["seed"] == s) for s in seeds])
        row = [data, f"{share:.0%} ({us[0]['n_gold']})", str(len(seeds)), f"{r0:.1f}"]
        for o in orders:
            ou = [u for u in us if u["queue"] == o]
            gains = [u["decided"] - u["round0"] for u in ou]
            overall[o] += gains
            row.append(f"{np.mean(gains):+.1f} ({min(gains):+.1f}), {np.mean([u['model_wrong'] for u in ou]):.0f}"
                       if ou else "–")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("| **mean** | | | | " + " | ".join(
        f"**{np.mean(overall[o]):+.2f}**" if overall[o] else "–" for o in orders) + " |")
    return "\n".join(lines)


def decisions_table(units: list[dict], order: str) -> str:
    """--then-auto: per data set and share, the budget's decisions from queue `order`, then the
    automatic rounds, against the peers of the same splits."""
    us_all = [u for u in units if u["queue"] == order and "decided_auto" in u]
    if not us_all:
        return ""
    b = us_all[0]["budget"]
    random_lr, oracle = f"LR + {b} random pool labels", "oracle: LR, every pool label"
    lines = [f"| data set | labeled | seeds | round 0 | {b} decisions | {b} decisions + auto (worst vs oracle) | "
             f"LR + {b} random | oracle |", "|---|---|---|---|---|---|---|---|"]
    gaps = []
    for data, share in sorted({(u["data"], u["labeled_share"]) for u in us_all}):
        us = [u for u in us_all if u["data"] == data and u["labeled_share"] == share]
        gap = [u["decided_auto"] - u["peers"][oracle] for u in us]
        gaps += gap
        lines.append(f"| {data} | {share:.0%} ({us[0]['n_gold']}) | {len(us)} | "
                     f"{np.mean([u['round0'] for u in us]):.1f} | {np.mean([u['decided'] for u in us]):.1f} | "
                     f"{np.mean([u['decided_auto'] for u in us]):.1f} ({min(gap):+.1f}) | "
                     f"{np.mean([u['peers'][random_lr] for u in us]):.1f} | "
                     f"{np.mean([u['peers'][oracle] for u in us]):.1f} |")
    m = lambda k: np.mean([u[k] for u in us_all])  # noqa: E731
    lines.append(f"| **mean** | | {len(us_all)} splits | {m('round0'):.1f} | {m('decided'):.1f} | "
                 f"**{m('decided_auto'):.1f}** ({np.mean(gaps):+.2f} vs oracle) | "
                 f"{np.mean([u['peers'][random_lr] for u in us_all]):.1f} | "
                 f"{np.mean([u['peers'][oracle] for u in us_all]):.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=["jvowels", "digits", "breast_cancer", "watch", "plaid", "splice"],
                    choices=DATASETS)
    ap.add_argument("--shares", nargs="+", type=float, default=[0.02, 0.05])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--methods", nargs="+", default=["default", "quota", "reverse", "quota_reverse"],
                    choices=list(METHODS))
    ap.add_argument("--native", type=Path, metavar="DIR",
                    help="instead of --sets/--shares/--seeds: this native import folder with the truth (mersemi synth)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--queue", type=int, metavar="B",
                    help="item 3 instead: the first B decisions of each queue order (--orders) against round 0")
    ap.add_argument("--orders", nargs="+", default=list(QUEUE_ORDERS), choices=QUEUE_ORDERS)
    ap.add_argument("--then-auto", type=int, default=0, metavar="R",
                    help="with --queue: up to R automatic rounds after the decisions, and the peers on the same split")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--jsonl", type=Path, required=True)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.native:
        args.sets, args.shares, args.seeds = [str(args.native.resolve())], [0.0], [0]
    done = [json.loads(line) for line in args.jsonl.read_text().splitlines()] if args.jsonl.is_file() else []
    arm, names = ("queue", args.orders) if args.queue else ("method", args.methods)
    have = {(u["data"], u["labeled_share"], u["seed"], u[arm]) for u in done if arm in u}
    # seed first: a run cut short has the same seeds on every data set
    todo = [(d, s, k) for k in args.seeds for d in args.sets for s in args.shares
            if any((d, s, k, m) not in have for m in names)]
    t0 = time.time()
    with ProcessPoolExecutor(max(1, args.jobs)) as ex:
        jobs = {(ex.submit(queue_split, d, s, k, [m for m in names if (d, s, k, m) not in have], args.queue,
                           args.then_auto)
                 if args.queue else
                 ex.submit(one_split, d, s, k, [m for m in names if (d, s, k, m) not in have], args.rounds)):
                (d, s, k) for d, s, k in todo}
        for j in as_completed(jobs):
            units = j.result()
            with args.jsonl.open("a") as f:
                for u in units:
                    f.write(json.dumps(u) + "\n")
            done += units
            u = units[0]
            print(f"{jobs[j]}: {u['split_wall_s']} s wall, {u['split_cpu_s']} s CPU; " + ", ".join(
                f"{x[arm]} {x['decided' if args.queue else 'auto'] - x['round0']:+.1f}" for x in units),
                file=sys.stderr, flush=True)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"run: {len(todo)} splits, {time.time() - t0:.0f} s wall, {ru.ru_utime + ru.ru_stime:.0f} s CPU "
          f"(user+sys)", file=sys.stderr)
    units = [u for u in done if u["data"] in args.sets and u["labeled_share"] in args.shares
             and u["seed"] in args.seeds and u.get(arm) in names]
    text = queue_table(units, names) if args.queue else table(units, names) + "\n\n" + summary(units, names)
    if args.then_auto:
        text += "\n\n" + "\n\n".join(decisions_table(units, o) for o in names)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
