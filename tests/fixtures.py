"""Test data builders shared by the test modules (importers, command line, app).

`build_mertools(root)` writes a small data set in the MER2024 baseline toolkit's layout, with
each feature folder in one of the three per-sample layouts, and returns where everything is
and what an import must produce.
"""
from __future__ import annotations

import csv
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CLASSES = ["neutral", "angry", "happy", "sad", "worried", "surprise"]

# modality -> (feature folder name as MERTools names them, layout)
#   "utt":    <name>.npy holding [D]
#   "frames": <name>.npy holding [T, D] (mean-pooled on import)
#   "folder": <name>/ holding one [D] .npy per frame (averaged on import)
FEATURE_FOLDERS = {
    "audio": ("chinese-hubert-large-UTT", "utt"),
    "text": ("Baichuan2-13B-Base-FRA", "frames"),
    "video": ("clip-vit-large-patch14-FRA", "folder"),
}
DIMS = {"audio": 6, "text": 10, "video": 4}


@dataclass
class MertoolsData:
    root: Path
    labels: Path                          # label-6way.npz or labels.csv
    features: Path                        # ROOT holding one folder per feature
    modality_map: dict[str, str]          # modality -> feature folder name
    transcripts: Path | None
    media: Path | None
    train: dict[str, str]                 # labeled sample -> class as written in the file
    pool: list[str]                       # test1 samples (unlabeled); empty for CSV labels
    expected: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # modality -> name -> vector
    texts: dict[str, str] = field(default_factory=dict)
    clips: dict[str, str] = field(default_factory=dict)  # name -> clip file name

    @property
    def names(self) -> list[str]:
        """Samples in import order: train, then test1."""
        return list(self.train) + self.pool

    def feature_file(self, modality: str, name: str) -> Path:
        """The file (or frame folder) holding one sample's features."""
        folder = self.features / self.modality_map[modality]
        return folder / name if (folder / name).is_dir() else folder / f"{name}.npy"

    def cli_args(self) -> list[str]:
        """`mersemi import DIR --mertools ...` arguments for this data set."""
        args = ["--mertools", "--labels", str(self.labels), "--features", str(self.features)]
        for m, f in self.modality_map.items():
            args += ["--modality", f"{m}={f}"]
        if self.transcripts:
            args += ["--transcripts", str(self.transcripts)]
        if self.media:
            args += ["--media", str(self.media)]
        return args


def build_mertools(root: Path, n_train: int = 12, n_pool: int = 8, label_format: str = "npz",
                   modalities: tuple[str, ...] = ("audio", "text", "video"),
                   transcripts: bool = True, media: bool = True, seed: int = 0) -> MertoolsData:
    """Write a MERTools-layout data set under `root`.

    Train labels cycle through the six classes, with some written in other case ("Happy")
    as real label files sometimes do. test1 entries carry placeholder emotions, as MER2024's
    do. With label_format="csv" the labels are `name, discrete` (all labeled, no pool).
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    train = {f"sample_{i:08d}": (CLASSES[i % 6].capitalize() if i % 4 == 1 else CLASSES[i % 6])
             for i in range(n_train)}
    pool = [f"sample_{n_train + i:08d}" for i in range(n_pool)] if label_format == "npz" else []
    names = list(train) + pool

    if label_format == "npz":
        labels = root / "label-6way.npz"
        np.savez_compressed(labels,
                            train_corpus={n: {"emo": e, "val": -10} for n, e in train.items()},
                            test1_corpus={n: {"emo": "neutral", "val": -10} for n in pool})
    elif label_format == "csv":
        labels = root / "labels.csv"
        with open(labels, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["name", "discrete"])
            w.writerows(train.items())
    else:
        raise ValueError(label_format)

    features = root / "features"
    data = MertoolsData(root=root, labels=labels, features=features,
                        modality_map={m: FEATURE_FOLDERS[m][0] for m in modalities},
                        transcripts=None, media=None, train=train, pool=pool)
    for m in modalities:
        folder_name, layout = FEATURE_FOLDERS[m]
        data.expected[m] = _write_feature_folder(features / folder_name, layout, names, DIMS[m], rng)

    if transcripts:
        data.transcripts = root / "transcription-engchi-polish.csv"
        with open(data.transcripts, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["name", "chinese", "english"])
            for i, n in enumerate(names[:-1]):  # the last sample has no transcript
                english = "" if i == 0 else f"sentence number {i}"  # first: Chinese only
                w.writerow([n, f"第{i}句", english])
                data.texts[n] = english or f"第{i}句"
    if media:
        data.media = root / "video"
        data.media.mkdir()
        for i, n in enumerate(names[:4]):
            clip = f"{n}.mp4" if i % 2 else f"{n}.wav"
            if clip.endswith(".wav"):
                write_wav(data.media / clip)
            else:
                (data.media / clip).write_bytes(b"\x00\x00\x00\x18ftypmp42")
            data.clips[n] = clip
        (data.media / "notes.txt").write_text("not a clip")
    return data


def _write_feature_folder(folder: Path, layout: str, names: list[str], dim: int,
                          rng: np.random.Generator) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True)
    expected = {}
    for name in names:
        if layout == "utt":
            v = rng.normal(size=dim).astype(np.float32)
            np.save(folder / f"{name}.npy", v)
            expected[name] = v
        elif layout == "frames":
            frames = rng.normal(size=(int(rng.integers(1, 5)), dim)).astype(np.float32)
            np.save(folder / f"{name}.npy", frames)
            expected[name] = frames.mean(axis=0)
        elif layout == "folder":
            frames = rng.normal(size=(int(rng.integers(1, 4)), dim)).astype(np.float32)
            (folder / name).mkdir()
            for t, frame in enumerate(frames):
                np.save(folder / name / f"{t:06d}.npy", frame)
            expected[name] = frames.mean(axis=0)
        else:
            raise ValueError(layout)
    return expected


def write_wav(path: Path, seconds: float = 0.1, rate: int = 8000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2").tobytes())
