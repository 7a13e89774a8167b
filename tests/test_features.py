"""FeatureStore / FeatureWriter: round trip, dtypes, row reads, all-or-nothing."""
from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest

from mersemi.engine.errors import InputError
from mersemi.engine.features import MANIFEST, FeatureStore, FeatureWriter


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else None


def sample_matrices(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return {"audio": rng.normal(size=(n, 8)).astype(np.float32),
            "text": rng.normal(size=(n, 5)).astype(np.float32)}


def write_all(folder, data, dtype, block=16):
    n = len(next(iter(data.values())))
    with FeatureWriter(folder, n, {k: v.shape[1] for k, v in data.items()}, dtype) as w:
        for name, matrix in data.items():
            for start in range(0, n, block):
                w.write(name, start, matrix[start:start + block])
        w.commit()


@pytest.mark.parametrize("dtype, tol", [("float16", 2e-3), ("float32", 0.0)])
def test_round_trip(tmp_path, dtype, tol):
    folder = tmp_path / "features"
    folder.mkdir()
    data = sample_matrices()
    write_all(folder, data, dtype)

    store = FeatureStore(folder)
    assert store.exists()
    assert store.modalities == {"audio": 8, "text": 5}  # writer order kept
    assert store.n_rows == 50 and store.dtype == dtype
    assert listing(folder) == sorted(["audio.npy", "text.npy", MANIFEST])  # no staging left
    for name, expected in data.items():
        m = store.matrix(name)
        assert isinstance(m, np.memmap) and m.dtype == np.dtype(dtype) and m.shape == expected.shape
        assert not m.flags.writeable
        np.testing.assert_allclose(np.asarray(m, np.float32), expected, rtol=tol, atol=tol)
    assert list(store.matrices()) == ["audio", "text"]


def test_rows_by_index_are_float32_in_the_order_asked(tmp_path):
    data = sample_matrices()
    write_all(tmp_path / "f", data, "float32")
    rows = FeatureStore(tmp_path / "f").rows("text", [7, 3, 49, 3])
    assert rows.dtype == np.float32 and rows.shape == (4, 5)
    np.testing.assert_array_equal(rows, data["text"][[7, 3, 49, 3]])


def test_store_opened_before_import_sees_it_after_commit(tmp_path):
    store = FeatureStore(tmp_path / "f")
    assert not store.exists()
    write_all(tmp_path / "f", sample_matrices(), "float16")
    assert store.exists() and store.n_rows == 50


@pytest.mark.parametrize("how", ["abort", "exception", "no_commit"])
def test_abort_leaves_folder_exactly_as_before(tmp_path, how):
    folder = tmp_path / "features"
    folder.mkdir()
    (folder / "README").write_text("kept")
    before = listing(folder)
    data = sample_matrices()
    try:
        with FeatureWriter(folder, 50, {"audio": 8, "text": 5}) as w:
            w.write("audio", 0, data["audio"])
            assert len(listing(folder)) > len(before)  # something was staged
            if how == "abort":
                w.abort()
            elif how == "exception":
                raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert listing(folder) == before
    assert not FeatureStore(folder).exists()


def test_abort_removes_a_folder_it_created(tmp_path):
    with FeatureWriter(tmp_path / "new", 4, {"a": 2}) as w:
        w.write("a", 0, np.zeros((4, 2)))
    assert not (tmp_path / "new").exists()


def test_write_rejects_bad_blocks_naming_file_sample_and_problem(tmp_path):
    with FeatureWriter(tmp_path / "f", 4, {"a": 3}) as w:
        bad = np.ones((2, 3), np.float32)
        bad[1, 2] = np.nan
        with pytest.raises(InputError, match=r"src\.npy: sample 'y': NaN or inf"):
            w.write("a", 0, bad, source="src.npy", sample_names=["x", "y"])
        with pytest.raises(InputError, match=r"src\.npy: sample 'x': expected dimension 3"):
            w.write("a", 0, np.ones((2, 4)), source="src.npy", sample_names=["x", "y"])
        with pytest.raises(InputError, match=r"sample 'y': value 1e\+06 exceeds the float16 range"):
            w.write("a", 0, np.array([[0, 0, 0], [1e6, 0, 0]]), source="src.npy", sample_names=["x", "y"])
        with pytest.raises(InputError, match=r"sample at row 3: NaN"):  # no names given: the row
            w.write("a", 2, np.array([[0, 0, 0], [0, np.inf, 0]]))


def test_float32_storage_keeps_values_beyond_float16_range(tmp_path):
    with FeatureWriter(tmp_path / "f", 1, {"a": 1}, "float32") as w:
        w.write("a", 0, np.array([[1e6]]))
        w.commit()
    assert FeatureStore(tmp_path / "f").rows("a", [0])[0, 0] == 1e6


def test_commit_refuses_unwritten_rows(tmp_path):
    with FeatureWriter(tmp_path / "f", 4, {"a": 2}) as w:
        w.write("a", 0, np.zeros((3, 2)))
        with pytest.raises(RuntimeError, match="row 3 was never written"):
            w.commit()
    assert not (tmp_path / "f").exists()


def test_writer_refuses_a_folder_that_already_holds_features(tmp_path):
    write_all(tmp_path / "f", sample_matrices(), "float16")
    before = listing(tmp_path / "f")
    with pytest.raises(InputError, match="already holds features"):
        FeatureWriter(tmp_path / "f", 3, {"audio": 2})
    assert listing(tmp_path / "f") == before


@pytest.mark.parametrize("name", ["../up", "a/b", ".hidden", ""])
def test_unsafe_modality_names_are_refused(tmp_path, name):
    with pytest.raises(InputError, match="modality name"):
        FeatureWriter(tmp_path / "f", 3, {name: 2})
    assert not (tmp_path / "f").exists()


def test_store_detects_a_matrix_changed_after_import(tmp_path):
    write_all(tmp_path / "f", sample_matrices(), "float16")
    np.save(tmp_path / "f" / "audio.npy", np.zeros((49, 8), np.float16))
    with pytest.raises(InputError, match=r"audio\.npy: expected float16 \(50, 8\)"):
        FeatureStore(tmp_path / "f").matrix("audio")
    manifest = json.loads((tmp_path / "f" / MANIFEST).read_text())
    assert manifest["modalities"][0] == {"name": "audio", "dim": 8}


def test_a_later_import_removes_the_staging_left_by_a_killed_one(tmp_path):
    import subprocess
    folder = tmp_path / "features"
    folder.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()                                   # a finished process: its pid is free
    leftover = folder / f".staging-{dead.pid}-0123abcd"
    leftover.mkdir()
    (leftover / "audio.npy").write_bytes(b"half a matrix")
    live = folder / f".staging-{os.getppid()}-4567ef01"   # another import still running
    live.mkdir()

    with pytest.raises(RuntimeError):             # a failed import touches nothing
        with FeatureWriter(folder, 50, {"audio": 8}) as w:
            w.commit()                            # no rows written
    assert leftover.exists() and live.exists()

    write_all(folder, sample_matrices(), "float32")
    assert not leftover.exists() and live.exists()
    assert listing(folder) == sorted(["audio.npy", "text.npy", MANIFEST, live.name])


def test_staging_of_another_host_is_left_alone(tmp_path):
    """A project folder shared by hosts: this one cannot tell whether the other's pid lives."""
    from mersemi.engine.features import remove_dead_staging

    import subprocess
    dead = subprocess.Popen(["true"])
    dead.wait()                                   # its pid is free here, but not on the other host
    folder = tmp_path / "features"
    folder.mkdir()
    other = folder / f".staging-{dead.pid}-some.other.host-0123abcd"
    here = folder / f".staging-{dead.pid}-{socket.gethostname().replace('-', '_')}-0123abcd"
    other.mkdir()
    here.mkdir()
    assert remove_dead_staging(folder) == [here.name] and other.exists()
