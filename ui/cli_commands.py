"""The commands of `mersemi` that work on a project (init, import, train, queue, thresholds,
decide, export, status, migrate) and synth: each calls the service layer and prints; and the
helpers the serve and demo commands (ui/cli_serve.py) share with them."""
from __future__ import annotations

import csv
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from ..engine.config import ConfigError, load_config, presets
from ..engine.errors import UsageError, shown
from ..engine.results import AutoAccept
from ..engine.safe_files import check_folder_target
from ..engine.vocab import DEFAULT_QUEUE, RoundStatus, Source

from ..service.project import PASSWORD_ENV, Project, ProjectError, parse_decisions_csv
from ..service.project_migrate import migrate_project
from ..service.round_summary import RoundSummary
from ..service.values import number, person


def cmd_init(args) -> None:
    with Project.init(args.dir, args.classes.split(","), db_url=args.db) as project:
        for note in project.repairs:
            print(f"mersemi: note: {note}", file=sys.stderr)
        print(f"created {args.dir} with classes {', '.join(project.classes)}")
        if args.db is not None:
            print(f"store on {project.store_url()}; "
                  f"later commands take its password from {PASSWORD_ENV} or ~/.pgpass")


def cmd_migrate(args) -> None:
    migrate_project(args.dir, say=print)


def cmd_import(args) -> None:
    with open_project(args.dir) as project, console_progress("import") as progress:
        if args.native:
            if args.labels or args.features or args.modality:
                raise ProjectError("--labels/--features/--modality belong to --mertools, not --native")
            status = project.import_native(args.native, dtype=args.dtype, progress=progress)
        else:
            if not args.labels or not args.features:
                raise ProjectError("--mertools needs --labels FILE and --features ROOT")
            status = project.import_mertools(args.labels, args.features, _modality_map(args.modality),
                                             transcripts=args.transcripts, media=args.media,
                                             dtype=args.dtype, progress=progress)
    s = status["samples"]
    print(f"imported {s['total']} samples ({s['labeled']} labeled, {s['unlabeled']} unlabeled, "
          f"{s['test']} test); modalities "
          + ", ".join(f"{m} ({d})" for m, d in status["modalities"].items()))


def cmd_train(args) -> int:
    rounds = int(number(args.rounds, "--rounds", low=1, integer=True, text=True))
    nproc = int(number(args.nproc, "--nproc", low=1, integer=True, text=True))
    cfg_path = config_path(args.config)
    cfg = load_config(cfg_path)
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch(args, nproc, cfg.device)
    from ..engine.distributed import broadcast, close, from_env
    from ..service.rounds import follow_rounds, run_round

    # SIGTERM (the app's server stopping, torchrun stopping a group whose rank died) becomes
    # SystemExit, so that the round is marked failed on the way out, saying why.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(STOPPED))
    dist = from_env(cfg.device)
    try:
        if dist is not None and not dist.leader:
            follow_rounds(args.dir, dist)
            return 0
        with open_project(args.dir) as project:
            for k in range(rounds):
                desc = f"round {k + 1}/{rounds}" if rounds > 1 else "train"
                with console_progress(desc, phase_lines=True) as progress:
                    # After the first round, a round whose automatic step finds nothing new would
                    # only repeat the last one.
                    summary = run_round(project, cfg, config_name=cfg_path.stem, auto_accept=args.auto_accept,
                                        progress=progress, skip_if_nothing_new=k > 0 and args.auto_accept,
                                        dist=dist)
                if summary is None:
                    gate = ", the fold models' agreement," if cfg.self_training.gate == "folds" else ""
                    print(f"stopped after {k} of {rounds} rounds: no new candidate passes the thresholds{gate} "
                          "and the class balance")
                    break
                _print_round(summary, args.json)
                if summary.discard_reason is not None:
                    if not args.json:
                        print(f"stopped after {k + 1} of {rounds} rounds: round {summary.id} "
                              f"{summary.discard_reason}")
                    break
        if dist is not None:
            broadcast(None, dist)   # the other ranks stop waiting for rounds
        return 0
    finally:
        close(dist)


STOPPED = "interrupted: the training process was stopped (SIGTERM)"


def _launch(args, nproc: int, device: str) -> int:
    """`train --nproc N`: the same command in N processes under torchrun on this machine. A
    SIGTERM here is passed on to torchrun, which stops its processes (rank 0 marks the round
    failed)."""
    import subprocess

    import torch

    gpus = torch.cuda.device_count() if device != "cpu" else 0
    most = gpus or len(os.sched_getaffinity(0))
    if nproc > most:
        raise UsageError(f"--nproc: this machine can run at most {most} training processes "
                         f"({'GPUs' if gpus else 'CPU cores'} it has), got {nproc}")
    argv = ["train", str(args.dir), "--config", str(args.config), "--rounds", str(args.rounds)]
    argv += ["--auto-accept"] * args.auto_accept + ["--json"] * args.json
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "mersemi.ui.cli", *argv]
    group = subprocess.Popen(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"))
    signal.signal(signal.SIGTERM, lambda *_: group.terminate())
    return group.wait()


def _print_round(summary: RoundSummary, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary.to_json()), flush=True)
        return
    if summary.discard_reason is not None:
        print(f"round {summary.id} done in {summary.wall_s} s, {summary.discard_reason}", flush=True)
        return
    auto = None if summary.record is None else summary.record.auto_accept
    print(f"round {summary.id} done in {summary.wall_s} s: CV WAF {_pct(summary.cv_waf)}"
          + (f", test WAF {_pct(summary.test_waf)}" if summary.test_waf is not None else "")
          + (f", test ECE {summary.test_ece:.3f}" if summary.test_ece is not None else "")
          + f"; trained on {summary.train_size} samples"
          + (f" ({auto.accepted} accepted automatically)" if auto else ""), flush=True)
    for note in summary.notes:
        print(f"  note: {note}")
    for line in auto_accept_notes(auto):
        print("  " + line)
    print("  " + threshold_changes_text(summary))


def auto_accept_notes(auto: AutoAccept | None) -> list[str]:
    """What a round's automatic step left out, in lines: classes without a candidate, and the
    candidates the gate held back."""
    if auto is None:
        return []
    lines = []
    if short := [c for c, v in auto.classes.items() if v.candidates == 0]:
        lines.append(f"no candidate at the threshold (the target precision may be out of reach): {', '.join(short)}")
    if disagreed := sum(v.disagreed or 0 for v in auto.classes.values()):
        whose = "the" if auto.from_round is None else f"round {auto.from_round}'s"
        lines.append(f"{disagreed} candidates held back: {whose} fold models disagree on them")
    return lines


def threshold_changes_text(summary: RoundSummary) -> str:
    """What the policy did to each class's threshold after a round, in one line."""
    parts = []
    for c in summary.threshold_changes:
        if c.kept_for_owner:
            parts.append(f"{c.cls} {c.old:.3f} kept (set by {c.by})")
        elif c.changed:
            parts.append(f"{c.cls} {c.old:.3f} -> {c.new:.3f}")
        else:
            parts.append(f"{c.cls} {c.new:.3f}")
    line = "thresholds: " + ", ".join(parts)
    if summary.unreachable:
        line += f"; no candidate reaches the target precision: {', '.join(summary.unreachable)}"
    return line


def cmd_queue(args) -> None:
    from ..service.review import queue_page

    limit = int(number(args.limit, "--limit", low=1, integer=True, text=True))
    with open_project(args.dir) as project:
        cards, total = queue_page(project, args.kind, args.cls, limit=limit)
        classes = project.classes
    rows: list[dict[str, Any]] = [{"name": c.name, "kind": c.kind, "predicted": classes[c.predicted],
                                   "confidence": round(c.confidence, 4), "reason": c.reason,
                                   "probs": {k: round(float(p), 4) for k, p in zip(classes, c.probs)}}
                                  | ({"votes": list(c.votes)} if c.votes else {})
                                  | ({"gold": classes[c.gold]} if c.gold is not None else {}) for c in cards]
    if args.json:
        print(json.dumps(rows))
    elif args.csv:
        from ..service.spreadsheet import safe_cell   # a name "=cmd|..." is text in a spreadsheet

        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow([safe_cell(c) for c in ["name", "kind", "predicted", "confidence", "reason"] + classes])
        for r in rows:
            w.writerow([safe_cell(r["name"]), r["kind"], safe_cell(r["predicted"]), f"{r['confidence']:.4f}",
                        r["reason"]] + [f"{v:.4f}" for v in r["probs"].values()])
    else:
        print(f"{len(rows)} of {total} in the {args.kind or DEFAULT_QUEUE} queue")
        for r in rows:
            print(f"{r['name']:>24}  {r['kind']:<6}  {r['predicted']:>10} {r['confidence']:.2f}  {r['reason']}")


def cmd_thresholds(args) -> None:
    from ..service.review import class_table

    with open_project(args.dir) as project:
        if args.history:
            if args.set or args.release:
                raise ProjectError("--history shows the changes; set or release thresholds in another call")
            _print_history(project.threshold_history(), args.json)
            return
        if args.set or args.release:
            by = person(args.by, "--by")
            if args.set:
                project.set_thresholds(_class_values(args.set), by=by)
            if args.release:
                project.release_thresholds([c for part in args.release for c in part.split(",") if c.strip()], by=by)
        owners = project.threshold_owners()
        done = project.current_round_id() is not None
        rows = class_table(project) if done else [{"class": c} for c in project.classes]
    rows = [owners[r["class"]] | r for r in rows]
    keys = ("threshold", "set_by", "set_at", "policy_may_set", "candidates", "expected_precision",
            "oof_precision", "oof_support")
    if args.json:
        print(json.dumps({r["class"]: {k: r[k] for k in keys if k in r} for r in rows}))
        return
    if not done:
        print("no finished round yet: candidates and precision appear after `mersemi train`")
    print(f"{'class':>12}  threshold  {'set by':<18}  candidates  expected precision  out-of-fold precision (n)")
    for r in rows:
        owner = r["set_by"] + ("" if r["policy_may_set"] else " (kept)")
        line = f"{r['class']:>12}  {r['threshold']:9.3f}  {owner:<18.18}"
        if done:
            exp = "-" if r["expected_precision"] is None else f"{r['expected_precision']:.3f}"
            oof = "-" if r["oof_precision"] is None else f"{r['oof_precision']:.3f}"
            line += f"  {r['candidates']:10d}  {exp:>18}  {oof:>10} ({r['oof_support']})"
        print(line)
    if any(not r["policy_may_set"] for r in rows):
        print("(kept): a person's threshold, which the policy after a round leaves alone; "
              "`--release CLASS` lets the policy set it")


def _print_history(changes: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(changes))
        return
    for c in changes:
        made = f"policy after round {c['round']}" if c["round"] is not None else c["set_by"]
        note = f" ({c['note']})" if c["note"] else ""
        print(f"{c['set_at']}  {c['class']:>12}  {c['threshold']:.3f}  {made}{note}")


def _class_values(sets: list[str]) -> dict[str, float | str]:
    values: dict[str, float | str] = {}
    for part in ",".join(sets).split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ProjectError(f"--set: expected CLASS=VALUE, got {shown(part)}")
        k, v = part.split("=", 1)
        try:
            values[k.strip()] = float(v)
        except ValueError:
            values[k.strip()] = v.strip()  # refused, named, by the threshold check
    return values


def cmd_decide(args) -> None:
    requests = parse_decisions_csv(args.file)
    with open_project(args.dir) as project:
        out = project.decide(requests, reviewer=args.reviewer, source=str(args.file))
    print(f"recorded {out['recorded']} decisions on round {out['round']} predictions"
          + (f" ({len(out['replaced'])} replaced earlier decisions)" if out["replaced"] else ""))
    if out["relabel_as_accept"]:
        print(f"  {len(out['relabel_as_accept'])} relabels named the predicted class and were recorded as accepts")


def cmd_export(args) -> None:
    from ..service.exports import export

    with open_project(args.dir) as project:
        out = export(project, args.what, args.out, args.format)
    print(f"wrote {out['rows']} rows to {out['path']}")


def cmd_status(args) -> None:
    from ..service.agreement import agreement

    with Project.open(args.dir, repair=False) as project:   # reporting writes nothing
        status = project.status() | {"agreement": agreement(project).as_dict()}
        for note in project.repairs:
            print(f"mersemi: note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(status))
        return
    s = status["samples"]
    print(f"project {status['project']}")
    print(f"samples: {s['labeled']} labeled, {s['unlabeled']} unlabeled, {s['test']} test")
    print("labeled per class: " + ", ".join(f"{c} {n}" for c, n in status["labeled_per_class"].items()))
    print("thresholds: " + ", ".join(f"{c} {v:.2f}" for c, v in status["thresholds"].items()))
    for source, counts in status["labels"].items():
        if source != Source.GOLD and any(counts.values()):
            print(f"{source}: " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    agreed = status["agreement"]
    if agreed["alpha"] is not None:
        print(f"agreement: Krippendorff's alpha {agreed['alpha']:.3f} on {agreed['items']} cards (mersemi agreement)")
    for r in status["rounds"]:
        line = f"round {r['id']}: {r['status']}"
        if r["status"] == RoundStatus.DONE:
            line += f", CV WAF {_pct(r['cv_waf'])}"
            if r["test_waf"] is not None:
                line += f", test WAF {_pct(r['test_waf'])}"
            line += f", {r['train_size']} training samples, {r['wall_s']} s"
        elif r["error"]:
            line += f" ({r['error']})"
        print(line)


def cmd_check(args) -> None:
    from ..service.check import check_project

    findings = check_project(args.dir)
    for f in findings:
        print(f"{'DAMAGED' if f.damaged else 'ok':<8} {f.part}: {f.detail}")
    damaged = [f for f in findings if f.damaged]
    if damaged:
        raise ProjectError(f"{args.dir}: {len(damaged)} damaged part(s), first {damaged[0].part}: {damaged[0].detail}")


def cmd_synth(args) -> None:
    from ..engine.synthetic import MAX_SCALE, MIN_SCALE, make_synthetic

    scale: str | float = args.scale
    if scale not in ("default", "mer2024"):
        scale = number(scale, "--scale (default, mer2024 or a factor)", low=MIN_SCALE, high=MAX_SCALE, text=True)
    with console_progress("synth") as progress:
        summary = make_synthetic(check_folder_target(args.out, "synth"), scale=scale,
                                 seed=int(number(args.seed, "--seed", low=0, high=2**32 - 1, integer=True, text=True)),
                                 progress=progress)
    print(json.dumps(summary))


# ---------------------------------------------------------------------- helpers

def open_project(root: Path) -> Project:
    """Project.open, telling the user what it repaired (an import killed half-way, say)."""
    project = Project.open(root)
    for note in project.repairs:
        print(f"mersemi: note: {note}", file=sys.stderr)
    return project


def config_path(name: str) -> Path:
    """A --config value as a file: a YAML path, or the name of a preset in configs/."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    shipped = presets()
    if name not in shipped:
        raise ConfigError(f"--config: no file {shown(name)} and no preset of that name ({', '.join(shipped)})")
    return shipped[name]


def _modality_map(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ProjectError(f"--modality: expected NAME=FOLDER, got {shown(pair)}")
        k, v = (x.strip() for x in pair.split("=", 1))
        if not k or not v:
            raise ProjectError(f"--modality: expected NAME=FOLDER, got {shown(pair)}")
        if k in out:
            raise ProjectError(f"--modality: {shown(k)} given twice")
        out[k] = v
    return out


def console_progress(desc: str, phase_lines: bool = False):
    """A bar on a terminal; with `phase_lines`, one stderr line per phase elsewhere (a log)."""
    from ..engine.progress import TqdmProgress

    return TqdmProgress(desc, phase_lines=phase_lines)


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"
