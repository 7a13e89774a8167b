"""The ground hostile_replay.py stands on: running one command (process group, memory
limit, timeout, "serving"), the records a run passes around (Call, Result, Env, Code), the
sentinel's snapshots of the watched folder, a result's first message line, and the setup
(the frozen copy of the code, the PostgreSQL helper, the real devices and temp folders
checked at the end).
"""
from __future__ import annotations

import hashlib
import itertools
import os
import re
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv" / "bin" / "python"
MEMORY_LIMIT = 2 << 30  # address space of every probe: a read of /dev/zero ends in MemoryError
TIMEOUT_S = 30
PACKAGES = ("engine", "db", "service", "ui", "configs")


# ---------------------------------------------------------------------- records

@dataclass
class Call:
    """One command line to run and what the runner must arrange around it."""
    argv: list[str]
    allowed: tuple[Path, ...] = ()       # paths (and what is under them) the call may create or change
    timeout: float = TIMEOUT_S
    port: int | None = None              # serve/demo: the port that, answering, means "serving"
    drain: Path | None = None            # a FIFO held open for reading while the call runs
    after: Callable[[], list[str]] | None = None   # extra checks, returning flags


@dataclass
class Result:
    code: int | None                     # exit code; None when killed by us
    stdout: str = ""
    stderr: str = ""
    hung: bool = False
    served: bool = False
    internal: bool = False               # API: Gradio's error event or "internal error"
    cli: bool = True                     # a command line (its message must start "mersemi:")



@dataclass
class Env:
    """One database's pass: the folders, the trained project, the server for API probes."""
    db: str
    tmp: Path                    # the watched folder
    data: Path                   # synthetic native data, shared by the passes
    code: Code
    pg: object | None = None     # tests/postgres_server.PostgresServer
    project: Path | None = None
    pool: list[str] = field(default_factory=list)    # unlabeled sample names (decide probes)
    unwatched: set[Path] = field(default_factory=set)
    base_url: str | None = None  # the live server, for API probes
    serial: itertools.count = field(default_factory=itertools.count)

    def scratch(self, probe_id: str) -> Path:
        d = self.tmp / "x" / self.db / f"{probe_id}-{next(self.serial)}"
        d.mkdir(parents=True)
        return d

    def init_argv(self, folder: Path) -> list[str]:
        if self.pg is None:
            return ["init", str(folder)]
        return ["init", str(folder), "--db", self.pg.url(self.pg.new_database())]

    def new_project(self, name: str, data: Path | None = None) -> Path:
        """A fresh project (not watched), imported from `data` when given."""
        folder = self.tmp / "projects" / self.db / f"{name}-{next(self.serial)}"
        folder.parent.mkdir(parents=True, exist_ok=True)
        self.unwatched.add(folder)
        self.code.check(self.init_argv(folder))
        if data is not None:
            self.code.check(["import", str(folder), "--native", str(data)])
        return folder


@dataclass
class Code:
    """How to run the command line: `python -m mersemi.ui.cli` on the frozen copy (make_code)."""
    env: dict[str, str]
    fast_config: Path
    cwd: Path

    def argv(self, args: list[str]) -> list[str]:
        return [str(PYTHON), "-m", "mersemi.ui.cli", *args]

    def run(self, call: Call) -> Result:
        return run_command(self.argv(call.argv), self.env, self.cwd, call)

    def check(self, args: list[str], timeout: float = 300) -> str:
        """A setup step that must succeed; its stdout."""
        res = self.run(Call(args, timeout=timeout))
        if res.code != 0:
            raise SetupError(f"mersemi {' '.join(args[:2])} failed: {first_line(res)}")
        return res.stdout


class SetupError(RuntimeError):
    pass


# ---------------------------------------------------------------------- running one command

def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_command(argv: list[str], env: dict[str, str], cwd: Path, call: Call) -> Result:
    """Run `argv` in its own process group under the memory limit; kill it (the group) at the
    timeout, or as soon as `call.port` answers (it is serving)."""
    reader = os.open(call.drain, os.O_RDONLY | os.O_NONBLOCK) if call.drain else None
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                cwd=cwd, preexec_fn=limit_memory, start_new_session=True)
        hung, served = wait_for(proc, call, reader)
        if proc.poll() is None:
            stop(proc)
        if reader is not None:
            drain(reader)
            os.close(reader)
        out.seek(0)
        err.seek(0)
        code = None if (hung or served) else proc.returncode
        return Result(code, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                      hung=hung, served=served)


def wait_for(proc: subprocess.Popen, call: Call, reader: int | None) -> tuple[bool, bool]:
    """(hung, served) once the process ends, serves, or runs past its timeout."""
    deadline = time.monotonic() + call.timeout
    while proc.poll() is None:
        if call.port is not None and port_answers(call.port):
            return False, True
        if time.monotonic() > deadline:
            return True, False
        if reader is not None:
            drain(reader)
        time.sleep(0.25)
    return False, False


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the group (serve stops like Ctrl-C), SIGKILL after 15 s."""
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def drain(fd: int) -> None:
    try:
        while os.read(fd, 1 << 16):
            pass
    except BlockingIOError:
        pass


def port_answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------- the sentinel

def snapshot(root: Path, unwatched: set[Path], cache: dict) -> dict[str, tuple]:
    """Every entry under `root` except the unwatched folders: (type, size, mtime, sha256 or link
    target). Only regular files are read; hashes are reused while (inode, size, ctime) hold."""
    entries = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [n for n in dirnames if here / n not in unwatched]
        for name in dirnames + filenames:
            path = here / name
            try:
                entries[str(path)] = describe(path, cache)
            except FileNotFoundError:
                continue
    return entries


def describe(path: Path, cache: dict) -> tuple:
    st = os.lstat(path)
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return ("link", os.readlink(path))
    if stat.S_ISDIR(mode):
        return ("folder",)
    if stat.S_ISREG(mode):
        key = (str(path), st.st_ino, st.st_size, st.st_ctime_ns)
        if key not in cache:
            cache[key] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        return ("file", st.st_size, st.st_mtime_ns, cache[key])
    kind = "fifo" if stat.S_ISFIFO(mode) else "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "other"
    return (kind, st.st_rdev, st.st_mtime_ns)


def differences(before: dict, after: dict, allowed: tuple[Path, ...]) -> list[str]:
    out = []
    for path in sorted(set(before) | set(after)):
        if before.get(path) == after.get(path) or any(Path(path).is_relative_to(p) for p in allowed):
            continue
        was, now = before.get(path), after.get(path)
        out.append(f"{path}: {was[0] if was else 'absent'} -> {now[0] if now else 'absent'}"
                   + (" (content)" if was and now and was[0] == now[0] else ""))
    return out


# ---------------------------------------------------------------------- a result's message

def error_lines(stderr: str) -> list[str]:
    lines = [ln.strip() for chunk in stderr.splitlines() for ln in chunk.split("\r")]
    return [ln for ln in lines if ln and not ln.startswith("mersemi: note:")]


def first_line(res: Result) -> str:
    lines = error_lines(res.stderr)
    if "Traceback" in res.stderr and lines:
        raised = [ln for ln in lines if EXCEPTION_LINE.match(ln)] or lines
        return "(traceback) " + raised[-1]
    if lines:
        return lines[0]
    return (res.stdout.strip().splitlines() or [""])[0]


EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")


# ---------------------------------------------------------------------- setup

def make_code(ref: str | None, tmp: Path) -> Code:
    """A frozen copy of the code to run: the working tree's packages as they are now (copied,
    so that edits made during the run do not mix in), or a commit's (git archive REF). The copy
    is put first on PYTHONPATH as the `mersemi` namespace (the editable install's finder comes
    after PYTHONPATH); tests/fast.yaml comes along, as it extends configs/default.yaml."""
    src = tmp / "code" / "src"
    src.mkdir(parents=True)
    if ref is None:
        for name in PACKAGES:
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        (src / "tests").mkdir()
        shutil.copyfile(REPO / "tests" / "fast.yaml", src / "tests" / "fast.yaml")
    else:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, *PACKAGES, "tests/fast.yaml"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    package = tmp / "code" / "py" / "mersemi"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name in PACKAGES:
        (package / name).symlink_to(src / name)
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(package.parent))
    return Code(env, src / "tests" / "fast.yaml", tmp)


IMPORT_ALL = """
import importlib, pkgutil, mersemi
for m in pkgutil.walk_packages(mersemi.__path__, "mersemi."):
    if ".migrations" not in m.name:
        importlib.import_module(m.name)
"""


def frozen_code(ref: str | None, tmp: Path, tries: int = 10) -> Code:
    """make_code, again until the copy imports: the working tree may be caught half-edited
    (other people work in it), so a copy that does not start is taken again 30 s later."""
    for _ in range(tries):
        shutil.rmtree(tmp / "code", ignore_errors=True)
        code = make_code(ref, tmp)
        res = run_command([str(PYTHON), "-c", IMPORT_ALL], code.env, tmp, Call([], timeout=120))
        if res.code == 0 or ref is not None:
            return code
        print(f"the code does not import ({first_line(res)}); copying again in 30 s", file=sys.stderr)
        time.sleep(30)
    raise SetupError(f"the code did not import in {tries} copies: {first_line(res)}")


def tests_on_path() -> None:
    if str(REPO / "tests") not in sys.path:
        sys.path.insert(0, str(REPO / "tests"))


def start_postgres():
    """tests/postgres_server.PostgresServer: initdb and pg_ctl in a temporary folder."""
    tests_on_path()
    from postgres_server import PostgresServer  # only with --postgres

    return PostgresServer()


def real_devices() -> list[tuple]:
    """The real /dev/null and /dev/zero, to show at the end that they are untouched."""
    return [(p, stat.S_ISCHR(os.lstat(p).st_mode), os.lstat(p).st_rdev) for p in ("/dev/null", "/dev/zero")]


def tool_temp_folders() -> set[str]:
    """The tool's own temporary folders (mersemi-clips-*, mersemi-export-*); not ours, nor the
    PostgreSQL helper's (mersemi-pg-*)."""
    return {p.name for p in Path(tempfile.gettempdir()).glob("mersemi-*")
            if not p.name.startswith(("mersemi-hostile-", "mersemi-pg-"))}
