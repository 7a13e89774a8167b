"""A full disk is one line and changes nothing (issue 31, point 1), on a real tmpfs mounted in
the test's temporary folder (as root; skipped where mounting is refused): every command that
writes checks free space first where it can (import, train, export, migrate's backup), a
write that meets a full disk anyway is one line naming the place, `status` writes nothing, an
import that cannot finish leaves no staging folder and a feature file is reserved whole (no
SIGBUS)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app_fixtures import make_review_project
from mersemi.db.errors import StoreFull
from mersemi.engine.features import FeatureWriter
from mersemi.engine.synthetic import make_synthetic
from mersemi.service.project import DecisionRequest, Project
from test_cli import run, snapshot
from test_cli_errors import one_line_error
from test_migrations import build_v1

FAST = Path(__file__).parent / "fast.yaml"


@contextmanager
def small_disk(where: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of `size_mb` MB mounted at `where` (made here), unmounted afterwards."""
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(where)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root and a sandbox that allows it)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(disk: Path, leave: int = 0) -> None:
    """Fill the disk with a file of ours, leaving about `leave` bytes free (0: none at all)."""
    target = max(0, shutil.disk_usage(disk).free - leave)
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        written = 0
        while written < target or leave == 0:
            try:
                written += os.write(fd, b"\0" * min(1 << 20, max(4096, target - written)))
            except OSError:
                break
    finally:
        os.close(fd)


EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"   # sha256 of b""


def without_filler(snap: dict) -> dict:
    """The snapshot but our filler and SQLite's side files that opening a WAL database makes
    (the shared-memory index, an empty WAL): they hold no data, and only SQLite may remove them."""
    return {k: v for k, v in snap.items()
            if k != "filler" and not k.endswith("-shm") and not (k.endswith("-wal") and v == EMPTY)}


@pytest.fixture
def review(tmp_path) -> Iterator[Path]:
    """The review fixture's project (a round done, no features) on a 4 MB tmpfs."""
    with small_disk(tmp_path / "disk", 4) as disk:
        make_review_project(disk / "p").close()
        yield disk / "p"


def test_a_write_that_meets_a_full_disk_is_one_line_and_rolls_back(review):
    with Project.open(review) as project:   # open first: the WAL files exist, the write itself fails
        before = project.store.decisions.log()
        fill(review.parent)
        with pytest.raises(StoreFull, match=r"project.db: the disk is full; nothing was written") as e:
            project.decide([DecisionRequest("u00", "accept")], reviewer="ann")
        assert "\n" not in str(e.value) and "INSERT" not in str(e.value)
        (review.parent / "filler").unlink()
        assert project.store.decisions.log() == before


@pytest.mark.parametrize("args", [["thresholds", "{p}", "--set", "joy=0.7"], ["status", "{p}"], ["queue", "{p}"],
                                  ["export", "{p}", "--what", "labels", "--out", "{p}/exports/l.csv"]])
def test_commands_on_a_full_disk_say_so_in_one_line_and_change_nothing(args, review, capsys):
    fill(review.parent)
    before = snapshot(review.parent)
    code, _, err = run(capsys, *[a.format(p=review) for a in args])
    one_line_error(code, err)
    assert "full" in err or "free space" in err, err
    assert without_filler(snapshot(review.parent)) == without_filler(before)


def test_status_writes_nothing_even_with_a_dead_round_to_report(review, capsys):
    with Project.open(review) as project:
        rid = project.store.rounds.create(config={}, config_name="x", thresholds={}, auto_accept=False,
                                          pid=2**22 + 12345, host=socket.gethostname())   # no such process
    fill(review.parent, leave=200_000)   # room for SQLite's shared memory, not for much else
    before = snapshot(review)
    code, out, err = run(capsys, "status", review)
    assert code == 0, err
    assert f"round {rid}: failed (interrupted: process" in out
    assert snapshot(review) == before   # the round is still "running" in the store: the next write records it


def test_an_export_that_does_not_fit_is_refused_before_it_writes(review, capsys):
    fill(review.parent, leave=40_000)   # less than the export and its margin (64 KB)
    before = snapshot(review.parent)
    code, _, err = run(capsys, "export", review, "--what", "predictions", "--out", review / "exports" / "p.csv")
    one_line_error(code, err, "not enough free space for the export")
    assert without_filler(snapshot(review.parent)) == without_filler(before)


def test_migrates_backup_that_does_not_fit_is_refused_and_the_store_kept(tmp_path, capsys):
    with small_disk(tmp_path / "disk", 2) as disk:
        root = disk / "old"
        root.mkdir()
        build_v1(f"sqlite:///{root / 'project.db'}")
        fill(disk, leave=(root / "project.db").stat().st_size // 2)
        before = snapshot(root)
        code, _, err = run(capsys, "migrate", root)
        one_line_error(code, err, "not enough free space for the backup copy of project.db")
        assert snapshot(root) == before


def test_init_on_a_full_disk_leaves_nothing(tmp_path, capsys):
    with small_disk(tmp_path / "disk", 1) as disk:
        fill(disk)
        code, _, err = run(capsys, "init", disk / "p")
        one_line_error(code, err)
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]


@pytest.fixture(scope="module")
def native(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("native") / "data"
    make_synthetic(out, scale=0.02, seed=4)
    return out


def test_an_import_that_does_not_fit_is_refused_and_leaves_no_staging(native, tmp_path, capsys):
    with small_disk(tmp_path / "disk", 2) as disk:
        assert run(capsys, "init", disk / "p")[0] == 0
        fill(disk, leave=300_000)
        code, _, err = run(capsys, "import", disk / "p", "--native", native, "--dtype", "float32")
        one_line_error(code, err, "not enough free space for the import's features")
        assert list((disk / "p" / "features").iterdir()) == []


def test_a_feature_file_is_reserved_whole_so_a_full_disk_is_an_error_not_sigbus(tmp_path):
    with small_disk(tmp_path / "disk", 1) as disk:
        fill(disk, leave=64 * 1024)
        with pytest.raises(OSError) as e:
            FeatureWriter(disk / "features", 10_000, {"audio": 64}, "float32")   # 2.5 MB on 64 KB
        assert e.value.errno == 28
        assert not (disk / "features").exists()   # the writer made the folder and removed it


@pytest.mark.slow
def test_train_refuses_before_training_when_its_files_cannot_fit(native, tmp_path, capsys):
    with small_disk(tmp_path / "disk", 24) as disk:
        root = disk / "p"
        assert run(capsys, "init", root)[0] == 0
        assert run(capsys, "import", root, "--native", native)[0] == 0
        assert run(capsys, "train", root, "--config", FAST)[0] == 0
        fill(disk, leave=1_000_000)   # less than round 0's checkpoint
        before = snapshot(root)
        code, _, err = run(capsys, "train", root, "--config", FAST)
        one_line_error(code, err, "not enough free space for the round's checkpoint and predictions")
        assert snapshot(root) == before
        (disk / "filler").unlink()
        fill(disk, leave=20_000)   # the check passes at the margin? then the write fails: still one line
        code, _, err = run(capsys, "train", root, "--config", FAST)
        assert code == 1 and err.count("\n") <= 2 and "Traceback" not in err, err
        assert not list((root / "checkpoints").glob("*.tmp"))
