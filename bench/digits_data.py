"""Real (not synthetic) few-label data in the native import format: scikit-learn's bundled
handwritten digits (no download) as a three-"modality" emotion-like task.

- Six digits play the six MER2024 classes, at MER2024's labeled class proportions
  (1248/1208/1038/730/616/190), scaled down to what the digits hold (~180 images each):
  about 720 samples.
- Each 8x8 image gives three feature vectors: the top four rows (32 values), the bottom four
  rows (32), and the row and column sums (16). No single one is enough; together they are.
- Stratified split per class: `labeled` fraction (at least 2 per class, so that every class
  can be trained and evaluated), 35 % test, the rest is the unlabeled pool, whose truth is
  written to `true_label` (used only to measure pseudo-label precision).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

CLASSES = ["neutral", "angry", "happy", "sad", "worried", "surprise"]
MER2024_SHARES = np.array([1248, 1208, 1038, 730, 616, 190], float)
DIGITS = [0, 1, 2, 3, 4, 5]          # digit d plays CLASSES[DIGITS.index(d)]
TEST_SHARE = 0.35
MIN_LABELED = 2


def digits_arrays(seed: int, labeled: float) -> dict:
    """Features per modality, class ids and the split of every sample (seeded)."""
    if not 0 < labeled < 1 - TEST_SHARE:
        raise ValueError(f"labeled share must lie in (0, {1 - TEST_SHARE}), got {labeled}")
    rng = np.random.default_rng(seed)
    d = load_digits()
    images, digit = d.images, d.target
    available = np.array([np.sum(digit == k) for k in DIGITS])
    scale = np.min(available / MER2024_SHARES)
    per_class = np.floor(MER2024_SHARES * scale).astype(int)
    rows, y, split = [], [], []
    for c, (k, n) in enumerate(zip(DIGITS, per_class)):
        idx = rng.permutation(np.flatnonzero(digit == k))[:n]
        n_lab = max(MIN_LABELED, int(round(labeled * n)))
        n_test = int(round(TEST_SHARE * n))
        rows.append(idx)
        y += [c] * n
        split += ["labeled"] * n_lab + ["test"] * n_test + ["unlabeled"] * (n - n_lab - n_test)
    rows = np.concatenate(rows)
    order = rng.permutation(len(rows))   # samples.csv in a random order, not grouped by class
    rows, y, split = rows[order], np.array(y)[order], np.array(split)[order]
    img = images[rows].astype(np.float32)
    feats = {"top": img[:, :4, :].reshape(len(rows), 32),
             "bottom": img[:, 4:, :].reshape(len(rows), 32),
             "sums": np.concatenate([img.sum(2), img.sum(1)], axis=1)}
    return {"features": feats, "y": y.astype(np.int64), "split": split,
            "names": [f"digit_{seed}_{i:04d}" for i in range(len(rows))]}


def write_native(folder: Path, seed: int, labeled: float) -> dict:
    """Write the native import folder (samples.csv + one .npy per modality); return the arrays."""
    data = digits_arrays(seed, labeled)
    folder.mkdir(parents=True, exist_ok=True)
    for m, x in data["features"].items():
        np.save(folder / f"{m}.npy", x)
    with open(folder / "samples.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "split", "label", "true_label"])
        for n, s, c in zip(data["names"], data["split"], data["y"]):
            w.writerow([n, s, CLASSES[c] if s != "unlabeled" else "", CLASSES[c]])
    return data
