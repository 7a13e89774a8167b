"""The two import formats (native and MERTools: README.md, Import formats), read into a validated `ImportPlan`.

Planning reads and checks all metadata (sample lists, labels, splits, media, matrix headers,
which feature files exist) without touching feature values. `ImportPlan.write_features`
then streams the features into a `FeatureWriter` a block of rows at a time, checking every
row (dimension, NaN/inf) on the way; the caller aborts the writer if that raises. Nothing
ever holds a whole float32 matrix: at MER2024 scale that would be 3.3 GB.

Every error is an `InputError` with a one-line message naming the file, the sample and
the problem.
"""
from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from .errors import InputError, UsageError, shown
from .features import FeatureWriter, check_modality_name
from .folds import gold_problem
from .names import sample_name_problem
from .safe_files import MiB, read_bytes
from .safe_npz import load_npz
from .vocab import MEDIA_SUFFIXES, Split

ProgressFn = Callable[[str, float], None]
TEXT_COLUMNS = ("english", "chinese", "text")  # transcripts: first non-empty one wins
_BLOCK_BYTES = 64 * 2**20  # float32 bytes per streamed block (~64 MB)
MAX_CSV_BYTES = 512 * MiB  # samples.csv at MER2024 scale is ~5 MB


def _block_rows(dim: int) -> int:
    return max(1, _BLOCK_BYTES // (4 * dim))


# ---------------------------------------------------------------------- feature sources

class _FeatureSource(Protocol):
    """Where one modality's rows come from; yields (start, float32 block, sample names)."""
    path: Path
    dim: int

    def blocks(self, names: list[str]) -> Iterator[tuple[int, np.ndarray, list[str]]]: ...


@dataclass
class _NativeMatrix:
    path: Path
    dim: int

    def blocks(self, names: list[str]) -> Iterator[tuple[int, np.ndarray, list[str]]]:
        step = _block_rows(self.dim)
        for start in range(0, len(names), step):
            stop = min(start + step, len(names))
            # A fresh map per block, dropped right after: pages of a map held open for the
            # whole file would stay resident and count against the process (1.2 GB for text).
            matrix = _load_npy(self.path, mmap=True, who=_all_samples(names))
            block = np.array(matrix[start:stop], dtype=np.float32)
            del matrix
            yield start, block, names[start:stop]


@dataclass
class _PerSampleFiles:
    """A MERTools feature folder: `<name>.npy` ([D] or [T, D]) or `<name>/` of frame files."""
    path: Path
    dim: int
    entries: list[Path]  # one per sample, in plan order

    def blocks(self, names: list[str]) -> Iterator[tuple[int, np.ndarray, list[str]]]:
        step = _block_rows(self.dim)
        for start in range(0, len(names), step):
            stop = min(start + step, len(names))
            block = np.empty((stop - start, self.dim), dtype=np.float32)
            for i in range(start, stop):
                block[i - start] = _pooled_vector(self.entries[i], names[i], self.dim)
            yield start, block, names[start:stop]


# ---------------------------------------------------------------------- the plan

@dataclass
class ImportPlan:
    names: list[str]
    splits: list[str]                 # 'labeled' | 'unlabeled' | 'test'
    labels: list[str | None]          # project class name or None
    true_labels: list[str | None]     # hidden truth, evaluation only; never used for training
    texts: list[str | None]
    media: list[str | None]           # path relative to media_root
    media_root: str | None            # absolute folder the media paths live under
    modalities: dict[str, int]        # name -> dim, in column/flag order
    source: str                       # human description for the log
    sources: dict[str, _FeatureSource] = field(default_factory=dict, repr=False)

    def check_trainable(self, classes: list[str]) -> None:
        """Refuse, before any feature is read, labels no round could train on (folds.gold_problem):
        the project could not be imported into again."""
        counts = [sum(1 for s, l in zip(self.splits, self.labels) if s == Split.LABELED and l == c) for c in classes]
        if problem := gold_problem(counts, classes):
            raise InputError(f"{self.source}: {problem}")

    def write_features(self, writer: FeatureWriter, progress: ProgressFn | None = None) -> None:
        """Stream every modality into `writer`, checking each row; raises InputError on the
        first bad row (the caller aborts the writer)."""
        total = max(1, len(self.names) * len(self.modalities))
        done = 0
        for name in self.modalities:
            src = self.sources[name]
            for start, block, names in src.blocks(self.names):
                writer.write(name, start, block, source=str(src.path), sample_names=names)
                done += len(block)
                if progress:
                    progress(f"importing {name}", done / total)


# ---------------------------------------------------------------------- native format

def plan_native(folder: Path, classes: list[str]) -> ImportPlan:
    """`folder/samples.csv` (name, split, label[, text, media, true_label]) and one
    `<modality>.npy` per modality (sorted by file name) with one row per sample."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    csv = folder / "samples.csv"
    df = read_csv(csv, required=("name", "split", "label"))
    if df.empty:
        raise InputError(f"{csv}: no samples (the file has a header but no rows)")
    names = _names(df["name"], csv, first_line=2)
    lookup = _class_lookup(classes)
    splits, labels, true_labels, texts, media = [], [], [], [], []
    has_media = "media" in df.columns
    for i, row in enumerate(df.itertuples(index=False)):
        where = f"{csv}: sample {shown(names[i])} (line {i + 2})"
        split = _split(row.split, where)
        label = _label(row.label, lookup, where, classes, "label")
        if split == Split.LABELED and label is None:
            raise InputError(f"{where}: split 'labeled' needs a label")
        if split == Split.UNLABELED and label is not None:
            raise InputError(f"{where}: split 'unlabeled' must have an empty label, got {shown(row.label)} "
                             f"(hidden truth goes in the true_label column)")
        splits.append(split)
        labels.append(label)
        true_labels.append(_label(getattr(row, "true_label", ""), lookup, where, classes, "true_label"))
        texts.append(getattr(row, "text", "") or None)
        media.append(_native_media(folder, row.media, where) if has_media and row.media else None)
    matrices = _native_matrices(folder, names)
    return ImportPlan(
        names=names, splits=splits, labels=labels, true_labels=true_labels, texts=texts,
        media=media, media_root=str(folder.resolve()) if any(media) else None,
        modalities={m: s.dim for m, s in matrices.items()},
        source=f"native folder {folder.resolve()}", sources=dict(matrices))


def _native_media(folder: Path, value: str, where: str) -> str:
    rel = Path(value)
    if rel.is_absolute():
        raise InputError(f"{where}: media path {shown(value)} must be relative to {folder}")
    root = folder.resolve()
    full = (root / rel).resolve()
    if not full.is_relative_to(root):
        raise InputError(f"{where}: media path {shown(value)} points outside {folder}")
    if not full.is_file():
        raise InputError(f"{where}: media file {shown(value)} does not exist")
    return full.relative_to(root).as_posix()


def _native_matrices(folder: Path, names: list[str]) -> dict[str, _NativeMatrix]:
    files = sorted(folder.glob("*.npy"))
    for path in files:
        if not path.is_file():  # skipped silently, a modality would go missing without a word
            raise InputError(f"{path}: not a regular file (a folder, a device or a broken link); a feature "
                             "matrix <modality>.npy is a file")
    if not files:
        raise InputError(f"{folder}: no feature matrix (<modality>.npy) beside samples.csv")
    # Matrix-level problems concern every sample: the message says so.
    every = _all_samples(names)
    out = {}
    for path in files:
        check_modality_name(path.stem, str(path))
        m = _load_npy(path, mmap=True, who=every)
        if m.ndim != 2:
            raise InputError(f"{path}: {every}: expected a matrix [samples, dim], got shape {m.shape}")
        if m.dtype.kind not in "fiu":
            raise InputError(f"{path}: {every}: not numeric (dtype {m.dtype})")
        if m.shape[0] < len(names):
            raise InputError(f"{path}: sample {shown(names[m.shape[0]])} (row {m.shape[0] + 1} of samples.csv) "
                             f"has no row: the matrix has {m.shape[0]} rows for {len(names)} samples")
        if m.shape[0] > len(names):
            raise InputError(f"{path}: row {len(names) + 1} has no sample (last sample {shown(names[-1])}): "
                             f"the matrix has {m.shape[0]} rows for {len(names)} samples in samples.csv")
        out[path.stem] = _NativeMatrix(path, int(m.shape[1]))
    return out


# ---------------------------------------------------------------------- MERTools format

def plan_mertools(labels: Path, features_root: Path, modality_map: dict[str, str], classes: list[str],
                  transcripts: Path | None = None, media: Path | None = None) -> ImportPlan:
    """MER2024 baseline layout: `label-6way.npz` (train_corpus -> labeled, test1_corpus ->
    unlabeled pool) or a CSV `name, discrete`; `ROOT/<feature>/<name>.npy` ([D] or [T, D],
    mean-pooled) or `ROOT/<feature>/<name>/` of per-frame `.npy` files (averaged)."""
    labels, features_root = Path(labels), Path(features_root)
    if not modality_map:
        raise InputError("MERTools import: map at least one modality to a feature folder")
    names, splits, label_values = _mertools_labels(labels, classes)
    for name in names:
        if problem := sample_name_problem(name):
            raise InputError(f"{labels}: sample {shown(name)} {problem}")
    sources = {}
    root = features_root.resolve()
    for modality, folder_name in modality_map.items():
        where = f"--modality {shown(f'{modality}={folder_name}')}"
        check_modality_name(modality, where)
        if Path(folder_name).is_absolute() or not (root / folder_name).resolve().is_relative_to(root):
            raise InputError(f"{where}: the feature folder must lie under --features {features_root}")
        sources[modality] = _feature_folder(features_root / folder_name, names)
    texts: list[str | None] = _transcripts(Path(transcripts), names) if transcripts else [None] * len(names)
    media_root: str | None = None
    clips: list[str | None] = [None] * len(names)
    if media:
        media_root, clips = _media_clips(Path(media), names)
    described = ", ".join(f"{m}={f}" for m, f in modality_map.items())
    return ImportPlan(
        names=names, splits=splits, labels=label_values, true_labels=[None] * len(names),
        texts=texts, media=clips, media_root=media_root,
        modalities={m: s.dim for m, s in sources.items()},
        source=f"MERTools labels {labels.resolve()}, features {features_root.resolve()} ({described})",
        sources=dict(sources))


def _mertools_labels(path: Path, classes: list[str]) -> tuple[list[str], list[str], list[str | None]]:
    if not path.is_file():
        raise InputError(f"{path}: no such label file")
    if path.suffix.lower() == ".npz":
        return _npz_labels(path, classes)
    return _csv_labels(path, classes)


def _npz_labels(path: Path, classes: list[str]) -> tuple[list[str], list[str], list[str | None]]:
    npz = load_npz(path)  # never np.load(allow_pickle=True): a pickle can run any code
    if "train_corpus" not in npz:
        raise InputError(f"{path}: no train_corpus in the label file (has {', '.join(npz) or 'nothing'})")
    train = _corpus(npz, "train_corpus", path)
    pool = _corpus(npz, "test1_corpus", path) if "test1_corpus" in npz else {}
    if not train:
        raise InputError(f"{path}: empty label file: train_corpus holds no samples")
    lookup = _class_lookup(classes)
    names: list[str] = []
    splits: list[str] = []
    labels: list[str | None] = []
    for name, entry in train.items():
        where = f"{path}: sample {shown(name)} (train_corpus)"
        if not isinstance(entry, dict) or "emo" not in entry:
            raise InputError(f"{where}: entry has no 'emo' label")
        names.append(name)
        splits.append(Split.LABELED)
        labels.append(_required_label(entry["emo"], lookup, where, classes))
    for name in pool:  # test1's emo values are placeholders: the pool is unlabeled
        if name in train:
            raise InputError(f"{path}: sample {shown(name)}: duplicate sample, in both train_corpus and test1_corpus")
        names.append(name)
        splits.append(Split.UNLABELED)
        labels.append(None)
    return names, splits, labels


def _corpus(npz: dict[str, object], key: str, path: Path) -> dict[str, object]:
    value = npz[key]
    if not isinstance(value, dict):
        raise InputError(f"{path}: {key} is not a dict of samples (found {type(value).__name__})")
    return {str(k): v for k, v in value.items()}


def _csv_labels(path: Path, classes: list[str]) -> tuple[list[str], list[str], list[str | None]]:
    df = read_csv(path, required=("name", "discrete"))
    if df.empty:
        raise InputError(f"{path}: empty label file: no samples (a header but no rows)")
    names = _names(df["name"], path, first_line=2)
    lookup = _class_lookup(classes)
    labels: list[str | None] = [_required_label(v, lookup, f"{path}: sample {shown(n)} (line {i + 2})", classes)
              for i, (n, v) in enumerate(zip(names, df["discrete"]))]
    return names, [Split.LABELED] * len(names), labels


def _feature_folder(folder: Path, names: list[str]) -> _PerSampleFiles:
    """Find each sample's file or frame folder (one directory listing) and the dimension
    (from the first sample); every file's own dimension is checked while streaming."""
    if not folder.is_dir():
        raise InputError(f"{folder}: no such feature folder")
    files, dirs = set(), set()
    with os.scandir(folder) as it:
        for entry in it:
            if entry.is_dir():
                dirs.add(entry.name)
            elif entry.name.endswith(".npy"):
                files.add(entry.name[:-4])
    entries = []
    for name in names:
        if name in files:
            entries.append(folder / f"{name}.npy")
        elif name in dirs:
            entries.append(folder / name)
        else:
            raise InputError(f"{folder}: sample {shown(name)}: missing sample, no {name}.npy and no {name}/ folder")
    dim = int(_pooled_vector(entries[0], names[0], None).shape[0])
    return _PerSampleFiles(folder, dim, entries)


def _pooled_vector(path: Path, name: str, dim: int | None) -> np.ndarray:
    """A sample's utterance vector: `[D]` as is, `[T, D]` mean-pooled over T, a folder of
    per-frame `[D]` files averaged. Checks the dimension and NaN/inf."""
    if path.is_dir():
        frames = sorted(path.glob("*.npy"))
        if not frames:
            raise InputError(f"{path}: sample {shown(name)}: frame folder holds no .npy files")
        vectors = [_pooled_vector(f, name, dim) for f in frames]
        if dim is None:  # first sample defines the dimension: frames must agree among themselves
            for f, v in zip(frames, vectors):
                if v.shape != vectors[0].shape:
                    raise InputError(f"{f}: sample {shown(name)}: wrong dimension, expected "
                                     f"{vectors[0].shape[0]} (as {frames[0].name}), got {v.shape[0]}")
        return np.asarray(np.mean(vectors, axis=0, dtype=np.float64), dtype=np.float32)
    arr = _load_npy(path, mmap=False, who=f"sample {shown(name)}")
    if arr.dtype.kind not in "fiu":
        raise InputError(f"{path}: sample {shown(name)}: not numeric (dtype {arr.dtype})")
    if arr.ndim == 2 and arr.shape[0] == 0:
        raise InputError(f"{path}: sample {shown(name)}: no frames (shape {arr.shape})")
    if arr.ndim not in (1, 2) or (dim is not None and arr.shape[-1] != dim):
        expected = f"[{dim}] or [T, {dim}]" if dim is not None else "[D] or [T, D]"
        raise InputError(f"{path}: sample {shown(name)}: wrong dimension, expected {expected}, got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError(f"{path}: sample {shown(name)}: NaN or inf values")
    vector = arr if arr.ndim == 1 else arr.mean(axis=0, dtype=np.float64)
    return np.asarray(vector, dtype=np.float32)


def _transcripts(path: Path, names: list[str]) -> list[str | None]:
    df = read_csv(path, required=("name",))
    text_columns = [c for c in TEXT_COLUMNS if c in df.columns]
    if not text_columns:
        raise InputError(f"{path}: no text column (need one of {', '.join(TEXT_COLUMNS)})")
    text_of: dict[str, str] = {}
    for i, row in enumerate(df.itertuples(index=False)):
        name = row.name
        if name in text_of:
            raise InputError(f"{path}: sample {shown(name)} (line {i + 2}): duplicate sample")
        text = next((getattr(row, c) for c in text_columns if getattr(row, c)), "")
        text_of[name] = text
    return [text_of.get(n) or None for n in names]


def _media_clips(folder: Path, names: list[str]) -> tuple[str, list[str | None]]:
    """One clip per sample where `<name>.<ext>` exists (video before audio formats)."""
    if not folder.is_dir():
        raise InputError(f"{folder}: no such media folder")
    rank = {ext: i for i, ext in enumerate(MEDIA_SUFFIXES)}
    best: dict[str, str] = {}
    with os.scandir(folder) as it:
        for entry in it:
            stem, ext = os.path.splitext(entry.name)
            ext = ext.lower()
            if ext in rank and entry.is_file():
                if stem not in best or rank[ext] < rank[os.path.splitext(best[stem])[1].lower()]:
                    best[stem] = entry.name
    return str(folder.resolve()), [best.get(n) for n in names]


# ---------------------------------------------------------------------- shared helpers

def read_csv(path: Path, required: Sequence[str]) -> pd.DataFrame:
    """All cells as stripped strings ('' where empty); column names stripped and lower-cased."""
    try:
        data = read_bytes(path, "", MAX_CSV_BYTES)  # a regular file, bounded
    except UsageError as e:
        raise InputError(str(e)) from None
    nul = data.find(b"\0")
    if nul >= 0:  # the C parser would end the cell there, silently
        raise InputError(f"{path}: a NUL byte at offset {nul}; not a text CSV")
    try:
        df = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty file (no header, no samples)") from None
    except Exception as e:
        raise InputError(f"{path}: not a readable CSV ({_one_line(e)})") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing required column {shown(missing[0])} "
                         f"(need {', '.join(required)}; found {', '.join(df.columns)})")
    return df.apply(lambda col: col.str.strip())


def _names(column: pd.Series, path: Path, first_line: int) -> list[str]:
    names = column.tolist()
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        line = i + first_line
        if not name:
            raise InputError(f"{path}: sample on line {line}: empty name")
        if problem := sample_name_problem(name):
            raise InputError(f"{path}: sample {shown(name)} (line {line}) {problem}")
        if name in seen:
            raise InputError(f"{path}: sample {shown(name)}: duplicate sample name (lines {seen[name]} and {line})")
        seen[name] = line
    return names


def _split(value: str, where: str) -> str:
    split = value.lower()
    if split not in tuple(Split):
        raise InputError(f"{where}: bad split {shown(value)} (must be {', '.join(Split)})")
    return split


def _class_lookup(classes: list[str]) -> dict[str, str]:
    return {c.lower(): c for c in classes}


def _label(value: object, lookup: dict[str, str], where: str, classes: list[str], column: str) -> str | None:
    """The project's class name for `value` (case-insensitive), None for an empty cell."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    if text.lower() not in lookup:
        raise InputError(f"{where}: unknown class {shown(text)} in {column} (classes: {', '.join(classes)})")
    return lookup[text.lower()]


def _required_label(value: object, lookup: dict[str, str], where: str, classes: list[str]) -> str:
    label = _label(value, lookup, where, classes, "label")
    if label is None:
        raise InputError(f"{where}: empty label")
    return label


def _load_npy(path: Path, mmap: bool, who: str) -> np.ndarray:
    """np.load without pickles; a corrupt or truncated file becomes an InputError naming
    `who` (the sample, or all samples for a native matrix)."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as e:
        raise InputError(f"{path}: {who}: unreadable .npy file ({_one_line(e)})") from None


def _all_samples(names: list[str]) -> str:
    return f"all {len(names)} samples ({shown(names[0])} to {shown(names[-1])})"


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or e.__class__.__name__


