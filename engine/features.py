"""A project's feature matrices: `features/<modality>.npy`, one per modality, rows in sample order.

Beside them `features/manifest.json` lists the modalities (in order) with their dimensions,
the storage dtype and the row count. An import writes everything into a staging folder
(`.staging-<pid>-<host>-<id>`), manifest included, then moves the files in, the manifest
last, so a folder with a manifest always holds a complete set of matrices. The move
(`publish_staged`) can be repeated after a kill until it has finished.

Matrices are read memory-mapped: at MER2024 scale they are ~1.7 GB (float16), and the app
only ever needs a few rows of them at a time.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .crashpoints import crash_point
from .errors import InputError, shown
from .processes import pid_alive

MANIFEST = "manifest.json"
DTYPES = ("float16", "float32")
_STAGING_PREFIX = ".staging-"
# A modality name becomes a file name: keep it to a safe, portable alphabet.
_MODALITY_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# float16 overflows to inf above this: a finite float32 value can still not be stored.
_FLOAT16_MAX = float(np.finfo(np.float16).max)


def staging_name() -> str:
    """A staging folder's name: this process (pid and host) and a unique id."""
    return f"{_STAGING_PREFIX}{os.getpid()}-{_host_tag(socket.gethostname())}-{uuid.uuid4().hex}"


def staging_is_live(name: str) -> bool:
    """Whether the import that owns a staging folder may still be running."""
    pid, _, rest = name[len(_STAGING_PREFIX):].partition("-")
    host = rest.rpartition("-")[0] if "-" in rest else None  # None: the older <pid>-<id> names
    return pid.isdigit() and process_may_run(host, int(pid))


def process_may_run(host: str | None, pid: int) -> bool:
    """Whether process `pid` of `host` (None: this one) may still be running: alive here, or
    on another host, which this one cannot ask (a project folder shared by a team)."""
    if host is not None and _host_tag(host) != _host_tag(socket.gethostname()):
        return True
    return pid_alive(pid)


def _host_tag(host: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", host)  # no '-': it separates the parts of a staging name


def dead_staging(folder: Path, keep: str | None = None) -> list[Path]:
    """The staging folders of imports whose process is gone (SIGKILL, power loss), except `keep`."""
    return [path for path in Path(folder).glob(f"{_STAGING_PREFIX}*")
            if path.name != keep and not staging_is_live(path.name)]


def remove_dead_staging(folder: Path, keep: str | None = None) -> list[str]:
    """Delete the staging folders of dead imports (dead_staging); returns their names."""
    removed = dead_staging(folder, keep)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return [path.name for path in removed]


def publish_staged(folder: Path, staging: str, moved: list[Path] | None = None) -> None:
    """Move a complete staging folder's matrices, then its manifest, into `folder`. Idempotent:
    after a kill half-way it moves what is left; InputError when files are missing from both
    places (the staging folder was removed by hand)."""
    folder = Path(folder)
    src = folder / staging
    manifest_path = src / MANIFEST if (src / MANIFEST).is_file() else folder / MANIFEST
    try:
        names = [m["name"] for m in json.loads(manifest_path.read_text())["modalities"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{src}: cannot finish the import: no readable manifest ({e.__class__.__name__})") from None
    for name in [f"{n}.npy" for n in names] + [MANIFEST]:
        target = folder / name
        if (src / name).exists():
            os.replace(src / name, target)  # atomic within one file system
            if moved is not None:
                moved.append(target)
            crash_point("import:moving")
        elif not target.is_file():
            raise InputError(f"{folder}: cannot finish the import: {name} is neither staged nor in place")
    if src.is_dir():
        src.rmdir()


def check_modality_name(name: str, where: str = "modality") -> None:
    if not isinstance(name, str) or not _MODALITY_NAME.match(name) or name.endswith(".npy"):
        raise InputError(f"{where}: modality name {shown(name)}: use letters, digits, '_', '-' or '.', "
                         f"not starting with '.' or '-'")


class FeatureStore:
    """Read side of `features/`. The manifest is re-read on every access (it is tiny), so a
    store opened before an import sees the import once it has committed."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def exists(self) -> bool:
        return (self.folder / MANIFEST).is_file()

    def _manifest(self) -> dict:
        path = self.folder / MANIFEST
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"{path}: no features imported yet") from None
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: unreadable manifest ({e})") from None

    @property
    def modalities(self) -> dict[str, int]:
        """Modality name -> dimension, in manifest order."""
        return {m["name"]: int(m["dim"]) for m in self._manifest()["modalities"]}

    @property
    def n_rows(self) -> int:
        return int(self._manifest()["n_rows"])

    @property
    def dtype(self) -> str:
        return str(self._manifest()["dtype"])

    def matrix(self, name: str) -> np.memmap:
        """The read-only memory-mapped `[n_rows, dim]` matrix of one modality."""
        manifest = self._manifest()
        dims = {m["name"]: int(m["dim"]) for m in manifest["modalities"]}
        if name not in dims:
            raise KeyError(f"no modality {name!r} in {self.folder} (have {', '.join(dims)})")
        path = self.folder / f"{name}.npy"
        try:
            m = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: unreadable feature matrix ({e})") from None
        expected = (int(manifest["n_rows"]), dims[name])
        if m.shape != expected or m.dtype != np.dtype(manifest["dtype"]):
            raise InputError(f"{path}: expected {manifest['dtype']} {expected}, found {m.dtype} {m.shape}"
                             f" (the features folder was changed after import)")
        return m

    def check_finite(self, block_rows: int = 16384) -> None:
        """InputError naming the first matrix and row holding NaN or inf: the import refuses
        them, so the file was changed since (training on it writes NaN predictions)."""
        for name in self.modalities:
            m = self.matrix(name)
            for start in range(0, m.shape[0], block_rows):
                ok = np.isfinite(m[start:start + block_rows]).all(axis=1)
                if not ok.all():
                    raise InputError(f"{self.folder / (name + '.npy')}: row {start + int(np.argmin(ok))} holds NaN or "
                                     "inf (the file was changed after import); import the features again "
                                     "into a new project")

    def matrices(self) -> dict[str, np.memmap]:
        """Every modality's matrix, in manifest order (what the trainer takes)."""
        return {name: self.matrix(name) for name in self.modalities}

    def rows(self, name: str, idx: Sequence[int] | np.ndarray) -> np.ndarray:
        """Rows `idx` of one modality as float32; only those rows are read from disk."""
        return np.asarray(self.matrix(name)[np.asarray(idx, dtype=np.int64)], dtype=np.float32)


class FeatureWriter:
    """Writes the matrices of an import into a staging folder inside `folder`, then
    `commit()` moves them into place, or `abort()` removes everything it wrote.

    Rows are written block by block through a memory map of just that block, so the process
    never holds more than one block, whatever the matrix size. As a context manager it
    aborts unless `commit()` was called inside the block.
    """

    def __init__(self, folder: str | Path, n_rows: int, dims: dict[str, int],
                 dtype: str = "float16") -> None:
        if dtype not in DTYPES:
            raise InputError(f"feature dtype: must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if n_rows < 1:
            raise InputError(f"{folder}: nothing to import (0 samples)")
        if not dims:
            raise InputError(f"{folder}: no modalities to import")
        for name, dim in dims.items():
            check_modality_name(name)
            if int(dim) < 1:
                raise InputError(f"modality {name!r}: dimension must be >= 1, got {dim}")
        self.folder = Path(folder)
        self.n_rows = int(n_rows)
        self.dims = {name: int(dim) for name, dim in dims.items()}
        self.dtype = np.dtype(dtype)
        self._created_folder = not self.folder.exists()
        self._check_no_features_yet()
        self.folder.mkdir(parents=True, exist_ok=True)
        # The pid and host in the name let a later command recognise the leftovers of a killed one.
        self._staging = self.folder / staging_name()
        self._staging.mkdir()
        self._moved: list[Path] = []
        self._done = False
        self._files: dict[str, NpyRowFile] = {}
        self._written = {name: np.zeros(self.n_rows, dtype=bool) for name in self.dims}
        try:
            for name, dim in self.dims.items():
                self._create_matrix(name, dim)
        except BaseException:
            self.abort()
            raise

    def _check_no_features_yet(self) -> None:
        if not self.folder.exists():
            return
        clash = [p.name for p in self.folder.iterdir()
                 if p.name == MANIFEST or p.stem in self.dims and p.suffix == ".npy"]
        if clash:
            raise InputError(f"{self.folder}: already holds features ({', '.join(sorted(clash))}); "
                             f"import into a new project")

    def _create_matrix(self, name: str, dim: int) -> None:
        self._files[name] = NpyRowFile(self._staging / f"{name}.npy", self.n_rows, dim, self.dtype)

    def write(self, name: str, start: int, block: np.ndarray, *, source: str = "",
              sample_names: Sequence[str] | None = None) -> None:
        """Store `block` as rows `start:start+len(block)` of modality `name`.

        `source` (the file the rows came from) and `sample_names` (one per row) go into the
        error message when the block has the wrong shape or a value that is NaN, inf or out
        of the storage type's range.
        """
        if self._done:
            raise RuntimeError("FeatureWriter: already committed or aborted")
        if name not in self.dims:
            raise KeyError(f"FeatureWriter: no modality {name!r}")
        block = np.asarray(block)
        dim = self.dims[name]
        where = source or name
        if block.ndim != 2 or block.shape[1] != dim:
            sample = _sample_of(sample_names, start, 0)
            raise InputError(f"{where}: sample {sample}: expected dimension {dim}, got shape {block.shape}")
        stop = start + block.shape[0]
        if start < 0 or stop > self.n_rows:
            raise IndexError(f"FeatureWriter: rows {start}:{stop} outside 0:{self.n_rows}")
        check_finite(block, where, sample_names, start, self.dtype)
        self._files[name].write(start, block)
        self._written[name][start:stop] = True
        crash_point("import:streaming")

    def stage(self) -> Path:
        """Finish the staging folder: every row written, the manifest beside the matrices.
        Returns it; nothing is in place yet."""
        if self._done:
            raise RuntimeError("FeatureWriter: already committed or aborted")
        for name, written in self._written.items():
            if not written.all():
                first = int(np.argmin(written))
                raise RuntimeError(f"FeatureWriter: modality {name!r}: row {first} was never written")
        manifest = {"n_rows": self.n_rows, "dtype": self.dtype.name,
                    "modalities": [{"name": n, "dim": d} for n, d in self.dims.items()]}
        (self._staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        return self._staging

    def publish(self) -> None:
        """Move the staged files into `folder` for an import whose samples are committed
        elsewhere (the database): from here on nothing is undone; a failure or a kill leaves
        the staging folder for `publish_staged` to finish."""
        self._done = True
        publish_staged(self.folder, self._staging.name)
        remove_dead_staging(self.folder)

    def commit(self) -> None:
        """`stage` and move everything into `folder`; a failure undoes it all."""
        self.stage()
        try:
            publish_staged(self.folder, self._staging.name, moved=self._moved)
        except BaseException:
            self.abort()
            raise
        self._done = True
        remove_dead_staging(self.folder)

    def abort(self) -> None:
        """Remove everything this writer created; `folder` is left as it was before."""
        for path in self._moved:
            path.unlink(missing_ok=True)
        self._moved = []
        shutil.rmtree(self._staging, ignore_errors=True)
        if self._created_folder:
            shutil.rmtree(self.folder, ignore_errors=True)
        self._done = True

    def __enter__(self) -> FeatureWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._done:
            self.abort()


class NpyRowFile:
    """A `.npy` matrix on disk filled block by block. `np.lib.format.open_memmap` writes the
    header and sizes the (sparse) file; each block then goes through a memory map of just
    its own rows, unmapped right after, so written pages never pile up in the process
    (a map of the whole file would count all of them in its resident memory)."""

    def __init__(self, path: Path, n_rows: int, dim: int, dtype: np.dtype | str) -> None:
        self.path, self.n_rows, self.dim, self.dtype = Path(path), n_rows, dim, np.dtype(dtype)
        m = np.lib.format.open_memmap(self.path, mode="w+", dtype=self.dtype, shape=(n_rows, dim))
        self.offset = int(m.offset)
        del m
        # Reserve every block now: a sparse file on a disk that fills up kills the process with
        # SIGBUS at the first page it cannot back; here that is an OSError (ENOSPC) instead.
        fd = os.open(self.path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, self.offset + n_rows * dim * self.dtype.itemsize)
        finally:
            os.close(fd)

    def write(self, start: int, block: np.ndarray) -> None:
        if block.shape[0] == 0:
            return
        target = np.memmap(self.path, dtype=self.dtype, mode="r+",
                           offset=self.offset + start * self.dim * self.dtype.itemsize,
                           shape=(block.shape[0], self.dim))
        target[:] = block
        target.flush()
        del target


def check_finite(block: np.ndarray, where: str, sample_names: Sequence[str] | None,
                 start: int, dtype: np.dtype) -> None:
    """InputError naming the first sample whose row has NaN/inf, or a value the storage type
    cannot hold (float16 tops out at 65504)."""
    if block.dtype.kind not in "fiub":
        raise InputError(f"{where}: sample {_sample_of(sample_names, start, 0)}: "
                         f"not a numeric array (dtype {block.dtype})")
    if block.dtype.kind != "f":
        finite_rows = np.ones(block.shape[0], dtype=bool)
    else:
        finite_rows = np.isfinite(block).all(axis=1)
    if not finite_rows.all():
        i = int(np.argmin(finite_rows))
        raise InputError(f"{where}: sample {_sample_of(sample_names, start, i)}: NaN or inf values")
    if np.dtype(dtype) == np.float16 and block.size:
        big_rows = (np.abs(block) > _FLOAT16_MAX).any(axis=1)
        if big_rows.any():
            i = int(np.argmax(big_rows))
            peak = float(np.abs(block[i]).max())
            raise InputError(f"{where}: sample {_sample_of(sample_names, start, i)}: value {peak:g} "
                             f"exceeds the float16 range (65504); import with dtype float32")


def _sample_of(sample_names: Sequence[str] | None, start: int, i: int) -> str:
    if sample_names is not None and i < len(sample_names):
        return shown(str(sample_names[i]))
    return f"at row {start + i}"
