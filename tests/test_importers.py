"""Importers: native and MERTools layouts into a FeatureStore, and every kind of bad input."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mersemi.engine.errors import InputError
from mersemi.engine.features import FeatureStore, FeatureWriter
from mersemi.engine.importers import ImportPlan, plan_mertools, plan_native
from mersemi.engine.synthetic import make_synthetic
from fixtures import CLASSES, build_mertools, write_wav


def run_import(plan: ImportPlan, folder: Path, dtype: str = "float32") -> FeatureStore:
    """What the orchestration layer does: stream into a writer, commit, or abort on error."""
    with FeatureWriter(folder, len(plan.names), plan.modalities, dtype) as writer:
        plan.write_features(writer)
        writer.commit()
    return FeatureStore(folder)


def expect_error(make, file, sample: str | None, problem: str, folder: Path | None = None):
    """`make()` (planning, or planning and streaming into `folder`) raises one InputError
    whose one-line message names the file, the sample (None: a whole-file problem that
    concerns no one sample) and the problem; `folder` is left unchanged."""
    before = sorted(folder.rglob("*")) if folder is not None and folder.exists() else None
    with pytest.raises(InputError) as info:
        plan = make()
        if folder is not None:
            run_import(plan, folder)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(file) in msg, msg
    if sample is not None:
        assert repr(sample) in msg or sample in msg, msg
    assert problem in msg, msg
    if folder is not None:
        assert (sorted(folder.rglob("*")) if folder.exists() else None) == before
    return msg


# ---------------------------------------------------------------------- native

def write_native(folder: Path, rows: list[dict], matrices: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(folder / "samples.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    for name, m in matrices.items():
        np.save(folder / f"{name}.npy", m)
    return folder


def small_native(folder: Path, n: int = 6, **overrides) -> Path:
    rows = [{"name": f"s{i}", "split": ["labeled", "unlabeled", "test"][i % 3],
             "label": "" if i % 3 == 1 else CLASSES[i % 6], "text": f"t{i}", "media": ""} for i in range(n)]
    rng = np.random.default_rng(0)
    matrices = {"audio": rng.normal(size=(n, 3)), "video": rng.normal(size=(n, 2)).astype(np.float16)}
    matrices.update(overrides)
    return write_native(folder, rows, matrices)


def test_native_round_trip_from_synthetic_folder(tmp_path):
    src = tmp_path / "syn"
    summary = make_synthetic(src, scale=0.02, seed=3)
    plan = plan_native(src, CLASSES)

    df = pd.read_csv(src / "samples.csv", keep_default_na=False)
    assert plan.names == df["name"].tolist()
    assert plan.splits == df["split"].tolist()
    assert plan.labels == [lab or None for lab in df["label"]]
    assert plan.true_labels == df["true_label"].tolist()
    assert plan.texts == df["text"].tolist()
    assert plan.media == [m or None for m in df["media"]]
    assert plan.media_root == str(src.resolve())
    assert all((Path(plan.media_root) / m).is_file() for m in plan.media if m)
    assert plan.modalities == summary["modalities"] == {"audio": 128, "text": 256, "video": 64}
    assert "native" in plan.source

    progress = []
    with FeatureWriter(tmp_path / "features", len(plan.names), plan.modalities) as writer:
        plan.write_features(writer, lambda msg, frac: progress.append(frac))
        writer.commit()
    store = FeatureStore(tmp_path / "features")
    for m in plan.modalities:  # float16 source into float16 storage: bit-identical
        np.testing.assert_array_equal(store.matrix(m), np.load(src / f"{m}.npy"))
    assert progress and progress[-1] == pytest.approx(1.0) and progress == sorted(progress)


def test_native_labels_map_case_insensitively_and_optional_columns(tmp_path):
    rows = [{"name": "a", "split": "Labeled", "label": "HAPPY"},
            {"name": "b", "split": "unlabeled", "label": ""},
            {"name": "c", "split": "test", "label": ""}]
    folder = write_native(tmp_path / "n", rows, {"b_mod": np.ones((3, 2)), "a_mod": np.zeros((3, 4))})
    plan = plan_native(folder, CLASSES)
    assert plan.labels == ["happy", None, None]
    assert plan.splits == ["labeled", "unlabeled", "test"]
    assert plan.texts == [None] * 3 and plan.media == [None] * 3 and plan.media_root is None
    assert plan.true_labels == [None] * 3
    assert list(plan.modalities) == ["a_mod", "b_mod"]  # sorted file names
    store = run_import(plan, tmp_path / "f")
    np.testing.assert_array_equal(store.matrix("b_mod"), np.ones((3, 2)))


def test_native_media_must_exist_inside_the_folder(tmp_path):
    folder = small_native(tmp_path / "n")
    (folder / "clips").mkdir()
    write_wav(folder / "clips" / "s0.wav")
    df = pd.read_csv(folder / "samples.csv", keep_default_na=False)
    df.loc[0, "media"] = "clips/s0.wav"
    df.to_csv(folder / "samples.csv", index=False)
    plan = plan_native(folder, CLASSES)
    assert plan.media[0] == "clips/s0.wav" and plan.media_root == str(folder.resolve())

    for bad, problem in [("../outside.wav", "outside"), ("clips/none.wav", "does not exist"),
                         (str(folder / "clips" / "s0.wav"), "must be relative")]:
        (tmp_path / "outside.wav").write_bytes(b"x")
        df.loc[1, "media"] = bad
        df.to_csv(folder / "samples.csv", index=False)
        expect_error(lambda: plan_native(folder, CLASSES), folder / "samples.csv", "s1", problem)


# ---------------------------------------------------------------------- MERTools

def test_mertools_npz_all_layouts_transcripts_and_media(tmp_path):
    data = build_mertools(tmp_path / "mer")
    plan = plan_mertools(data.labels, data.features, data.modality_map, CLASSES,
                         transcripts=data.transcripts, media=data.media)
    assert plan.names == data.names
    assert plan.splits == ["labeled"] * len(data.train) + ["unlabeled"] * len(data.pool)
    assert plan.labels == [e.lower() for e in data.train.values()] + [None] * len(data.pool)
    assert plan.true_labels == [None] * len(data.names)
    assert plan.modalities == {"audio": 6, "text": 10, "video": 4}
    assert plan.texts == [data.texts.get(n) for n in data.names]
    assert plan.texts[0].startswith("第")  # no English: falls back to Chinese
    assert plan.texts[-1] is None          # not in the transcripts
    assert plan.media == [data.clips.get(n) for n in data.names]
    assert plan.media_root == str(data.media.resolve())

    store = run_import(plan, tmp_path / "features")
    for m, by_name in data.expected.items():
        expected = np.stack([by_name[n] for n in data.names])
        np.testing.assert_allclose(store.matrix(m), expected, rtol=1e-6, atol=1e-6)


def test_mertools_csv_labels_without_extras(tmp_path):
    data = build_mertools(tmp_path / "mer", label_format="csv", modalities=("audio",),
                          transcripts=False, media=False)
    plan = plan_mertools(data.labels, data.features, data.modality_map, CLASSES)
    assert plan.splits == ["labeled"] * len(data.train)
    assert plan.labels == [e.lower() for e in data.train.values()]
    assert plan.texts == [None] * len(plan.names) and plan.media_root is None
    store = run_import(plan, tmp_path / "features", dtype="float16")
    assert store.modalities == {"audio": 6} and store.dtype == "float16"


def test_mertools_prefers_video_clip_and_english_text(tmp_path):
    data = build_mertools(tmp_path / "mer", modalities=("audio",))
    first = data.names[0]
    write_wav(data.media / f"{first}.wav")
    (data.media / f"{first}.MP4").write_bytes(b"x")
    plan = plan_mertools(data.labels, data.features, data.modality_map, CLASSES,
                         transcripts=data.transcripts, media=data.media)
    assert plan.media[0] == f"{first}.MP4"
    assert plan.texts[1] == "sentence number 1"


# ---------------------------------------------------------------------- bad input, one test each

@pytest.fixture
def mer(tmp_path):
    return build_mertools(tmp_path / "mer")


def plan_of(data, **kw):
    return lambda: plan_mertools(data.labels, data.features, data.modality_map, CLASSES,
                                 transcripts=data.transcripts, media=data.media, **kw)


def test_missing_sample_in_feature_folder(mer, tmp_path):
    name = mer.names[3]
    mer.feature_file("audio", name).unlink()
    expect_error(plan_of(mer), mer.features / mer.modality_map["audio"], name, "missing sample")


def test_missing_sample_in_frame_folder_layout(mer):
    import shutil
    name = mer.pool[-1]
    shutil.rmtree(mer.feature_file("video", name))
    expect_error(plan_of(mer), mer.features / mer.modality_map["video"], name, "missing sample")


def test_native_sample_with_no_row(tmp_path):
    folder = small_native(tmp_path / "n", audio=np.zeros((5, 3)))
    expect_error(lambda: plan_native(folder, CLASSES), folder / "audio.npy", "s5", "has no row")


def test_native_matrix_with_too_many_rows(tmp_path):
    folder = small_native(tmp_path / "n", video=np.zeros((7, 2)))
    expect_error(lambda: plan_native(folder, CLASSES), folder / "video.npy", "s5", "7 rows for 6 samples")


def test_duplicate_sample_names_native(tmp_path):
    folder = small_native(tmp_path / "n")
    df = pd.read_csv(folder / "samples.csv", keep_default_na=False)
    df.loc[4, "name"] = "s2"
    df.to_csv(folder / "samples.csv", index=False)
    expect_error(lambda: plan_native(folder, CLASSES), folder / "samples.csv", "s2", "duplicate sample")


def test_duplicate_sample_names_csv_labels(tmp_path):
    data = build_mertools(tmp_path / "mer", label_format="csv", modalities=("audio",))
    with open(data.labels, "a") as f:
        f.write(f"{data.names[2]},sad\n")
    expect_error(plan_of(data), data.labels, data.names[2], "duplicate sample")


def test_duplicate_sample_between_train_and_test1(tmp_path):
    data = build_mertools(tmp_path / "mer", modalities=("audio",))
    dup = data.names[0]
    np.savez(data.labels, train_corpus={n: {"emo": "sad"} for n in data.train},
             test1_corpus={n: {"emo": "neutral"} for n in data.pool + [dup]})
    expect_error(plan_of(data), data.labels, dup, "duplicate sample")


def test_file_with_wrong_dimension(mer, tmp_path):
    name = mer.names[5]
    np.save(mer.feature_file("audio", name), np.zeros(5, np.float32))
    project = tmp_path / "project" / "features"
    project.mkdir(parents=True)
    expect_error(plan_of(mer), mer.feature_file("audio", name), name, "wrong dimension", folder=project)


def test_frame_with_wrong_dimension(mer, tmp_path):
    name = mer.names[6]
    frame = sorted(mer.feature_file("video", name).glob("*.npy"))[0]
    np.save(frame, np.zeros(3, np.float32))
    expect_error(plan_of(mer), frame, name, "wrong dimension", folder=tmp_path / "features")


def test_nan_values_in_mertools_frames(mer, tmp_path):
    name = mer.pool[1]
    frames = np.load(mer.feature_file("text", name))
    frames[0, 3] = np.nan
    np.save(mer.feature_file("text", name), frames)
    project = tmp_path / "project" / "features"
    project.mkdir(parents=True)
    expect_error(plan_of(mer), mer.feature_file("text", name), name, "NaN or inf", folder=project)


def test_inf_values_in_native_matrix(tmp_path):
    audio = np.zeros((6, 3))
    audio[4, 1] = -np.inf
    folder = small_native(tmp_path / "n", audio=audio)
    project = tmp_path / "project" / "features"
    project.mkdir(parents=True)
    expect_error(lambda: plan_native(folder, CLASSES), folder / "audio.npy", "s4", "NaN or inf", folder=project)


def test_unknown_class_in_npz(tmp_path):
    data = build_mertools(tmp_path / "mer", modalities=("audio",))
    train = {n: {"emo": e} for n, e in data.train.items()}
    bad = data.names[7]
    train[bad] = {"emo": "bored"}
    np.savez(data.labels, train_corpus=train, test1_corpus={})
    expect_error(plan_of(data), data.labels, bad, "unknown class 'bored'")


def test_unknown_class_in_native_label(tmp_path):
    folder = small_native(tmp_path / "n")
    df = pd.read_csv(folder / "samples.csv", keep_default_na=False)
    df.loc[2, "label"] = "contempt"
    df.to_csv(folder / "samples.csv", index=False)
    expect_error(lambda: plan_native(folder, CLASSES), folder / "samples.csv", "s2", "unknown class 'contempt'")


def test_empty_npz_label_file(tmp_path):
    data = build_mertools(tmp_path / "mer", modalities=("audio",))
    np.savez(data.labels, train_corpus={}, test1_corpus={})
    expect_error(plan_of(data), data.labels, None, "empty label file: train_corpus holds no samples")


@pytest.mark.parametrize("content", ["", "name,discrete\n"])
def test_empty_csv_label_file(tmp_path, content):
    data = build_mertools(tmp_path / "mer", label_format="csv", modalities=("audio",))
    data.labels.write_text(content)
    expect_error(plan_of(data), data.labels, None, "no samples")


def test_corrupt_npy_in_feature_folder(mer, tmp_path):
    name = mer.names[2]
    mer.feature_file("audio", name).write_bytes(b"\x93NUMPY garbage")
    expect_error(plan_of(mer), mer.feature_file("audio", name), name, "unreadable .npy",
                 folder=tmp_path / "features")


def test_truncated_native_matrix(tmp_path):
    folder = small_native(tmp_path / "n")
    raw = (folder / "audio.npy").read_bytes()
    (folder / "audio.npy").write_bytes(raw[:-20])
    expect_error(lambda: plan_native(folder, CLASSES), folder / "audio.npy", "'s0' to 's5'", "unreadable .npy")


def test_corrupt_npz_label_file(mer):
    mer.labels.write_bytes(b"PK\x03\x04 not really a zip")
    expect_error(plan_of(mer), mer.labels, None, "unreadable label file")


@pytest.mark.parametrize("column", ["name", "split", "label"])
def test_samples_csv_without_required_column(tmp_path, column):
    folder = small_native(tmp_path / "n")
    df = pd.read_csv(folder / "samples.csv", keep_default_na=False).drop(columns=[column])
    df.to_csv(folder / "samples.csv", index=False)
    expect_error(lambda: plan_native(folder, CLASSES), folder / "samples.csv", None,
                 f"missing required column '{column}'")


def test_bad_split_value(tmp_path):
    folder = small_native(tmp_path / "n")
    df = pd.read_csv(folder / "samples.csv", keep_default_na=False)
    df.loc[3, "split"] = "train"
    df.to_csv(folder / "samples.csv", index=False)
    expect_error(lambda: plan_native(folder, CLASSES), folder / "samples.csv", "s3", "bad split 'train'")


def test_labeled_row_without_label_and_unlabeled_row_with_one(tmp_path):
    folder = small_native(tmp_path / "n")
    df = pd.read_csv(folder / "samples.csv", keep_default_na=False)
    df.loc[0, "label"] = ""
    df.to_csv(folder / "samples.csv", index=False)
    expect_error(lambda: plan_native(folder, CLASSES), folder / "samples.csv", "s0", "needs a label")
    df.loc[0, "label"] = "sad"
    df.loc[1, "label"] = "sad"
    df.to_csv(folder / "samples.csv", index=False)
    expect_error(lambda: plan_native(folder, CLASSES), folder / "samples.csv", "s1", "must have an empty label")


def test_error_while_streaming_leaves_the_project_features_folder_as_it_was(mer, tmp_path):
    """The last modality's last sample is bad: everything written before it is removed."""
    name = mer.pool[-1]
    frame = sorted(mer.feature_file("video", name).glob("*.npy"))[-1]
    np.save(frame, np.full(4, np.inf, np.float32))
    features = tmp_path / "project" / "features"
    features.mkdir(parents=True)
    expect_error(plan_of(mer), frame, name, "NaN or inf", folder=features)
    assert list(features.iterdir()) == []


def test_missing_folders_and_transcript_columns_are_named(mer, tmp_path):
    expect_error(lambda: plan_mertools(mer.labels, mer.features, {"audio": "no-such-feature"}, CLASSES),
                 mer.features / "no-such-feature", None, "no such feature folder")
    expect_error(lambda: plan_mertools(mer.labels, mer.features, mer.modality_map, CLASSES,
                                       media=tmp_path / "nothing"),
                 tmp_path / "nothing", None, "no such media folder")
    pd.DataFrame({"name": mer.names, "french": "x"}).to_csv(mer.transcripts, index=False)
    expect_error(plan_of(mer), mer.transcripts, None, "no text column")
