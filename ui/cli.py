"""`mersemi`: the command line. Parses arguments, calls the orchestration layer, prints.

Exit code 0 on success; 1 with one line on stderr for bad input, a refused request or a
malformed command line. The commands are ui/cli_commands.py; serve and demo ui/cli_serve.py.
Each is imported when its command runs (`later`): parsing a command line, `--help` included,
loads none of torch, Gradio, scikit-learn, SciPy or pandas (tests/test_cli_startup.py).
"""
from __future__ import annotations

import argparse
import getpass
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from ..engine.disk import full_message, is_full  # noqa: E402
from ..engine.errors import ERROR_LINE, MersemiError, UsageError, one_line  # noqa: E402
from ..engine.vocab import DEFAULT_QUEUE, MER2024_CLASSES, QueueKind  # noqa: E402

from ..service.store_location import PASSWORD_ENV  # noqa: E402


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
        print(f"{ERROR_LINE}{one_line(e)}", file=sys.stderr)
        return 1
    except OSError as e:
        if not is_full(e):
            raise
        print(f"mersemi: error: {one_line(full_message(e))}", file=sys.stderr)
        return 1
    except Exception as e:
        line = _database_error(e)
        if line is None:
            raise
        print(f"mersemi: error: {line}", file=sys.stderr)   # never the SQL and its parameters
        return 1
    except KeyboardInterrupt:
        print("mersemi: interrupted", file=sys.stderr)
        return 130


def _database_error(e: Exception) -> str | None:
    """A database error no layer below turned into a user's message, as one line without the
    statement and its parameters (sample names, notes, reviewers); None for anything else."""
    exc = sys.modules.get("sqlalchemy.exc")   # loaded only when a command opened a database
    if exc is None or not isinstance(e, exc.DBAPIError):
        return None
    orig = e.orig or e
    text = str(orig).strip()
    return one_line(f"database error ({type(orig).__name__}: {text.splitlines()[0][:300] if text else ''})")


def later(module: str, name: str) -> Callable[[argparse.Namespace], int | None]:
    """The command `name` of ui/`module`.py, imported when it runs, not when the line is parsed."""
    def run(args: argparse.Namespace) -> int | None:
        return getattr(importlib.import_module(f"{__package__}.{module}"), name)(args)
    return run


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
    c.add_argument("--classes", default=",".join(MER2024_CLASSES),
                   help="comma-separated class list (default: MER2024's six)")
    c.add_argument("--db", metavar="URL",
                   help="keep the store on a PostgreSQL server, e.g. "
                        "postgresql+psycopg://USER@HOST:5432/DATABASE (an empty database); DIR "
                        f"records the URL without its password: later commands read it from "
                        f"{PASSWORD_ENV} or ~/.pgpass")
    c.set_defaults(func=later("cli_commands", "cmd_init"))

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
    c.set_defaults(func=later("cli_commands", "cmd_import"))

    c = sub.add_parser("train", help="train one round headless")
    c.add_argument("dir", type=Path, help=DIR_HELP)
    c.add_argument("--config", default="default",
                   help="YAML file, or the name of a preset in configs/ (default, mer2024, ...)")
    c.add_argument("--auto-accept", action="store_true",
                   help="accept the current round's undecided candidates (at their class thresholds, "
                        "class-balanced by self_training.balance) as pseudo-labels, then train")
    c.add_argument("--rounds", default="1", metavar="N",
                   help="train up to N rounds in a row (with --auto-accept: stops early when no "
                        "new candidate passes); default 1")
    c.add_argument("--json", action="store_true", help="print each round's summary as a JSON line")
    c.add_argument("--nproc", default="1", metavar="N",
                   help="train across N processes on this machine (torchrun: gloo on CPUs, one process per GPU "
                        "with NCCL); for several machines start `torchrun ... -m mersemi.ui.cli train DIR` "
                        "on each (see the README); default 1")
    c.set_defaults(func=later("cli_commands", "cmd_train"))

    c = sub.add_parser("queue", help="the next samples of the review queue, as the app shows them")
    c.add_argument("dir", type=Path, help=DIR_HELP)
    c.add_argument("--kind", choices=list(QueueKind), default=None,
                   help=f"label: below threshold, least sure first; verify: candidates, riskiest "
                        f"first; both: label then verify (default: {DEFAULT_QUEUE}, the app's default); "
                        f"adjudicate: ties of votes, with every vote; audit: gold labels flagged as likely wrong")
    c.add_argument("--limit", default="20", metavar="N", help="how many (default %(default)s)")
    c.add_argument("--class", dest="cls", metavar="C", help="only samples predicted as class C")
    out = c.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="a JSON list")
    out.add_argument("--csv", action="store_true",
                     help="CSV: name, kind, predicted, confidence, reason, then one column per class")
    c.set_defaults(func=later("cli_commands", "cmd_queue"))

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
    c.set_defaults(func=later("cli_commands", "cmd_thresholds"))

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
    c.set_defaults(func=later("cli_commands", "cmd_decide"))

    c = sub.add_parser("overlap", help="K votes per card on a share of the pool cards (and gold probes)",
                       description="From now on a share S of the current round's open pool cards (drawn at "
                                   "random, stratified by predicted class and card kind) goes to K different "
                                   "reviewers; the majority of the K votes is the label (source consensus), a tie "
                                   "waits for a reviewer who did not vote (queue --kind adjudicate). K also is "
                                   "the votes a gold label under audit needs. Without options: the setting.")
    c.add_argument("dir", type=Path, help=DIR_HELP)
    c.add_argument("--votes", metavar="K", help="votes per card in the share, 1 or more (1: one reviewer's word)")
    c.add_argument("--share", metavar="S", help="share of the pool cards that take K votes, 0-1")
    c.add_argument("--probes", default="0", metavar="P",
                   help="share of the gold samples shown as ordinary cards, scoring each reviewer, 0-1 (default 0)")
    c.add_argument("--json", action="store_true", help="the setting and the cards as JSON")
    c.set_defaults(func=later("cli_votes", "cmd_overlap"))

    c = sub.add_parser("agreement", help="how far reviewers agree: Krippendorff's alpha, pairs, probes")
    c.add_argument("dir", type=Path, help=DIR_HELP)
    c.add_argument("--json", action="store_true",
                   help="one JSON object: alpha, alpha_interval, per_class, items, pairs, reviewers, cards")
    c.set_defaults(func=later("cli_votes", "cmd_agreement"))

    c = sub.add_parser("export", help="export labels, predictions or the decision log")
    c.add_argument("dir", type=Path, help=DIR_HELP)
    c.add_argument("--what", required=True, choices=["labels", "predictions", "decisions", "gold_changes"],
                   help="labels: gold plus accepted, relabeled and labeled samples; predictions: "
                        "the current round's, every sample; decisions: the full log (votes included); "
                        "gold_changes: gold labels an audit's consensus changed, with the old label")
    c.add_argument("--out", type=Path, required=True, metavar="FILE",
                   help="where to write: outside the project or under its exports/ folder")
    c.add_argument("--format", default="csv", choices=["csv", "mertools"],
                   help="csv (default), or mertools: a label .npz as MERTools reads it")
    c.set_defaults(func=later("cli_commands", "cmd_export"))

    c = sub.add_parser("status", help="sample counts, rounds and metrics")
    c.add_argument("dir", type=Path, help=DIR_HELP)
    c.add_argument("--json", action="store_true", help="everything, with per-round metrics, as JSON")
    c.set_defaults(func=later("cli_commands", "cmd_status"))

    c = sub.add_parser("check", help="say what is damaged in a project (reads only)",
                       description="Checks the store (the database's integrity check, every table and its "
                                   "columns, the schema version), every round's record, predictions and "
                                   "checkpoint, and the features (recorded shapes, finite values). Prints one "
                                   "line per part; exit 1 with a one-line summary when a part is damaged.")
    c.add_argument("dir", type=Path, help=DIR_HELP)
    c.set_defaults(func=later("cli_commands", "cmd_check"))

    c = sub.add_parser("migrate", help="upgrade an older project's schema (backs up project.db first)")
    c.add_argument("dir", type=Path, help=DIR_HELP)
    c.set_defaults(func=later("cli_commands", "cmd_migrate"))

    c = sub.add_parser("synth", help="write a synthetic MER-like data set in the native format")
    c.add_argument("out", type=Path, help="folder to write (samples.csv and one .npy per modality)")
    c.add_argument("--scale", default="default", help="default, mer2024, or a factor such as 0.5")
    c.add_argument("--seed", default="0", help="random seed, 0 to 4294967295 (default 0)")
    c.set_defaults(func=later("cli_commands", "cmd_synth"))

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
    c.add_argument("--nproc", default="1", metavar="N",
                   help="rounds started from the app train across N processes (`mersemi train --nproc N`); "
                        "default 1")
    c.set_defaults(func=later("cli_serve", "cmd_serve"))

    c = sub.add_parser("demo", help="build a synthetic project once, train round 0, open the app")
    c.add_argument("--port", default="7860", help="TCP port, 1-65535 (default %(default)s)")
    c.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "mersemi" / "demo",
                   help="where the demo data and project are kept and reused (default %(default)s)")
    c.set_defaults(func=later("cli_serve", "cmd_demo"))
    return p


def _login() -> str:
    """The OS login name: the default reviewer of decisions made from the command line."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER in a container
        return "cli"


if __name__ == "__main__":
    sys.exit(main())
