"""Synthetic MER-like data: proportions, splits, determinism, format, learnability."""
from __future__ import annotations

import filecmp
import wave

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import StandardScaler

from mersemi.engine.errors import InputError
from mersemi.engine.synthetic import CLASSES, HINTS, MER2024_LABELED, SCALES, class_counts, make_synthetic


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn") / "data"
    return out, make_synthetic(out, scale=0.5, seed=7)


def test_class_counts_follow_mer2024_proportions():
    assert class_counts(5030) == MER2024_LABELED
    assert class_counts(2000) == [496, 480, 413, 290, 245, 76]
    assert sum(class_counts(12345)) == 12345
    assert class_counts(12) == [2] * 6 and min(class_counts(13)) == 2   # every class trainable even when tiny
    mer = SCALES["mer2024"]
    assert (mer["labeled"], mer["unlabeled"]) == (5030, 115595)
    assert mer["dims"] == {"audio": 1024, "text": 5120, "video": 768}


def test_splits_labels_and_summary(small):
    out, summary = small
    df = pd.read_csv(out / "samples.csv", keep_default_na=False)
    assert list(df.columns) == ["name", "split", "label", "true_label", "text", "media"]
    assert summary["samples"] == {"labeled": 1000, "unlabeled": 5000, "test": 500}
    assert df["split"].value_counts().to_dict() == summary["samples"]
    assert df["name"].is_unique
    labeled, pool, test = (df[df["split"] == s] for s in ("labeled", "unlabeled", "test"))
    assert [int((labeled["label"] == c).sum()) for c in CLASSES] == class_counts(1000)
    assert summary["labeled_per_class"] == dict(zip(CLASSES, class_counts(1000)))
    assert (labeled["label"] == labeled["true_label"]).all() and (test["label"] == test["true_label"]).all()
    assert (pool["label"] == "").all() and pool["true_label"].isin(CLASSES).all()
    # the pool comes from the same class distribution
    assert [int((pool["true_label"] == c).sum()) for c in CLASSES] == class_counts(5000)
    for m, dim in {"audio": 128, "text": 256, "video": 64}.items():
        x = np.load(out / f"{m}.npy", mmap_mode="r")
        assert x.shape == (len(df), dim) and x.dtype == np.float16
        assert np.isfinite(x[:500]).all()


def test_texts_hint_without_giving_the_class_away(small):
    out, _ = small
    df = pd.read_csv(out / "samples.csv", keep_default_na=False)
    assert (df["text"].str.len() > 10).all()
    own = [any(h in t for h in HINTS[c]) for t, c in zip(df["text"], df["true_label"])]
    assert 0.5 < np.mean(own) < 0.8  # mostly the class's own hint words, not always
    assert not df["text"].str.contains("|".join(CLASSES[1:]), case=False).any()  # no class names


def test_clips_are_short_wavs_referenced_in_media(small):
    out, summary = small
    df = pd.read_csv(out / "samples.csv", keep_default_na=False)
    media = df.loc[df["media"] != "", "media"]
    assert len(media) == summary["clips"] == 300
    for rel in media.iloc[:5]:
        with wave.open(str(out / rel)) as w:
            assert w.getframerate() == 8000 and w.getnframes() == 4000 and w.getnchannels() == 1
    assert sorted(p.name for p in (out / "media").iterdir()) == sorted(m.split("/")[1] for m in media)


def test_deterministic_for_a_seed(tmp_path):
    a = make_synthetic(tmp_path / "a", scale=0.05, seed=3)
    b = make_synthetic(tmp_path / "b", scale=0.05, seed=3)
    make_synthetic(tmp_path / "c", scale=0.05, seed=4)
    files = ["samples.csv", "audio.npy", "text.npy", "video.npy"]
    assert filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", files, shallow=False)[0] == files
    assert filecmp.cmpfiles(tmp_path / "a", tmp_path / "c", files, shallow=False)[0] == []
    assert a["bytes"] == b["bytes"]


def test_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not an empty folder"):
        make_synthetic(tmp_path / "x", scale=0.05)
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["keep.txt"]
    with pytest.raises(InputError, match="scale"):
        make_synthetic(tmp_path / "y", scale="huge")


def test_learnable_but_not_linearly_separable(small):
    """Logistic regression on the labeled audio features: far above chance (1/6), far from
    perfect; audio is the most informative modality and video the least."""
    out, _ = small
    df = pd.read_csv(out / "samples.csv", keep_default_na=False)
    train, test = (df["split"] == "labeled").to_numpy(), (df["split"] == "test").to_numpy()
    acc = {}
    for m in ("audio", "video"):
        x = np.load(out / f"{m}.npy").astype(np.float32)
        scaler = StandardScaler().fit(x[train])
        model = LogisticRegression(max_iter=500).fit(scaler.transform(x[train]), df["label"][train])
        acc[m] = accuracy_score(df["label"][test], model.predict(scaler.transform(x[test])))
    assert 0.55 < acc["audio"] < 0.9, acc
    assert 0.25 < acc["video"] < acc["audio"] - 0.1, acc
