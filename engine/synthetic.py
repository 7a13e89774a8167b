"""Synthetic MER-like data in the native import format, for demos, tests and benchmarks.

The generative story, chosen so that MR-CCL's ingredients have something to work on:
- Each sample has a class and a point `z` in a small latent space. Every class is a mixture
  of a few sub-clusters spread wider than the distance between classes, so no linear
  boundary separates the classes. The confusable pairs of MER (worried/sad, surprise/happy)
  sit close together.
- Each modality sees `z` through its own rotation and private noise (audio sharp, text
  medium, video blurry: the voting weights of the paper trust audio most), then a fixed
  random non-linear map into the modality's dimension, plus class-free private factors and
  isotropic noise. What the modalities share is exactly the class-bearing latent, which is
  what cross-modal contrastive pre-training on the unlabeled pool can learn to extract.
- The unlabeled pool comes from the same distribution; its truth goes to `true_label`
  (evaluation only) and its `label` stays empty.

Output folder: `samples.csv` (name, split, label, true_label, text, media), `audio.npy`,
`text.npy`, `video.npy` (float16 by default) and `media/<name>.wav` clips for a few hundred
samples. Matrices are generated and written a block of rows at a time, so memory stays
small at any scale. Everything is a function of the seed (and the scale).
"""
from __future__ import annotations

import csv
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .features import NpyRowFile
from .vocab import Split

ProgressFn = Callable[[str, float], None]

CLASSES = ["neutral", "angry", "happy", "sad", "worried", "surprise"]
MER2024_LABELED = [1248, 1208, 1038, 730, 616, 190]  # MER2024 labeled class sizes
# Confusable partner of each class: text hints borrow from it, latent centres sit near it.
PARTNER = {"neutral": "sad", "angry": "worried", "happy": "surprise",
           "sad": "worried", "worried": "sad", "surprise": "happy"}

SCALES: dict[str, dict[str, Any]] = {
    # Trains a CPU round in well under a minute.
    "default": {Split.LABELED: 2000, Split.UNLABELED: 10000, Split.TEST: 1000,
                "dims": {"audio": 128, "text": 256, "video": 64}},
    # MER2024-SEMI: the exact labeled set, the pool of ~115,600, the paper's feature sizes.
    # The test split (1,000, MER proportions) is our addition, drawn like the others.
    "mer2024": {Split.LABELED: 5030, Split.UNLABELED: 115595, Split.TEST: 1000,
                "dims": {"audio": 1024, "text": 5120, "video": 768}},
}

# A factor multiplies the default scale's sample counts: 100 makes 1.3 million samples (10x
# MER2024's pool); beyond that the counts stop making sense (1e30 overflowed to 12 samples).
MIN_SCALE, MAX_SCALE = 1e-3, 100.0

LATENT_DIM = 8
SUBCLUSTERS = 5
CLASS_SPREAD = 1.0       # std of class centres in the latent space
SUBCLUSTER_SPREAD = 1.5  # std of a sub-cluster's offset from its class centre (> class spread)
WITHIN_SPREAD = 0.45     # std of a sample around its sub-cluster centre
PARTNER_DISTANCE = 0.45  # how far a confusable class's centre sits from its partner's
HIDDEN = 32              # width of the random non-linear map
MAP_GAIN = 2.0           # input scale of its tanh: higher is more non-linear
PRIVATE_FACTORS = 32     # class-free private factors per modality (speaker, channel, ...)
# Per modality: private latent noise (how blurry its view of z is), share of latent
# dimensions it sees, amplitude of class-free private factors, isotropic feature noise.
# The private factors are strong on purpose: they carry most of the variance but no class,
# which is what a supervised model with few labels trips over and what cross-modal
# contrastive pre-training learns to discard (it keeps what the modalities share).
MODALITY_NOISE = {
    "audio": {"latent_noise": 0.4, "visible": 1.0, "private": 3.0, "iso": 0.3},
    "text": {"latent_noise": 0.55, "visible": 0.75, "private": 3.0, "iso": 0.4},
    "video": {"latent_noise": 0.8, "visible": 0.5, "private": 3.0, "iso": 0.5},
}
ROWS_PER_BLOCK = 4096    # generation block; fixed so output does not depend on memory
CLIPS = 300              # samples that get a media clip
CLIP_SECONDS, CLIP_RATE = 0.5, 8000
CLIP_PITCH = {"neutral": 220.0, "angry": 330.0, "happy": 392.0, "sad": 165.0,
              "worried": 196.0, "surprise": 440.0}

HINTS = {
    "neutral": ["as usual", "nothing special", "fine, I guess", "the normal routine", "okay"],
    "angry": ["completely unacceptable", "I am fed up", "how dare they", "sick of this", "furious"],
    "happy": ["wonderful", "great news", "so glad", "the best day", "I love it"],
    "sad": ["I miss them", "so lonely", "heartbroken", "nothing left", "in tears"],
    "worried": ["what if it fails", "so nervous", "I can't sleep", "uneasy", "afraid of the results"],
    "surprise": ["no way", "out of nowhere", "I can't believe it", "wow, really", "totally unexpected"],
}
TEMPLATES = [
    "When I heard about the exam, it was {h}.",
    "She called last night; {h}, honestly.",
    "About the new job... {h}.",
    "The trip to my hometown? {h}.",
    "He looked at the letter and said: {h}.",
    "{H}. That is all I can say about the meeting.",
    "After the match we just sat there, {h}.",
    "My brother told me the news and, well, {h}.",
]


def make_synthetic(out: Path, scale: str | float = "default", seed: int = 0,
                   progress: ProgressFn | None = None, dtype: str = "float16", pool_factor: float = 1.0) -> dict:
    """Write a synthetic data set to `out` (created; must be empty) and return a summary.
    `pool_factor` multiplies the pool alone (the growth benchmark: bench/bench_loop.py)."""
    t0 = time.time()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out}: exists and is not an empty folder")
    if not 0.0 < pool_factor <= MAX_SCALE:
        raise InputError(f"synthetic pool factor: must lie in (0, {MAX_SCALE:g}], got {pool_factor!r}")
    counts, dims = _scale(scale)
    counts[Split.UNLABELED] = max(len(CLASSES) * 2, round(counts[Split.UNLABELED] * pool_factor))
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))

    splits, y = _splits_and_labels(counts, rng)
    names = [f"sample_{i:06d}" for i in range(len(y))]
    latent = _latent(y, _class_geometry(np.random.default_rng(np.random.SeedSequence([seed, 1]))), rng)
    texts = [_sentence(c, rng) for c in y]
    clip_rows = np.sort(rng.choice(len(y), size=min(CLIPS, len(y)), replace=False))
    media: list[str | None] = [None] * len(y)
    for i in clip_rows:
        media[i] = f"media/{names[i]}.wav"
    _write_clips(out / "media", [names[i] for i in clip_rows], y[clip_rows], rng)
    _write_samples_csv(out / "samples.csv", names, splits, y, texts, media)

    total_rows = len(y) * len(dims)
    done = 0
    for m_index, (modality, dim) in enumerate(dims.items()):
        view = _ModalityMap(modality, dim, seed, m_index)
        file = NpyRowFile(out / f"{modality}.npy", len(y), dim, dtype)
        for start in range(0, len(y), ROWS_PER_BLOCK):
            stop = min(start + ROWS_PER_BLOCK, len(y))
            block_rng = np.random.default_rng(np.random.SeedSequence([seed, 2, m_index, start]))
            file.write(start, view.features(latent[start:stop], block_rng))
            done += stop - start
            if progress:
                progress(f"writing {modality}", done / total_rows)

    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {
        "out": str(out.resolve()), "scale": scale, "seed": seed, "classes": CLASSES,
        "samples": {s.value: int(np.sum(splits == s)) for s in Split},
        "labeled_per_class": {c: int(np.sum((splits == Split.LABELED) & (y == i))) for i, c in enumerate(CLASSES)},
        "modalities": dims, "dtype": dtype, "clips": len(clip_rows),
        "bytes": size, "seconds": round(time.time() - t0, 2),
    }


def _scale(scale: str | float) -> tuple[dict[Split, int], dict[str, int]]:
    if isinstance(scale, str):
        if scale not in SCALES:
            raise InputError(f"synthetic scale: {scale!r} is not one of {', '.join(SCALES)} or a number")
        preset = SCALES[scale]
        return {s: preset[s] for s in Split}, dict(preset["dims"])
    factor = float(scale)
    if not MIN_SCALE <= factor <= MAX_SCALE:  # NaN fails too
        raise InputError(f"synthetic scale: a factor must lie in [{MIN_SCALE:g}, {MAX_SCALE:g}], got {scale!r}")
    preset = SCALES["default"]
    # Every class needs a few samples in every split, or training has nothing to learn from.
    counts = {s: max(len(CLASSES) * 2, round(preset[s] * factor)) for s in Split}
    return counts, dict(preset["dims"])


def class_counts(total: int) -> list[int]:
    """`total` split over the classes in MER2024's labeled proportions (largest remainder),
    at least two per class (a round trains on one while it evaluates another)."""
    weights = np.asarray(MER2024_LABELED, dtype=np.float64) / sum(MER2024_LABELED)
    exact = weights * total
    counts = np.maximum(np.floor(exact).astype(int), 2)
    for i in np.argsort(-(exact - counts), kind="stable"):  # largest shortfall first
        if counts.sum() >= total:
            break
        counts[i] += 1
    while counts.sum() > total:  # only when the minimum of two pushed it over
        counts[np.argmax(counts)] -= 1
    return counts.tolist()


def _splits_and_labels(counts: dict[Split, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows grouped by split (labeled, unlabeled, test), classes shuffled within each."""
    splits, labels = [], []
    for split in Split:
        y = np.repeat(np.arange(len(CLASSES)), class_counts(counts[split]))
        labels.append(rng.permutation(y))
        splits.append(np.full(len(y), split))
    return np.concatenate(splits), np.concatenate(labels)


def _class_geometry(rng: np.random.Generator) -> np.ndarray:
    """Sub-cluster centres `[classes, SUBCLUSTERS, LATENT_DIM]`. A confusable class takes its
    partner's centre and sub-cluster layout, moved a little, so the two overlap."""
    base = {c: rng.normal(0, CLASS_SPREAD, LATENT_DIM) for c in CLASSES}
    offsets = {c: rng.normal(0, SUBCLUSTER_SPREAD, (SUBCLUSTERS, LATENT_DIM)) for c in CLASSES}
    for c, partner in (("worried", "sad"), ("surprise", "happy")):
        shift = rng.normal(0, 1, LATENT_DIM)
        base[c] = base[partner] + PARTNER_DISTANCE * shift / np.linalg.norm(shift) * np.sqrt(LATENT_DIM) / 2
        offsets[c] = offsets[partner] + rng.normal(0, 0.3, (SUBCLUSTERS, LATENT_DIM))
    return np.stack([base[c][None, :] + offsets[c] for c in CLASSES])


def _latent(y: np.ndarray, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sub = rng.integers(0, SUBCLUSTERS, len(y))
    return centres[y, sub] + rng.normal(0, WITHIN_SPREAD, (len(y), LATENT_DIM))


class _ModalityMap:
    """The fixed random map latent -> one modality's features (depends on seed and dim only)."""

    def __init__(self, modality: str, dim: int, seed: int, index: int) -> None:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 3, index]))
        noise = MODALITY_NOISE.get(modality, MODALITY_NOISE["video"])
        visible = max(2, round(noise["visible"] * LATENT_DIM))
        rotation, _ = np.linalg.qr(rng.normal(size=(LATENT_DIM, LATENT_DIM)))
        self.view = rotation[:, :visible]                         # which latent directions it sees
        self.latent_noise = noise["latent_noise"]
        self.w1 = rng.normal(0, MAP_GAIN / np.sqrt(visible), (visible, HIDDEN))
        self.b1 = rng.normal(0, 0.5, HIDDEN)
        # The wide matrices are float32: at 5,120 dims the blocks are the memory that counts.
        self.w2 = rng.normal(0, 1 / np.sqrt(HIDDEN), (HIDDEN, dim)).astype(np.float32)
        self.private = rng.normal(0, noise["private"] / np.sqrt(PRIVATE_FACTORS),
                                  (PRIVATE_FACTORS, dim)).astype(np.float32)
        self.iso = noise["iso"]

    def features(self, latent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(latent)
        seen = latent @ self.view + rng.normal(0, self.latent_noise, (n, self.view.shape[1]))
        hidden = np.tanh(seen @ self.w1 + self.b1).astype(np.float32)
        x = hidden @ self.w2
        x += rng.standard_normal((n, PRIVATE_FACTORS), dtype=np.float32) @ self.private
        x += np.float32(self.iso) * rng.standard_normal((n, self.w2.shape[1]), dtype=np.float32)
        return x


def _sentence(label: int, rng: np.random.Generator) -> str:
    """A sentence hinting at the class: its own hint words 60 % of the time, its confusable
    partner's 20 %, neutral words 20 %, so the text alone never settles it."""
    cls = CLASSES[label]
    source = rng.choice([cls, PARTNER[cls], "neutral"], p=[0.6, 0.2, 0.2])
    hint = str(rng.choice(HINTS[source]))
    template = str(rng.choice(TEMPLATES))
    return template.format(h=hint, H=hint[0].upper() + hint[1:])


def _write_clips(folder: Path, names: list[str], labels: np.ndarray, rng: np.random.Generator) -> None:
    """0.5 s, 8 kHz, 16-bit mono tones whose pitch loosely follows the class."""
    folder.mkdir(exist_ok=True)
    t = np.arange(int(CLIP_SECONDS * CLIP_RATE)) / CLIP_RATE
    envelope = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.05)  # 50 ms fade in and out
    for name, label in zip(names, labels):
        pitch = CLIP_PITCH[CLASSES[label]] * np.exp(rng.normal(0, 0.15))
        tone = 0.4 * envelope * np.sin(2 * np.pi * pitch * t) + 0.02 * rng.standard_normal(len(t))
        with wave.open(str(folder / f"{name}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(CLIP_RATE)
            w.writeframes((np.clip(tone, -1, 1) * 32767).astype("<i2").tobytes())


def _write_samples_csv(path: Path, names: list[str], splits: np.ndarray, y: np.ndarray,
                       texts: list[str], media: list[str | None]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "split", "label", "true_label", "text", "media"])
        for name, split, label, text, clip in zip(names, splits, y, texts, media):
            cls = CLASSES[label]
            w.writerow([name, split, "" if split == Split.UNLABELED else cls, cls, text, clip or ""])
