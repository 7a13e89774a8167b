"""What `mersemi` costs before it does anything: the modules it imports and the CPU seconds of
`mersemi --help`, against the bare interpreter measured in the same run, and with --before REF
against the code of a git commit (extracted into a temporary folder and put first on the path).

Each time is the median of --runs fresh processes of `python -m mersemi.ui.cli --help` (CPU =
user + sys of the child, from getrusage: the other users of a shared machine change it less
than the wall time). Modules are counted in a fresh interpreter after `import mersemi.ui.cli`
and after parsing `--help`; the heavy libraries among them are named.

    python bench/cli_startup.py [--runs 9] [--before 2bc03b9]
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "db", "service", "ui", "configs")
HEAVY = ("torch", "gradio", "sklearn", "scipy", "pandas")
COUNT = """
import sys
{body}
heavy = [m for m in {heavy!r} if m in sys.modules]
print(len(sys.modules), ",".join(heavy) or "-", sys.modules["mersemi.ui.cli"].__file__)
"""
AFTER_IMPORT = "import mersemi.ui.cli"
AFTER_HELP = """
import contextlib, io
from mersemi.ui.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(["--help"])
    except SystemExit:
        pass
"""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def timed(cmd: list[str], runs: int, env: dict) -> tuple[float, float]:
    """Median CPU (user + sys) and wall seconds of `cmd` over `runs` fresh processes."""
    cpu, wall = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
        wall.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(cpu), statistics.median(wall)


def modules(body: str, env: dict) -> tuple[int, str, str]:
    out = subprocess.run([sys.executable, "-c", COUNT.format(body=body, heavy=HEAVY)],
                         check=True, capture_output=True, text=True, env=env).stdout.split()
    return int(out[0]), out[1], out[2]


def extract(ref: str, into: Path) -> None:
    """The package folders of commit `ref` as `into/mersemi/<package>`, importable first."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, *PACKAGES], check=True,
                             capture_output=True).stdout
    (into / "mersemi").mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into / "mersemi")], input=archive, check=True)


def measure(label: str, runs: int, env: dict) -> float:
    cmd = [sys.executable, "-m", "mersemi.ui.cli", "--help"]
    cpu, wall = timed(cmd, runs, env)
    import_n, import_heavy, where = modules(AFTER_IMPORT, env)
    help_n, help_heavy, _ = modules(AFTER_HELP, env)
    print(f"{label:<22} --help {cpu:.3f} s CPU, {wall:.3f} s wall; modules after import {import_n} "
          f"(heavy: {import_heavy}), after --help {help_n} (heavy: {help_heavy}); code: {Path(where).parent.parent}")
    return cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--before", metavar="REF", help="also measure this commit's code (e.g. 2bc03b9)")
    args = ap.parse_args()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    print(f"CPU: {cpu_model()}; median of {args.runs} runs; CPU = user + sys")
    bare_cpu, bare_wall = timed([sys.executable, "-c", "pass"], args.runs, env)
    print(f"{'python -c pass':<22} {bare_cpu:.3f} s CPU, {bare_wall:.3f} s wall")
    now = measure("this tree", args.runs, env)
    print(f"  {now / bare_cpu:.1f}x the bare interpreter's CPU")
    if args.before:
        with tempfile.TemporaryDirectory(prefix="cli-startup-") as tmp:
            extract(args.before, Path(tmp))
            old = measure(args.before, args.runs, dict(env, PYTHONPATH=tmp))
        print(f"  {old / bare_cpu:.1f}x the bare interpreter's CPU; this tree's --help takes {now / old:.3f}x "
              f"the CPU of {args.before}'s")


if __name__ == "__main__":
    main()
