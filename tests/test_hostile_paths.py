"""Paths a person names, aimed where they should not be (issue 21): an export never replaces a
device, FIFO, link or folder, and its temporary file has a name nobody can plant a link at;
a file the tool reads is a regular file of bounded size (a FIFO or /dev/zero never hangs it);
the server takes no uploads and keeps its temporary files in folders of its own, which the
next server removes when a killed one left them. Stand-ins (FIFOs, links, files) live in
tmp_path: nothing here writes to a real device."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import httpx

from mersemi.engine.errors import UsageError
from mersemi.engine.safe_files import check_writable_target, read_bytes, write_atomically
from mersemi.service.clips import remove_leftovers
from test_cli import run, snapshot
from test_cli_errors import one_line_error

MERSEMI = str(Path(sys.executable).parent / "mersemi")


@pytest.fixture
def project(tmp_path, capsys) -> Path:
    assert run(capsys, "init", tmp_path / "p")[0] == 0
    return tmp_path / "p"


def export(capsys, project: Path, out: Path, fmt: str = "csv"):
    return run(capsys, "export", project, "--what", "decisions", "--out", out, "--format", fmt)[::2]


def test_an_export_never_replaces_a_fifo_a_link_or_a_folder(project, tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    link = tmp_path / "link.csv"
    link.symlink_to(precious)
    before = snapshot(project)
    one_line_error(*export(capsys, project, fifo), "a FIFO")
    one_line_error(*export(capsys, project, link), "symbolic link")
    one_line_error(*export(capsys, project, tmp_path), "a folder")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and link.is_symlink() and precious.read_text() == "keep me"
    assert snapshot(project) == before


def test_system_trees_are_refused_before_anything_is_opened(tmp_path):
    # check only: the refusal comes before any open, so nothing under /proc or /dev is touched
    for path in ("/proc/self/status", "/dev/null", "/sys/kernel/new.csv"):
        with pytest.raises(UsageError, match="a system tree"):
            check_writable_target(path, "--out")


def test_a_link_planted_at_the_old_temporary_name_is_not_followed(project, tmp_path, capsys):
    out = tmp_path / "out.csv"
    (tmp_path / "out.csv.tmp").symlink_to(project / "project.db")
    before = snapshot(project)
    code, err = export(capsys, project, out)
    assert code == 0, err
    assert out.read_text().startswith("id,time,name")
    assert snapshot(project) == before
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == ["out.csv", "out.csv.tmp", "p"], leftovers  # no temporary file left behind


def test_a_failed_write_leaves_the_target_and_no_temporary_file(tmp_path):
    target = tmp_path / "labels.csv"
    target.write_text("old")

    def fail(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomically(target, "--out", fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["labels.csv"]


def test_reads_take_regular_files_of_bounded_size_only(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: a blocking open would wait forever
    with pytest.raises(UsageError, match="a FIFO"):
        read_bytes(fifo, "--users")
    with pytest.raises(UsageError, match="a device"):
        read_bytes("/dev/zero", "--config")  # reading is harmless; the read is never started
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * 2000)
    with pytest.raises(UsageError, match="2,000 bytes, more than the 1,000"):
        read_bytes(big, "--config", limit=1000)
    with pytest.raises(UsageError, match="is a folder"):
        read_bytes(tmp_path, "--config")
    assert read_bytes(big, "x", limit=2000) == b"#" * 2000


@pytest.mark.parametrize("args", [
    ["train", "{p}", "--config", "/dev/zero"],
    ["train", "{p}", "--config", "{fifo}"],
    ["train", "{p}", "--config", "{extends_zero}"],
    ["serve", "{p}", "--users", "/dev/zero"],
    ["serve", "{p}", "--users", "{fifo}"],
])
def test_commands_reading_a_stream_answer_in_one_line(args, project, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    extends_zero = tmp_path / "zero.yaml"
    extends_zero.write_text("extends: /dev/zero\n")
    argv = [a.format(p=project, fifo=fifo, extends_zero=extends_zero) for a in args]
    before = snapshot(project)
    r = subprocess.run([MERSEMI, *argv], capture_output=True, text=True, timeout=60)
    one_line_error(r.returncode, r.stderr, "not a regular file")
    assert snapshot(project) == before


@pytest.mark.parametrize("args, needle", [
    (["synth", "{t}/s", "--seed", "-1"], "--seed: must lie in [0, 4294967295], got '-1'"),
    (["synth", "{t}/file/s"], "is a file, not a folder"),
    (["init", "{t}/file"], "is a file, not a folder"),
    (["init", "{t}/fifo"], "is a FIFO, not a folder"),
    (["init", "/proc/self/new"], "a system tree"),
    (["demo", "--cache", "{t}/file"], "is a file, not a folder"),
    (["serve", "{t}/p", "--host", "no-such-host.invalid"], "not a name or address this machine can resolve"),
    (["serve", "{t}/p", "--host", "0.0.0.0"], "--insecure-no-auth"),
])
def test_bad_places_and_hosts_are_one_line(args, needle, project, tmp_path, capsys):
    (tmp_path / "file").write_text("a file")
    os.mkfifo(tmp_path / "fifo")
    before = sorted(p.name for p in tmp_path.iterdir())
    one_line_error(*run(capsys, *[a.format(t=tmp_path) for a in args])[::2], needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "file").read_text() == "a file"


def test_the_server_takes_no_uploads(tmp_path):
    from app_fixtures import make_review_project, serve_in_process, stop_in_process
    from gradio.utils import get_upload_folder

    make_review_project(tmp_path / "p").close()
    demo, url = serve_in_process(tmp_path / "p")
    try:
        stored = set(Path(get_upload_folder()).rglob("*"))
        r = httpx.post(url + "gradio_api/upload", files={"files": ("x.txt", b"x" * 100_000)}, timeout=30)
        assert r.status_code == 403 and "no uploads" in r.text
        assert set(Path(get_upload_folder()).rglob("*")) == stored
        assert httpx.get(url + "gradio_api/info", timeout=30).status_code == 200  # the rest still works
    finally:
        stop_in_process(demo)


def test_a_killed_servers_temporary_folders_are_removed_by_the_next(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    mine, theirs_alive, other = (tmp_path / f"mersemi-clips-{dead}-abc", tmp_path / f"mersemi-gradio-{os.getpid()}-x",
                                 tmp_path / f"mersemi-notes-{dead}-x")
    for folder in (mine, theirs_alive, other):
        (folder / "sub").mkdir(parents=True)
    link = tmp_path / f"mersemi-gradio-{dead}-link"
    link.symlink_to(other, target_is_directory=True)
    assert remove_leftovers(tmp_path) == [mine]
    assert not mine.exists() and theirs_alive.exists() and other.exists() and link.is_symlink()
