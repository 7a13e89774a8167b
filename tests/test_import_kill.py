"""An import killed (SIGKILL) at any step leaves a project the next command repairs (issue 10,
point 9): before its samples are in the database it is undone, after that it is finished.
`status` only says so: it writes nothing (issue 31); the next command that writes repairs.

A kill while the feature matrices were being committed once left features/ in place and 0
samples in the database, and every later import was refused ("already holds features").
Real `mersemi import` processes, killed by themselves at named points (MERSEMI_CRASH_AT).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mersemi.engine.crashpoints import CRASH_ENV
from mersemi.engine.features import FeatureStore
from mersemi.engine.synthetic import make_synthetic

pytestmark = pytest.mark.slow  # real processes, a dozen of them
MERSEMI = str(Path(sys.executable).parent / "mersemi")
BEFORE_SAMPLES = ["import:streaming", "import:staged", "import:marked"]
AFTER_SAMPLES = ["import:samples", "import:moving", "import:published"]


def mersemi(*args, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    env.pop(CRASH_ENV, None)
    if crash_at:
        env[CRASH_ENV] = crash_at
    return subprocess.run([MERSEMI, *map(str, args)], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("native") / "data"
    make_synthetic(out, scale=0.02, seed=2)
    return out


def killed_import(tmp_path: Path, data: Path, point: str) -> Path:
    root = tmp_path / "p"
    assert mersemi("init", root).returncode == 0
    killed = mersemi("import", root, "--native", data, crash_at=point)
    assert killed.returncode == -9, (killed.returncode, killed.stderr[-2000:])
    return root


def status(root: Path) -> tuple[dict, str]:
    out = mersemi("status", root, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), out.stderr


def assert_fully_imported(root: Path, data: Path, st: dict) -> None:
    n = len(pd.read_csv(data / "samples.csv"))
    assert st["samples"]["total"] == n
    store = FeatureStore(root / "features")
    assert st["modalities"] == store.modalities and set(store.modalities) == {"audio", "text", "video"}
    for m in store.modalities:
        np.testing.assert_array_equal(np.asarray(store.matrix(m)), np.load(data / f"{m}.npy").astype(np.float16))
    assert [p.name for p in (root / "features").iterdir() if p.name.startswith(".")] == []  # no staging left


def left_in_features(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "features").iterdir())


@pytest.mark.parametrize("point", BEFORE_SAMPLES)
def test_killed_before_the_samples_were_written_is_undone(point, tmp_path, data):
    root = killed_import(tmp_path, data, point)
    left = left_in_features(root)
    st, notes = status(root)
    assert st["samples"]["total"] == 0 and st["modalities"] == {}
    assert notes.startswith("mersemi: note: ") and "import" in notes and "next command" in notes, notes
    assert left_in_features(root) == left                              # status says it, writes nothing (issue 31)
    again = mersemi("import", root, "--native", data)                  # the next writer undoes it, then imports
    assert again.returncode == 0, again.stderr
    assert_fully_imported(root, data, status(root)[0])                 # staging removed


@pytest.mark.parametrize("point", AFTER_SAMPLES)
def test_killed_after_the_samples_were_written_is_finished(point, tmp_path, data):
    root = killed_import(tmp_path, data, point)
    left = left_in_features(root)
    notes = status(root)[1]
    assert notes.startswith("mersemi: note: ") and "the next command that writes finishes it" in notes, notes
    assert left_in_features(root) == left                              # status wrote nothing
    again = mersemi("import", root, "--native", data)                  # the next writer finishes it
    assert "finished an import" in again.stderr, again.stderr
    assert again.returncode == 1 and "already holds" in again.stderr
    st, notes = status(root)
    assert notes == ""                                                 # repaired once, quiet after
    assert_fully_imported(root, data, st)
