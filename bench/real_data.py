"""Real (not synthetic) few-label data sets in the native import format, from data that packages
ship (no download), each as a six-class, three-"modality" task at MER2024's labeled class
proportions (1248/1208/1038/730/616/190), scaled down to what the data holds:

- digits: scikit-learn's bundled handwritten digits 0-5; each 8x8 image gives the top four rows
  (32 values), the bottom four rows (32) and the row and column sums (16). About 720 samples;
  round 0 is strong (close to a model given every pool label).
- plaid: PLAID (plug-load appliance current signatures, Gao et al. 2014) as shipped inside the
  sktime wheel (`pip install --no-deps sktime==1.2.0`: its two .ts files are read, sktime is
  never imported); the six most frequent appliances, 703 series. Each series gives its shape
  resampled to 64 points, its log spectrum in 32 bins, and 19 summary and derivative
  statistics. Round 0 is weak: far from the model given every pool label.

Per seed, a stratified split per class: the `labeled` fraction (at least 2 per class, so that
every class can be trained and evaluated), 35 % test, the rest is the unlabeled pool, whose
truth is written to `true_label` (used only to measure pseudo-label precision). Where a data set
keeps recordings together (`groups`: the windows of one recording), the test share takes whole
recordings, so that no test sample has a sibling in the labeled set or the pool.

The benchmark suite's other data sets (bench/suite_sets.py) come through the same `arrays` and
`write_native`, with their own class names, and their features standardised per column on the
labeled and pool rows (digits and PLAID keep theirs, as measured before).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from data_files import package_file, read_ts
from suite_sets import LOADERS, MER2024_SHARES

CLASSES = ["neutral", "angry", "happy", "sad", "worried", "surprise"]
TEST_SHARE = 0.35
MIN_LABELED = 2
LEGACY = ("digits", "plaid")   # MER2024 proportions down to 27 samples a class, features as they are
DATASETS = (*LEGACY, *LOADERS)


def arrays(name: str, seed: int, labeled: float) -> dict:
    """Features per modality, class ids, the split, the names of every sample and the class
    names (seeded)."""
    if not 0 < labeled < 1 - TEST_SHARE:
        raise ValueError(f"labeled share must lie in (0, {1 - TEST_SHARE}), got {labeled}")
    rng = np.random.default_rng(seed)
    # rows come grouped by class, each group in a random order: its first rows are labeled
    if name in LEGACY:
        feats, y = {"digits": _digits, "plaid": _plaid}[name](rng)
        classes, groups = CLASSES, None
    else:
        feats, y, classes, groups = LOADERS[name](rng)
    split = np.empty(len(y), dtype=object)
    for c in range(len(classes)):
        idx = np.flatnonzero(y == c)
        n_lab = max(MIN_LABELED, int(round(labeled * len(idx))))
        n_test = int(round(TEST_SHARE * len(idx)))
        if groups is None:
            split[idx] = ["labeled"] * n_lab + ["test"] * n_test + ["unlabeled"] * (len(idx) - n_lab - n_test)
        else:
            split[idx] = _grouped_split(groups[idx], n_lab, n_test, rng)
    if name not in LEGACY:
        feats = _standardised(feats, split != "test")
    order = rng.permutation(len(y))   # samples.csv in a random order, not grouped by class
    return {"features": {m: x[order] for m, x in feats.items()}, "y": y[order].astype(np.int64),
            "split": split[order].astype(str), "names": [f"{name}_{seed}_{i:04d}" for i in range(len(y))],
            "classes": list(classes)}


def _grouped_split(groups: np.ndarray, n_lab: int, n_test: int, rng: np.random.Generator) -> list[str]:
    """One class's split where whole groups go to test (until n_test samples), then the first
    n_lab of the rest are labeled; rows arrive in a random order."""
    out = ["unlabeled"] * len(groups)
    taken = 0
    for g in rng.permutation(np.unique(groups)):
        if taken >= n_test:
            break
        for i in np.flatnonzero(groups == g):
            out[i] = "test"
            taken += 1
    rest = [i for i, v in enumerate(out) if v != "test"]
    for i in rest[:n_lab]:
        out[i] = "labeled"
    return out


def _standardised(feats: dict[str, np.ndarray], fit_rows: np.ndarray) -> dict[str, np.ndarray]:
    """Each column minus its mean, over its standard deviation, both from `fit_rows` (labeled and
    pool: a user's own features need no test labels either)."""
    out = {}
    for m, x in feats.items():
        mean, std = x[fit_rows].mean(0), x[fit_rows].std(0)
        out[m] = ((x - mean) / np.where(std > 0, std, 1)).astype(np.float32)
    return out


def write_native(folder: Path, name: str, seed: int, labeled: float) -> dict:
    """Write the native import folder (samples.csv + one .npy per modality); return the arrays."""
    data = arrays(name, seed, labeled)
    folder.mkdir(parents=True, exist_ok=True)
    for m, x in data["features"].items():
        np.save(folder / f"{m}.npy", x)
    with open(folder / "samples.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "split", "label", "true_label"])
        names = data["classes"]
        for n, s, c in zip(data["names"], data["split"], data["y"]):
            w.writerow([n, s, names[c] if s != "unlabeled" else "", names[c]])
    return data


def _at_mer_shares(y: np.ndarray, order: list[int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the classes in `order` (class order[i] plays CLASSES[i]), subsampled to MER2024's
    shares, and their new class ids."""
    available = np.array([np.sum(y == k) for k in order])
    per_class = np.floor(MER2024_SHARES * np.min(available / MER2024_SHARES)).astype(int)
    rows = [rng.permutation(np.flatnonzero(y == k))[:n] for k, n in zip(order, per_class)]
    return np.concatenate(rows), np.repeat(np.arange(len(order)), per_class)


def _digits(rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    rows, y = _at_mer_shares(d.target, [0, 1, 2, 3, 4, 5], rng)
    img = d.images[rows].astype(np.float32)
    return {"top": img[:, :4, :].reshape(len(rows), 32), "bottom": img[:, 4:, :].reshape(len(rows), 32),
            "sums": np.concatenate([img.sum(2), img.sum(1)], axis=1)}, y


def _plaid(rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    """The same 703 series for every seed, each class's in a seeded order (the seed splits them)."""
    series, labels = _plaid_series()
    classes, counts = np.unique(labels, return_counts=True)
    order = classes[np.argsort(-counts, kind="stable")[:6]].tolist()   # CFL, laptop, hairdryer, microwave, fan, bulb
    rows, y = _at_mer_shares(labels, order, np.random.default_rng(0))
    rows = np.concatenate([rng.permutation(rows[y == c]) for c in range(len(order))])
    return _plaid_views([series[i] for i in rows]), y


def _plaid_series() -> tuple[list[np.ndarray], np.ndarray]:
    series, labels = [], []
    for part in ("TRAIN", "TEST"):
        s, l = read_ts(package_file("sktime", "datasets", "data", "PLAID", f"PLAID_{part}.ts"))
        series += [x[0] for x in s]   # univariate: one dimension
        labels += [int(v) for v in l]
    return series, np.array(labels)


def _plaid_views(series: list[np.ndarray], n_raw: int = 64, n_fft: int = 32) -> dict:
    from scipy.stats import kurtosis, skew

    raw, fft, stats = [], [], []
    for s in series:
        raw.append(np.interp(np.linspace(0, 1, n_raw), np.linspace(0, 1, len(s)), s))
        f = np.abs(np.fft.rfft(s - s.mean())) / len(s)
        fft.append(np.log1p(np.interp(np.linspace(0, 1, n_fft), np.linspace(0, 1, len(f)), f)))
        d, q, rms = np.diff(s), np.percentile(s, [5, 25, 50, 75, 95]), np.sqrt(np.mean(s ** 2))
        stats.append(np.r_[s.mean(), s.std(), s.min(), s.max(), np.ptp(s), q, rms, np.max(np.abs(s)) / (rms + 1e-9),
                           skew(s), kurtosis(s), np.abs(d).mean(), d.std(), np.abs(d).max(),
                           np.mean(np.diff(np.sign(s - s.mean())) != 0), np.log(len(s))])
    return {"shape": np.array(raw, np.float32), "spectrum": np.array(fft, np.float32),
            "stats": np.nan_to_num(np.array(stats)).astype(np.float32)}
