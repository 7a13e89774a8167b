"""`mersemi`: the command line. Parses arguments, calls the orchestration layer, prints.

Exit code 0 on success; 1 with one line on stderr for bad input, a refused request or a
malformed command line.
"""
from __future__ import annotations

import argparse
import csv
import getpass
import ipaddress
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from ..engine.config import ConfigError, load_config, presets  # noqa: E402
from ..engine.errors import MersemiError, UsageError, one_line, shown  # noqa: E402
from ..engine.safe_files import MiB, check_folder_target, read_text  # noqa: E402

from ..service.project import (  # noqa: E402
    DEFAULT_CLASSES, PASSWORD_ENV, Project, ProjectError, migrate_project, parse_decisions_csv,
)
from ..service.clips import remove_leftovers, temp_prefix  # noqa: E402
from ..service.review import DEFAULT_QUEUE  # noqa: E402
from ..service.values import number, person  # noqa: E402
from ..engine.vocab import QueueKind  # noqa: E402


DESCRIPTION = "Review pseudo-labels for semi-supervised multimodal emotion recognition (MR-CCL)."
EPILOG = """\
a project's life:
  mersemi init DIR                      create a project (DIR: its folder)
  mersemi import DIR --native FOLDER    add features and labels
  mersemi train DIR                     train a round: predictions for the pool
  mersemi queue DIR                     the samples worth a human look
  mersemi decide DIR --file D.csv       record decisions (or review in the app: mersemi serve DIR)
  mersemi train DIR --auto-accept --rounds 3
  mersemi export DIR --what labels --out labels.csv

`mersemi COMMAND --help` describes a command. Errors are one line on stderr, exit 1."""
DIR_HELP = "the project folder (made by `mersemi init`)"


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        code = args.func(args) or 0
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's teardown
        return code
    except BrokenPipeError:
        # `mersemi status --json | head`: the reader left; nothing to say. Point stdout at
        # devnull so that the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except MersemiError as e:
        print(f"mersemi: error: {one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mersemi: interrupted", file=sys.stderr)
        return 130


class _Parser(argparse.ArgumentParser):
    """A bad command line is a one-line error like any other (argparse would print the usage
    and exit 2 from inside parse_args)."""

    def error(self, message: str):
        command = self.prog.removeprefix("mersemi").strip()
        raise UsageError(f"{command + ': ' if command else ''}{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mersemi", description=DESCRIPTION, epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("init", help="create a project directory")
    c.add_argument("dir", type=Path, help=DIR_HELP)
    c.add_argument("--classes", default=",".join(DEFAULT_CLASSES),
                   help="comma-separated class list (default: MER2024's six)")
    c.add_argument("--db", metavar="URL",
                   help="keep the store on a PostgreSQL server, e.g. "
                        "postgresql+psycopg://USER@HOST:5432/DATABASE (an empty database); DIR "
                        f"records the URL without its password: later commands read it from "
                        f"{PASSWORD_ENV} or ~/.pgpass")
    c.set_defaults(func=cmd_init)

    c = sub.add_parser("import", help="import features and labels (all-or-nothing)")
    c.add_argument("dir", type=Path, help=DIR_HELP)
    fmt = c.add_mutually_exclusive_group(required=True)
    fmt.add_argument("--native", type=Path, metavar="FOLDER", help="folder with samples.csv and <modality>.npy")
    fmt.add_argument("--mertools", action="store_true", help="MERTools layout (needs --labels, --features, --modality)")
    c.add_argument("--labels", type=Path, help="label-6way.npz or a CSV with name,discrete")
    c.add_argument("--features", type=Path, metavar="ROOT", help="folder holding one folder per feature")
    c.add_argument("--modality", action="append", default=[], metavar="NAME=FOLDER",
                   help="map a modality to a feature folder under ROOT; repeat per modality")
    c.add_argument("--transcripts", type=Path, metavar="CSV",
                   help="MERTools transcripts: a CSV with name and the text the card shows")
    c.add_argument("--media", type=Path, metavar="FOLDER",
                   help="folder of clips named after the samples, played on the review card")
    c.add_argument("--dtype", default="float16", choices=["float16", "float32"],
                   help="storage type of the feature matrices (default float16)")
    c.set_defaults(func=cmd_import)

    c = sub.add_parser("train", help="train one round headless")
    c.add_argument("dir", type=Path, help=DIR_HELP)
    c.add_argument("--config", default="default",
                   help="YAML file, or the name of a preset in configs/ (default, mer2024, ...)")
    c.add_argument("--auto-accept", action="store_true",
                   help="accept the current round's undecided candidates (at their class thresholds, "
                        "within the class-balance cap) as pseudo-labels, then train")
    c.add_argument("--rounds", default="1", metavar="N",
                   help="train up to N rounds in a row (with --auto-accept: stops early when no "
                        "new candidate passes); default 1")
    c.add_argument("--json", action="store_true", help="print each round's summary as a JSON line")
    c.add_argument("--nproc", default="1", metavar="N",
                   help="train across N processes on this machine (torchrun: gloo on CPUs, one process per GPU "
                        "with NCCL); for several machines start `torchrun ... -m mersemi.ui.cli train DIR` "
                        "on each (see the README); default 1")
    c.set_defaults(func=cmd_train)

    c = sub.add_parser("queue", help="the next samples of the review queue, as the app shows them")
    c.add_argument("dir", type=Path, help=DIR_HELP)
    c.add_argument("--kind", choices=list(QueueKind), default=None,
                   help=f"label: below threshold, least sure first; verify: candidates, riskiest "
                        f"first; both: label then verify (default: {DEFAULT_QUEUE}, the app's default)")
    c.add_argument("--limit", default="20", metavar="N", help="how many (default %(default)s)")
    c.add_argument("--class", dest="cls", metavar="C", help="only samples predicted as class C")
    out = c.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="a JSON list")
    out.add_argument("--csv", action="store_true",
                     help="CSV: name, kind, predicted, confidence, reason, then one column per class")
    c.set_defaults(func=cmd_queue)

    c = sub.add_parser("thresholds", help="show or set per-class thresholds",
                       description="Per class: the threshold, the undecided candidates at it, their "
                                   "expected precision (mean calibrated confidence) and the "
                                   "out-of-fold precision with its support (n).")
    c.add_argument("dir", type=Path, help=DIR_HELP)
    c.add_argument("--set", action="append", default=[], metavar="CLASS=VALUE[,CLASS=VALUE]",
                   help="set thresholds in [0, 1], e.g. --set happy=0.9,sad=0.8 (repeatable); "
                        "unnamed classes keep theirs")
    c.add_argument("--by", default=_login(), metavar="NAME",
                   help="who sets or releases them: the thresholds are theirs, and the policy after a round "
                        "leaves them alone until released (default: your login, %(default)s)")
    c.add_argument("--release", action="append", default=[], metavar="CLASS[,CLASS]|all",
                   help="let the policy set these classes after the coming rounds (repeatable)")
    c.add_argument("--history", action="store_true",
                   help="the history of threshold changes (who, when, which round's policy), newest first")
    c.add_argument("--json", action="store_true",
                   help="JSON keyed by class: threshold, set_by, set_at, policy_may_set, candidates, "
                        "expected_precision, oof_precision, oof_support (the last four once a round is done)")
    c.set_defaults(func=cmd_thresholds)

    c = sub.add_parser("decide", help="record decisions from a CSV (name, decision, label)",
                       description="CSV columns: name, decision (accept | reject | relabel | label), "
                                   "label (the class, for relabel and label), note (optional). "
                                   "accept / reject answer the prediction; relabel and label give "
                                   "the class. Every row is checked first: nothing is written "
                                   "when one is bad.")
    c.add_argument("dir", type=Path, help=DIR_HELP)
    c.add_argument("--file", type=Path, required=True, metavar="CSV", help="the decisions (columns above)")
    c.add_argument("--reviewer", default=_login(), metavar="NAME",
                   help="who decided, for the log (default: your login, %(default)s)")
    c.set_defaults(func=cmd_decide)

    c = sub.add_parser("export", help="export labels, predictions or the decision log")
    c.add_argument("dir", type=Path, help=DIR_HELP)
    c.add_argument("--what", required=True, choices=["labels", "predictions", "decisions"],
                   help="labels: gold plus accepted, relabeled and labeled samples; predictions: "
                        "the current round's, every sample; decisions: the full log")
    c.add_argument("--out", type=Path, required=True, metavar="FILE",
                   help="where to write: outside the project or under its exports/ folder")
    c.add_argument("--format", default="csv", choices=["csv", "mertools"],
                   help="csv (default), or mertools: a label .npz as MERTools reads it")
    c.set_defaults(func=cmd_export)

    c = sub.add_parser("status", help="sample counts, rounds and metrics")
    c.add_argument("dir", type=Path, help=DIR_HELP)
    c.add_argument("--json", action="store_true", help="everything, with per-round metrics, as JSON")
    c.set_defaults(func=cmd_status)

    c = sub.add_parser("migrate", help="upgrade an older project's schema (backs up project.db first)")
    c.add_argument("dir", type=Path, help=DIR_HELP)
    c.set_defaults(func=cmd_migrate)

    c = sub.add_parser("synth", help="write a synthetic MER-like data set in the native format")
    c.add_argument("out", type=Path, help="folder to write (samples.csv and one .npy per modality)")
    c.add_argument("--scale", default="default", help="default, mer2024, or a factor such as 0.5")
    c.add_argument("--seed", default="0", help="random seed, 0 to 4294967295 (default 0)")
    c.set_defaults(func=cmd_synth)

    c = sub.add_parser("serve", help="open the review app on a project (browser and gradio_client)")
    c.add_argument("dir", type=Path, help=DIR_HELP)
    c.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1: this machine only)")
    c.add_argument("--port", default="7860", help="TCP port, 1-65535 (default %(default)s)")
    c.add_argument("--auth", metavar="USER:PASSWORD", action="append",
                   help="require a login; give it once per user. With logins, every decision, undo "
                        "and threshold is recorded under the login, never a typed name")
    c.add_argument("--users", metavar="FILE", type=Path,
                   help="logins from a file, one USER:PASSWORD per line (blank lines and lines "
                        "starting with # are skipped); with --auth or alone")
    c.add_argument("--insecure-no-auth", action="store_true",
                   help="allow a --host other than this machine without logins (a trusted network only)")
    c.set_defaults(func=cmd_serve)

    c = sub.add_parser("demo", help="build a synthetic project once, train round 0, open the app")
    c.add_argument("--port", default="7860", help="TCP port, 1-65535 (default %(default)s)")
    c.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "mersemi" / "demo",
                   help="where the demo data and project are kept and reused (default %(default)s)")
    c.set_defaults(func=cmd_demo)
    return p


# ---------------------------------------------------------------------- commands

def cmd_init(args) -> None:
    with Project.init(args.dir, args.classes.split(","), db_url=args.db) as project:
        print(f"created {args.dir} with classes {', '.join(project.classes)}")
        if args.db is not None:
            print(f"store on {project.store_url()}; "
                  f"later commands take its password from {PASSWORD_ENV} or ~/.pgpass")


def cmd_migrate(args) -> None:
    migrate_project(args.dir, say=print)


def cmd_import(args) -> None:
    with _open(args.dir) as project, _progress("import") as progress:
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
    cfg_path = _config_path(args.config)
    cfg = load_config(cfg_path)
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch(args, nproc, cfg.device)
    from ..engine.distributed import broadcast, close, from_env
    from ..service.rounds import follow_rounds, run_round

    # SIGTERM (torchrun stopping a group whose rank died, say) becomes SystemExit, so that the
    # round is marked failed on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    dist = from_env(cfg.device)
    try:
        if dist is not None and not dist.leader:
            follow_rounds(args.dir, dist)
            return 0
        with _open(args.dir) as project:
            for k in range(rounds):
                with _progress(f"round {k + 1}/{rounds}" if rounds > 1 else "train", phase_lines=True) as progress:
                    # After the first round, a round whose automatic step finds nothing new would
                    # only repeat the last one.
                    summary = run_round(project, cfg, config_name=cfg_path.stem, auto_accept=args.auto_accept,
                                        progress=progress, skip_if_nothing_new=k > 0 and args.auto_accept,
                                        dist=dist)
                if summary is None:
                    print(f"stopped after {k} of {rounds} rounds: no new candidate passes the thresholds")
                    break
                _print_round(summary, args.json)
                if summary["status"] == "discarded":
                    if not args.json:
                        print(f"stopped after {k + 1} of {rounds} rounds: round {summary['id']} "
                              f"{summary['kept_reason']}")
                    break
        if dist is not None:
            broadcast(None, dist)   # the other ranks stop waiting for rounds
        return 0
    finally:
        close(dist)


def _launch(args, nproc: int, device: str) -> int:
    """`train --nproc N`: the same command in N processes under torchrun on this machine."""
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
    return subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1")).returncode


def _print_round(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary), flush=True)
        return
    if summary["status"] == "discarded":
        print(f"round {summary['id']} done in {summary['wall_s']} s, {summary['kept_reason']}", flush=True)
        return
    auto = summary.get("auto_accept_selection")
    print(f"round {summary['id']} done in {summary['wall_s']} s: CV WAF {_pct(summary['cv_waf'])}"
          + (f", test WAF {_pct(summary['test_waf'])}" if summary["test_waf"] is not None else "")
          + (f", test ECE {summary['test_ece']:.3f}" if summary.get("test_ece") is not None else "")
          + f"; trained on {summary['train_size']} samples"
          + (f" ({auto['accepted']} accepted automatically)" if auto else ""), flush=True)
    for note in summary.get("notes", []):
        print(f"  note: {note}")
    if auto:
        short = [c for c, v in auto["classes"].items() if v["candidates"] == 0]
        if short:
            print(f"  no candidate at the threshold (the target precision may be out of reach): "
                  f"{', '.join(short)}")
    print("  " + threshold_changes_text(summary))


def threshold_changes_text(summary: dict) -> str:
    """What the policy did to each class's threshold after a round, in one line."""
    parts = []
    for c in summary.get("threshold_changes", []):
        if c["kept_for_owner"]:
            parts.append(f"{c['class']} {c['old']:.3f} kept (set by {c['by']})")
        elif c["changed"]:
            parts.append(f"{c['class']} {c['old']:.3f} -> {c['new']:.3f}")
        else:
            parts.append(f"{c['class']} {c['new']:.3f}")
    line = "thresholds: " + ", ".join(parts)
    if summary.get("unreachable"):
        line += f"; no candidate reaches the target precision: {', '.join(summary['unreachable'])}"
    return line


def cmd_queue(args) -> None:
    from ..service.review import queue_page

    limit = int(number(args.limit, "--limit", low=1, integer=True, text=True))
    with _open(args.dir) as project:
        cards, total = queue_page(project, args.kind, args.cls, limit=limit)
        classes = project.classes
    rows = [{"name": c.name, "kind": c.kind, "predicted": classes[c.predicted],
             "confidence": round(c.confidence, 4), "reason": c.reason,
             "probs": {k: round(float(p), 4) for k, p in zip(classes, c.probs)}} for c in cards]
    if args.json:
        print(json.dumps(rows))
    elif args.csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["name", "kind", "predicted", "confidence", "reason"] + classes)
        for r in rows:
            w.writerow([r["name"], r["kind"], r["predicted"], f"{r['confidence']:.4f}", r["reason"]]
                       + [f"{v:.4f}" for v in r["probs"].values()])
    else:
        print(f"{len(rows)} of {total} in the {args.kind or DEFAULT_QUEUE} queue")
        for r in rows:
            print(f"{r['name']:>24}  {r['kind']:<6}  {r['predicted']:>10} {r['confidence']:.2f}  {r['reason']}")


def cmd_thresholds(args) -> None:
    from ..service.review import class_table

    with _open(args.dir) as project:
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
    values = {}
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
    with _open(args.dir) as project:
        out = project.decide(requests, reviewer=args.reviewer, source=str(args.file))
    print(f"recorded {out['recorded']} decisions on round {out['round']} predictions"
          + (f" ({len(out['replaced'])} replaced earlier decisions)" if out["replaced"] else ""))
    if out["relabel_as_accept"]:
        print(f"  {len(out['relabel_as_accept'])} relabels named the predicted class and were recorded as accepts")


def cmd_export(args) -> None:
    from ..service.exports import export

    with _open(args.dir) as project:
        out = export(project, args.what, args.out, args.format)
    print(f"wrote {out['rows']} rows to {out['path']}")


def cmd_status(args) -> None:
    with _open(args.dir) as project:
        status = project.status()
    if args.json:
        print(json.dumps(status))
        return
    s = status["samples"]
    print(f"project {status['project']}")
    print(f"samples: {s['labeled']} labeled, {s['unlabeled']} unlabeled, {s['test']} test")
    print("labeled per class: " + ", ".join(f"{c} {n}" for c, n in status["labeled_per_class"].items()))
    print("thresholds: " + ", ".join(f"{c} {v:.2f}" for c, v in status["thresholds"].items()))
    for source, counts in status["labels"].items():
        if source != "gold" and any(counts.values()):
            print(f"{source}: " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    for r in status["rounds"]:
        line = f"round {r['id']}: {r['status']}"
        if r["status"] == "done":
            line += f", CV WAF {_pct(r['cv_waf'])}"
            if r["test_waf"] is not None:
                line += f", test WAF {_pct(r['test_waf'])}"
            line += f", {r['train_size']} training samples, {r['wall_s']} s"
        elif r["error"]:
            line += f" ({r['error']})"
        print(line)


def cmd_synth(args) -> None:
    from ..engine.synthetic import MAX_SCALE, MIN_SCALE, make_synthetic

    scale: str | float = args.scale
    if scale not in ("default", "mer2024"):
        scale = number(scale, "--scale (default, mer2024 or a factor)", low=MIN_SCALE, high=MAX_SCALE, text=True)
    with _progress("synth") as progress:
        summary = make_synthetic(check_folder_target(args.out, "synth"), scale=scale,
                                 seed=int(number(args.seed, "--seed", low=0, high=2**32 - 1, integer=True, text=True)),
                                 progress=progress)
    print(json.dumps(summary))


def cmd_serve(args) -> None:
    auth = _parse_logins(args.auth or [], args.users)
    port = _port(args.port)
    if auth is None and not _is_loopback(args.host):
        if not args.insecure_no_auth:
            raise ProjectError(f"--host {shown(args.host)}: other machines could review and train without "
                               "logging in; give --auth or --users, or --insecure-no-auth on a trusted network")
        print(f"mersemi: warning: listening on {args.host} without logins (--insecure-no-auth): anyone "
              "who can reach this port can review and train", file=sys.stderr)
    _serve(args.dir, args.host, port, auth)


def cmd_demo(args) -> None:
    port = _port(args.port)
    root = build_demo_project(check_folder_target(args.cache, "--cache"))
    print(f"demo project: {root}")
    _serve(root, "127.0.0.1", port, None)


def build_demo_project(cache: Path, scale: str | float = "default", config: str | Path = "default") -> Path:
    """Synthetic data, a project importing it and a finished round 0 under `cache`; each step
    is skipped when an earlier run already did it, so the demo starts at once the second time."""
    from ..engine.synthetic import make_synthetic

    from ..service.rounds import run_round

    data, root = cache / "data", cache / "project"
    if not (data / "samples.csv").is_file():
        staging = cache / "data.partial"  # renamed when complete: a killed run leaves no half set
        shutil.rmtree(staging, ignore_errors=True)
        _say(f"writing synthetic data to {data} (first run only)")
        with _progress("synthetic data") as progress:
            make_synthetic(staging, scale=scale, seed=0, progress=progress)
        staging.rename(data)
    if not (root / "project.db").is_file():
        Project.init(root).close()
    with Project.open(root) as project:
        if not project.status()["samples"]["total"]:
            _say(f"importing it into the demo project {root}")
            with _progress("import") as progress:
                project.import_native(data, progress=progress)
        if project.current_round_id() is None:
            cfg_path = _config_path(str(config))
            _say(f"training round 0 with the {cfg_path.stem} preset (first run only; minutes on a CPU)")
            with _progress("train round 0") as progress:
                run_round(project, load_config(cfg_path), config_name=cfg_path.stem, progress=progress)
    return root


def _say(line: str) -> None:
    print(f"mersemi demo: {line}", file=sys.stderr, flush=True)


def _serve(root: Path, host: str, port: int, auth: list[tuple[str, str]] | None) -> None:
    from .app import serve

    _open(root).close()  # a clear one-line error for a folder that is not a project
    _check_listen(host, port)
    remove_leftovers()  # temporary folders of servers killed before they could clean up
    # Gradio's files in a folder of this server's own, not the machine-wide one every Gradio
    # app shares (another app's downloads were reachable through it).
    gradio_tmp = Path(tempfile.mkdtemp(prefix=temp_prefix("gradio")))
    os.environ["GRADIO_TEMP_DIR"] = str(gradio_tmp)
    # SIGTERM stops the server like Ctrl-C, so that a round training in it is marked failed.
    signal.signal(signal.SIGTERM, lambda *_: _raise_interrupt())
    try:
        demo = serve(root, host=host, port=port, auth=auth)
    except OSError as e:
        raise ProjectError(f"cannot listen on {host}:{port}: {e}") from None
    finally:
        shutil.rmtree(gradio_tmp, ignore_errors=True)
    if demo.actions.runner.is_running():
        # Its round is marked failed already; the training thread, inside torch, would abort
        # the interpreter's teardown, so leave without one.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _addresses(host: str, port: int) -> list[tuple]:
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        raise ProjectError(f"--host {shown(host)}: not a name or address this machine can resolve "
                           f"({getattr(e, 'strerror', None) or e})") from None


def _is_loopback(host: str) -> bool:
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in _addresses(host, 0))


def _check_listen(host: str, port: int) -> None:
    """One line, before Gradio's own search ("Cannot find empty port"), when the address is
    not this machine's or the port is taken."""
    family, kind, proto, _, addr = _addresses(host, port)[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            raise ProjectError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


def _port(value: str) -> int:
    return int(number(value, "--port", low=1, high=65535, integer=True, text=True))


def _raise_interrupt() -> None:
    raise KeyboardInterrupt


def _parse_logins(values: list[str], users_file: Path | None) -> list[tuple[str, str]] | None:
    """The logins of --auth (repeated) and --users FILE; every bad entry is named in one
    message, and nothing is served. None when there are none."""
    entries = [(f"--auth {i + 1}", v) for i, v in enumerate(values)]
    if users_file is not None:
        lines = read_text(users_file, "--users", limit=MiB).splitlines()
        entries += [(f"--users line {n}", line.strip()) for n, line in enumerate(lines, 1)
                    if line.strip() and not line.strip().startswith("#")]
        if not any(w.startswith("--users") for w, _ in entries):
            raise ProjectError(f"--users: no USER:PASSWORD line in {shown(str(users_file))}")
    logins: dict[str, str] = {}
    errors = []
    for where, value in entries:
        user, sep, password = value.partition(":")
        user = user.strip()
        if not sep or not user or not password:
            errors.append(f"{where}: expected USER:PASSWORD")  # never echo: it may hold a password
            continue
        try:
            person(user, f"{where}: user name")
        except UsageError as e:
            errors.append(str(e))
            continue
        if user in logins:
            errors.append(f"{where}: user {shown(user)} given twice")
        else:
            logins[user] = password
    if errors:
        more = f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
        raise ProjectError("; ".join(errors[:20]) + more)
    return list(logins.items()) or None


# ---------------------------------------------------------------------- helpers

def _open(root: Path) -> Project:
    """Project.open, telling the user what it repaired (an import killed half-way, say)."""
    project = Project.open(root)
    for note in project.repairs:
        print(f"mersemi: note: {note}", file=sys.stderr)
    return project


def _config_path(name: str) -> Path:
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


def _progress(desc: str, phase_lines: bool = False):
    """A bar on a terminal; with `phase_lines`, one stderr line per phase elsewhere (a log)."""
    from ..engine.progress import TqdmProgress

    return TqdmProgress(desc, phase_lines=phase_lines)


def _login() -> str:
    """The OS login name: the default reviewer of decisions made from the command line."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER in a container
        return "cli"


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


if __name__ == "__main__":
    sys.exit(main())
