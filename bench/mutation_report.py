"""Per-module summary of a mutmut 2 cache (.mutmut-cache, SQLite): killed / survived / timed
out / suspicious / untested, the score, and every survivor with its line, so that
bench/results/mutation.md can be written from it. mutmut's "suspicious" is a mutant the tests
killed but more slowly than the baseline (a loaded machine), and a "timeout" one whose tests
hung: both are caught, so the score is (killed + suspicious + timeout) / tested.
Usage: python bench/mutation_report.py build/mutation/.mutmut-cache [--survivors]"""
from __future__ import annotations

import sqlite3
import sys
from collections import Counter, defaultdict

CAUGHT = ("ok_killed", "ok_suspicious", "bad_timeout")


def main(path: str, show_survivors: bool) -> None:
    db = sqlite3.connect(path)
    rows = db.execute("""SELECT s.filename, l.line_number, l.line, m."index", m.status
                         FROM Mutant m JOIN Line l ON m.line = l.id JOIN SourceFile s ON l.sourcefile = s.id
                         ORDER BY s.filename, l.line_number, m."index" """).fetchall()
    by_file: dict[str, Counter] = defaultdict(Counter)
    survivors: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for filename, number, line, _, status in rows:
        by_file[filename][status] += 1
        if status == "bad_survived":
            survivors[filename].append((number + 1, line.strip()))
    print("| module | mutants | killed | timeout | survived | suspicious | untested | score |")
    print("|---|---|---|---|---|---|---|---|")
    for filename, c in sorted(by_file.items()):
        tested = sum(c.values()) - c["untested"]
        score = f"{100 * sum(c[k] for k in CAUGHT) / tested:.1f}%" if tested else "-"
        print(f"| {filename} | {sum(c.values())} | {c['ok_killed']} | {c['bad_timeout']} | "
              f"{c['bad_survived']} | {c['ok_suspicious']} | {c['untested']} | {score} |")
    if show_survivors:
        for filename, items in sorted(survivors.items()):
            print(f"\n{filename}: {len(items)} survivors")
            for number, line in items:
                print(f"  {number}: {line[:110]}")


if __name__ == "__main__":
    main(sys.argv[1], "--survivors" in sys.argv[2:])
