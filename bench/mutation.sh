#!/usr/bin/env bash
# Mutation testing (mutmut 2.5) of the selection/threshold/store/review logic, with the fast
# tests that exercise each module. mutmut 2 rewrites the file it mutates in place, so it runs
# in a copy under build/mutation/, importable as mersemi.* through a shim folder on PYTHONPATH:
# the worktree itself is never touched. The copy keeps mutmut's cache (.mutmut-cache): a
# killed mutant stays killed, survivors are run again when the tests change.
#   bench/mutation.sh                    every module below, then the report
#   bench/mutation.sh engine/selection.py   one module
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
M=$ROOT/build/mutation

mkdir -p "$M/shim/mersemi"
rm -rf "$M/engine" "$M/db" "$M/ui" "$M/configs" "$M/tests"
tar -C "$ROOT" -c --exclude=__pycache__ engine db ui configs tests pyproject.toml | tar -x -C "$M"
for d in engine db ui configs; do ln -sfn "../../$d" "$M/shim/mersemi/$d"; done
cd "$M"
export PYTHONPATH="$M/shim" PYTHONDONTWRITEBYTECODE=1 GRADIO_ANALYTICS_ENABLED=False

# module -> the fast tests that exercise it (no training runs, no PostgreSQL server)
declare -A TESTS=(
    [engine/selection.py]="tests/test_selection.py"
    [engine/calibration.py]="tests/test_calibration.py"
    [db/store.py]="tests/test_store.py"
    [ui/rounds.py]="tests/test_round_steps.py"
    [ui/review.py]="tests/test_review.py tests/test_app_actions.py"
)
ORDER=(engine/selection.py engine/calibration.py db/store.py ui/rounds.py ui/review.py)
modules=("$@")
[ ${#modules[@]} -eq 0 ] && modules=("${ORDER[@]}")

for module in "${modules[@]}"; do
    tests=""
    for t in ${TESTS[$module]}; do [ -e "$t" ] && tests="$tests $t"; done
    if [ -z "$tests" ]; then echo "== $module: no fast test file present, skipped"; continue; fi
    echo "== $module:$tests"
    "$PY" -m mutmut run --paths-to-mutate "$module" --tests-dir tests/ \
        --runner "$PY -m pytest -x -q -p no:cacheprovider -m 'not slow and not postgres'$tests" \
        || true   # exit status is a bit mask of survivors/timeouts; the report says which
done
"$PY" "$ROOT/bench/mutation_report.py" "$M/.mutmut-cache"
