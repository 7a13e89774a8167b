#!/usr/bin/env bash
# Mutation testing (mutmut 2.5) of the selection/threshold/store/review logic, with the fast
# tests that exercise each module. mutmut 2 rewrites the file it mutates in place, so it runs
# in a copy under build/mutation/, importable as mersemi.* through a shim folder on PYTHONPATH:
# the worktree itself is never touched. The copy keeps mutmut's cache (.mutmut-cache): a
# killed mutant stays killed, survivors are run again when the tests change.
#   bench/mutation.sh                       every module below, then the report
#   bench/mutation.sh engine/selection.py   one module
# Modules listed in SAMPLE run every n-th of their mutants only (same ones every time), where a
# full run takes too long on a small shared machine; SAMPLE= (empty) runs them all.
# The cache is kept between runs; `make mutation` starts from an empty one.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
M=${MUT_DIR:-$ROOT/build/mutation}   # MUT_DIR: another copy, to run two modules at once

mkdir -p "$M/shim/mersemi"
rm -rf "$M/engine" "$M/db" "$M/ui" "$M/configs" "$M/tests"
tar -C "$ROOT" -c --exclude=__pycache__ engine db ui configs tests pyproject.toml | tar -x -C "$M"
for d in engine db service ui configs; do ln -sfn "../../$d" "$M/shim/mersemi/$d"; done
# TESTS_FROM=<commit>: that commit's tests/ instead (the "before" score: TESTS_FROM=2cd7717)
if [ -n "${TESTS_FROM:-}" ]; then
    rm -rf "$M/tests" && git -C "$ROOT" archive "$TESTS_FROM" tests | tar -x -C "$M"
fi
cd "$M"
export PYTHONPATH="$M/shim" PYTHONDONTWRITEBYTECODE=1 GRADIO_ANALYTICS_ENABLED=False

# module -> the fast tests that exercise it (no training runs, no PostgreSQL server)
declare -A TESTS=(
    [engine/selection.py]="tests/test_selection.py"
    [engine/calibration.py]="tests/test_calibration.py"
    [engine/loop.py]="tests/test_loop.py tests/test_round_steps.py"
    [db/writes.py]="tests/test_store.py"
    [db/decision_queries.py]="tests/test_store.py"
    [service/rounds.py]="tests/test_round_steps.py"
    [service/review.py]="tests/test_review.py tests/test_app_actions.py"
)
ORDER=(engine/selection.py engine/calibration.py engine/loop.py service/rounds.py db/writes.py db/decision_queries.py
       service/review.py)
declare -A SAMPLE_EVERY=([service/rounds.py]=6 [db/decision_queries.py]=4 [service/review.py]=8)
[ "${SAMPLE-x}" = "" ] && SAMPLE_EVERY=()
modules=("$@")
[ ${#modules[@]} -eq 0 ] && modules=("${ORDER[@]}")

for module in "${modules[@]}"; do
    tests=""
    for t in ${TESTS[$module]}; do [ -e "$t" ] && tests="$tests $t"; done
    if [ -z "$tests" ]; then echo "== $module: no fast test file present, skipped"; continue; fi
    runner="$PY -m pytest -x -q -p no:cacheprovider -m 'not slow and not postgres'$tests"
    # mutmut keeps one baseline time (10 x it is the timeout): time this module's own tests
    [ -f .mutmut-cache ] && "$PY" -c "import sqlite3; c = sqlite3.connect('.mutmut-cache'); \
        c.execute(\"DELETE FROM MiscData WHERE key LIKE '%baseline%' OR key LIKE '%hash_of_tests%'\"); c.commit()"
    every=${SAMPLE_EVERY[$module]:-1}
    echo "== $module:$tests (every $every. mutant)"
    if [ "$every" = 1 ]; then
        "$PY" -m mutmut run --paths-to-mutate "$module" --tests-dir tests/ --runner "$runner" \
            || true   # exit status is a bit mask of survivors/timeouts; the report says which
        continue
    fi
    # register the module's mutants in the cache, then run the sample one id at a time
    ids=$("$PY" - "$module" "$every" <<'PY'
import sqlite3, sys
from mutmut import add_mutations_by_file
from mutmut.cache import update_line_numbers
module, every = sys.argv[1], int(sys.argv[2])
update_line_numbers(module)
add_mutations_by_file({}, module, [], None)
rows = sqlite3.connect(".mutmut-cache").execute(
    "SELECT m.id FROM Mutant m JOIN Line l ON m.line = l.id JOIN SourceFile s ON l.sourcefile = s.id "
    "WHERE s.filename = ? ORDER BY l.line_number, m.\"index\"", (module,)).fetchall()
print(" ".join(str(r[0]) for k, r in enumerate(rows) if k % every == 0))
PY
)
    if [ -n "${RETEST:-}" ]; then   # RETEST=1: the mutants of an earlier sample again (survivors run)
        ids=$("$PY" -c "import sqlite3; print(' '.join(str(r[0]) for r in sqlite3.connect('.mutmut-cache').execute(
            \"SELECT m.id FROM Mutant m JOIN Line l ON m.line = l.id JOIN SourceFile s ON l.sourcefile = s.id \"
            \"WHERE s.filename = ? AND m.status != 'untested'\", ('$module',))))")
    fi
    for id in $ids; do
        "$PY" -m mutmut run "$id" --paths-to-mutate "$module" --tests-dir tests/ --runner "$runner" \
            >/dev/null 2>&1 || true
    done
done
"$PY" "$ROOT/bench/mutation_report.py" "$M/.mutmut-cache"   # untested: outside a sample
