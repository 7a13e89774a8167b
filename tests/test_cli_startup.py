"""What the command line costs before it runs a command: importing `mersemi.ui.cli` and parsing
any command line (`--help` included) loads none of the heavy libraries; each command imports
what it needs when it runs. Checked by the modules a fresh interpreter holds, never by a time
(bench/cli_startup.py measures the time)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "gradio", "sklearn", "scipy", "pandas")


def modules_after(code: str) -> dict:
    """The package's and the heavy libraries' modules a fresh interpreter holds after `code`."""
    probe = code + f"""
import json, sys
print(json.dumps({{"heavy": sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})),
                  "count": len(sys.modules)}}))
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_command_line_loads_no_heavy_library():
    assert modules_after("import mersemi.ui.cli")["heavy"] == []


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["serve", "--help"], ["queue", "--help"]])
def test_parsing_the_command_line_loads_no_heavy_library(argv):
    """`mersemi --help` (and a command's) parses every argument and prints without torch,
    gradio, scikit-learn, scipy or pandas: each command imports what it needs when it runs."""
    after = modules_after(f"""
import contextlib, io
from mersemi.ui.cli import build_parser
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        build_parser().parse_args({argv!r})
    except SystemExit:
        pass
assert "usage: mersemi" in out.getvalue(), out.getvalue()
""")
    assert after["heavy"] == []


def test_a_command_imports_what_it_needs_when_it_runs(tmp_path):
    """The lazy import is the command's: `mersemi status` on a missing folder reaches the
    service layer (its one-line error) through the same entry point."""
    out = subprocess.run([sys.executable, "-m", "mersemi.ui.cli", "status", str(tmp_path / "nothing")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stderr.startswith("mersemi: error: ") and "not a project" in out.stderr


def test_the_commands_that_read_a_project_load_no_heavy_library(tmp_path):
    """`init` and `status` need neither the importers (pandas), the folds (scikit-learn) nor the
    trainer (torch): a command imports what it needs, not what its neighbours need."""
    after = modules_after(f"""
import contextlib, io
from mersemi.ui.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    assert main(["init", {str(tmp_path / "p")!r}]) == 0
    assert main(["status", {str(tmp_path / "p")!r}, "--json"]) == 0
assert '"classes"' in out.getvalue(), out.getvalue()
""")
    assert after["heavy"] == []
