"""The package as a user installs it: a real (non-editable) wheel in a fresh virtual
environment, run from a directory that is not the checkout.

Building the wheel and a venv takes a few seconds; the dependencies are not installed again:
the fresh venv sees this environment's site-packages through a .pth line, which adds the
folder to sys.path without running the editable install's own .pth finder, so `mersemi` can
only come from the wheel.
"""
from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # A copy of the tracked files, so that the build leaves nothing in the checkout.
    src = out / "src"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            (src / f).write_bytes((REPO / f).read_bytes())
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(src)], check=True, capture_output=True)
    (whl,) = out.glob("mersemi-*.whl")
    return whl


def test_wheel_ships_one_namespace_with_presets_and_assets(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.startswith("mersemi-")}
    assert top == {"mersemi"}, f"the wheel claims top-level names {sorted(top)}"
    for needed in ("mersemi/configs/default.yaml", "mersemi/configs/mer2024.yaml",
                   "mersemi/ui/app.js", "mersemi/ui/app.css", "mersemi/engine/train.py",
                   "mersemi/db/store.py", "mersemi/db/migrate.py", "mersemi/db/migrations/env.py",
                   "mersemi/db/migrations/versions/0001_baseline.py",
                   "mersemi/db/migrations/versions/0002_checks_json_heartbeat.py",
                   "mersemi/db/migrations/versions/0003_claims.py"):
        assert needed in names, f"{needed} missing from the wheel"


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    deps = [p for p in {sysconfig.get_paths()["purelib"], *site.getsitepackages()} if Path(p).is_dir()]
    (Path(purelib) / "deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True)
    return env_dir


def test_installed_wheel_runs_the_workflow_from_another_directory(installed, tmp_path):
    mersemi = str(installed / "bin" / "mersemi")
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": ""}
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()

    def run(*args: str) -> str:
        out = subprocess.run([mersemi, *args], cwd=cwd, env=env, capture_output=True, text=True)
        assert out.returncode == 0, f"mersemi {' '.join(args)}: {out.stderr[-2000:]}"
        return out.stdout

    origin = subprocess.run([str(installed / "bin" / "python"), "-c",
                             "import mersemi.engine, mersemi.ui.cli as c; print(c.__file__)"],
                            cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout
    assert str(installed) in origin, f"mersemi imported from {origin.strip()}, not the installed wheel"
    for generic in ("db", "ui", "engine"):
        probe = subprocess.run([str(installed / "bin" / "python"), "-c", f"import {generic}"],
                               cwd=cwd, env=env, capture_output=True, text=True)
        assert probe.returncode != 0, f"the install provides a top-level module {generic!r}"

    run("synth", "data", "--scale", "0.03", "--seed", "1")
    run("init", "proj")
    run("import", "proj", "--native", "data")
    # A tiny config that extends a shipped preset by name: presets resolve inside the package.
    # No step floor: the default's 200 + 3 x 300 steps would be most of the test's time.
    (cwd / "quick.yaml").write_text(
        f"extends: {installed_preset(installed, 'default')}\n"
        "pretrain: {epochs: 1, max_samples_per_epoch: 2000, min_steps: 0}\n"
        "finetune: {folds: 3, epochs: 2, patience: 0, min_steps: 0}\n")
    run("train", "proj", "--config", "quick.yaml")
    status = json.loads(run("status", "proj", "--json"))
    assert [r["status"] for r in status["rounds"]] == ["done"]
    assert status["samples"]["labeled"] > 0
    # An unknown preset name lists the shipped ones (read from the installed package).
    out = subprocess.run([mersemi, "train", "proj", "--config", "nosuch"], cwd=cwd, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 1 and "mer2024" in out.stderr and "default" in out.stderr


def installed_preset(env_dir: Path, name: str) -> str:
    py = env_dir / "bin" / "python"
    return subprocess.run([str(py), "-c", f"from mersemi.engine.config import preset_path; "
                                          f"print(preset_path({name!r}))"],
                          check=True, capture_output=True, text=True).stdout.strip()
