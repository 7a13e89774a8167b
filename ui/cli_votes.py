"""The commands of `mersemi` on votes: overlap (K votes on a share of the cards, gold probes)
and agreement (how far reviewers agree). Each calls the service layer and prints."""
from __future__ import annotations

import json

from ..engine.errors import UsageError
from ..engine.vocab import VotePurpose
from ..service.agreement import agreement
from ..service.votes import overlap, set_overlap

from .cli_commands import open_project


def cmd_overlap(args) -> None:
    with open_project(args.dir) as project:
        if args.votes is None and args.share is None:
            now = overlap(project)
            cards = project.store.votes.cards()
            out = {"votes": now.votes, "share": now.share, "probes": now.probes,
                   "overlap_cards": sum(c.purpose == VotePurpose.OVERLAP for c in cards.values()),
                   "probe_cards": sum(c.purpose == VotePurpose.PROBE for c in cards.values())}
        elif args.votes is None or args.share is None:
            raise UsageError("overlap: --votes and --share go together (see mersemi overlap --help)")
        else:
            out = set_overlap(project, args.votes, args.share, args.probes, text=True)
    if args.json:
        print(json.dumps(out))
        return
    print(f"{out['votes']} vote(s) per card on {out['share']:.0%} of the pool cards ({out['overlap_cards']} cards); "
          f"gold probes: {out['probes']:.0%} ({out['probe_cards']} cards)")


def cmd_agreement(args) -> None:
    with open_project(args.dir) as project:
        result = agreement(project).as_dict()
    if args.json:
        print(json.dumps(result))
        return
    if result["alpha"] is None:
        print(f"no card with two votes yet ({result['votes']} votes on the overlap share; "
              f"set one with `mersemi overlap DIR --votes 2 --share 0.25`)")
    else:
        low, high = result["alpha_interval"]
        print(f"Krippendorff's alpha (nominal) {result['alpha']:.3f} [{_f(low)}, {_f(high)}] on {result['items']} "
              f"cards, {result['votes']} votes; percent agreement {100 * result['percent_agreement']:.1f} %")
        for c, a in result["per_class"].items():
            print(f"  {c:>12}  alpha {_f(a['alpha'])} [{_f(a['low'])}, {_f(a['high'])}]")
    for r in result["reviewers"]:
        line = f"{r['reviewer']}: {r['votes']} votes"
        if r["with_consensus"] is not None:
            line += f", {100 * r['with_consensus']:.0f} % with the consensus ({r['consensus_items']} cards)"
        if r["probe_votes"]:
            line += f", gold probes {r['probe_right']}/{r['probe_votes']} right"
        print(line)
    if result["cards"]:
        print("overlap cards: " + ", ".join(f"{n} {state}" for state, n in sorted(result["cards"].items())))


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
