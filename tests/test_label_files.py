"""MERTools label files are read without running their pickles (issue 10, point 6): an .npz
whose pickle calls os.system is refused naming the file, and real label files still import."""
from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mersemi.engine.errors import InputError
from mersemi.engine.importers import plan_mertools
from fixtures import CLASSES, build_mertools
from test_cli import run, snapshot


class RunsACommand:
    """Unpickling this runs `command` in a shell (what a hostile label file carries)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class CallsGetattr:
    """A subtler gadget: builtins.getattr, then a call of what it returns."""

    def __reduce__(self):
        return getattr, ("text", "upper")


def hostile_label_files(folder: Path, marker: Path) -> dict[str, Path]:
    """Label files that each run `touch marker` when unpickled by np.load(allow_pickle=True)."""
    folder.mkdir(parents=True, exist_ok=True)
    touch = RunsACommand(f"touch {marker}")
    files = {}
    files["in a sample entry"] = folder / "entry.npz"
    np.savez(files["in a sample entry"], train_corpus={"s1": {"emo": "happy", "x": touch}}, test1_corpus={})
    files["as the corpus"] = folder / "corpus.npz"
    np.savez(files["as the corpus"], train_corpus=np.array(touch, dtype=object))
    files["compressed"] = folder / "compressed.npz"
    np.savez_compressed(files["compressed"], train_corpus={"s1": {"emo": "happy"}},
                        test1_corpus={"s2": touch})
    # Not a zip at all: np.load(allow_pickle=True) falls back to unpickling the whole file.
    files["a bare pickle named .npz"] = folder / "bare.npz"
    files["a bare pickle named .npz"].write_bytes(pickle.dumps({"train_corpus": touch}))
    # A zip member that is a pickle rather than an .npy (np.load would reject it; so must we).
    files["a getattr gadget"] = folder / "gadget.npz"
    np.savez(files["a getattr gadget"], train_corpus={"s1": {"emo": "happy", "x": CallsGetattr()}})
    return files


@pytest.fixture
def mer(tmp_path):
    return build_mertools(tmp_path / "mer", modalities=("audio",), transcripts=False, media=False)


@pytest.mark.parametrize("kind", ["in a sample entry", "as the corpus", "compressed",
                                  "a bare pickle named .npz", "a getattr gadget"])
def test_pickled_code_in_a_label_file_is_refused_and_never_runs(kind, mer, tmp_path):
    marker = tmp_path / "pwned"
    label_file = hostile_label_files(tmp_path / "hostile", marker)[kind]
    with pytest.raises(InputError) as info:
        plan_mertools(label_file, mer.features, mer.modality_map, CLASSES)
    assert not marker.exists(), "the label file's pickle ran"
    msg = str(info.value)
    assert str(label_file) in msg and "\n" not in msg
    assert "refused" in msg or "not an .npz" in msg, msg


def test_hostile_label_file_through_the_command_line(mer, tmp_path, capsys):
    marker = tmp_path / "pwned"
    label_file = hostile_label_files(tmp_path / "hostile", marker)["in a sample entry"]
    assert run(capsys, "init", tmp_path / "p")[0] == 0
    before = snapshot(tmp_path / "p")
    args = ["--mertools", "--labels", label_file, "--features", mer.features, "--modality",
            f"audio={mer.modality_map['audio']}"]
    code, _, err = run(capsys, "import", tmp_path / "p", *args)
    assert code == 1 and err.count("\n") == 1 and str(label_file) in err, err
    assert "posix.system" in err or "os.system" in err, err
    assert not marker.exists()
    assert snapshot(tmp_path / "p") == before


def test_real_label_files_still_import(tmp_path):
    """dict-of-dicts corpora as MERTools writes them, with numpy scalars, arrays and strings."""
    data = build_mertools(tmp_path / "mer", modalities=("audio",), transcripts=False, media=False)
    train = {n: {"emo": e, "val": np.float64(-10.0), "onehot": np.eye(6, dtype=np.float32)[i % 6],
                 "tags": ["a", ("b", 1)], "ok": True, "note": None, "count": np.int64(i)}
             for i, (n, e) in enumerate(data.train.items())}
    test1 = {n: {"emo": "neutral", "val": -10} for n in data.pool}
    for writer in (np.savez, np.savez_compressed):
        writer(data.labels, train_corpus=train, test1_corpus=test1)
        plan = plan_mertools(data.labels, data.features, data.modality_map, CLASSES)
        assert plan.names == data.names
        assert plan.labels[:len(data.train)] == [e.lower() for e in data.train.values()]
        assert plan.splits == ["labeled"] * len(data.train) + ["unlabeled"] * len(data.pool)


def test_label_file_with_plain_arrays_beside_the_corpora(mer):
    """Other members (numeric arrays) are read without pickles and ignored."""
    train = {n: {"emo": e} for n, e in mer.train.items()}
    np.savez(mer.labels, train_corpus=train, test1_corpus={}, weights=np.arange(5.0))
    assert plan_mertools(mer.labels, mer.features, mer.modality_map, CLASSES).names == list(mer.train)


def test_object_array_of_other_types_is_refused(mer):
    """A class from numpy itself that is not an array or scalar is refused too."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array({"s1": {"emo": np.random.default_rng(0)}}, dtype=object))
    with zipfile.ZipFile(mer.labels, "w") as z:
        z.writestr("train_corpus.npy", buf.getvalue())
    with pytest.raises(InputError, match="refused"):
        plan_mertools(mer.labels, mer.features, mer.modality_map, CLASSES)


def test_label_file_from_numpy_1_and_protocol_2_pickles(mer):
    """numpy 1.x names its array pickles numpy.core.multiarray; Python 3 protocol-2 pickles
    spell bytes (a float array's data) as _codecs.encode."""
    train = {n: {"emo": e, "v": np.arange(3.0)} for n, e in mer.train.items()}
    array = np.array(train, dtype=object)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(array))
    pickle.dump(array, buf, protocol=2)
    raw = buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in raw and b"_codecs" in raw
    with zipfile.ZipFile(mer.labels, "w") as z:
        z.writestr("train_corpus.npy", raw)
    assert plan_mertools(mer.labels, mer.features, mer.modality_map, CLASSES).names == list(mer.train)
