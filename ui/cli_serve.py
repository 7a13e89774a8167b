"""`mersemi serve` and `mersemi demo`: the checks before the app listens (host, port, logins),
the server's own temporary folders, and the demo project built once and reused."""
from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

from ..engine.config import load_config
from ..engine.errors import UsageError, shown
from ..engine.names import lookalike
from ..engine.safe_files import MiB, check_folder_target, read_text

from ..service.clips import remove_leftovers, temp_prefix
from ..service.project import Project, ProjectError
from ..service.values import number, person

from .cli_commands import config_path, console_progress, open_project


def cmd_serve(args) -> None:
    auth = _parse_logins(args.auth or [], args.users)
    port = _port(args.port)
    if auth is None and not _is_loopback(args.host):
        if not args.insecure_no_auth:
            raise ProjectError(f"--host {shown(args.host)}: other machines could review and train without "
                               "logging in; give --auth or --users, or --insecure-no-auth on a trusted network")
        print(f"mersemi: warning: listening on {args.host} without logins (--insecure-no-auth): anyone "
              "who can reach this port can review and train", file=sys.stderr)
    nproc = int(number(args.nproc, "--nproc", low=1, integer=True, text=True))
    _serve(args.dir, args.host, port, auth, nproc)


def cmd_demo(args) -> None:
    port = _port(args.port)
    root = build_demo_project(check_folder_target(args.cache, "--cache"))
    print(f"demo project: {root}")
    _serve(root, "127.0.0.1", port, None)


def build_demo_project(cache: Path, scale: str | float = "default", config: str | Path = "default") -> Path:
    """Synthetic data, a project importing it and a finished round 0 under `cache`; each step
    is skipped when an earlier run already did it, so the demo starts at once the second time."""
    from ..engine.synthetic import make_synthetic

    from ..service.rounds import run_round

    data, root = cache / "data", cache / "project"
    if not (data / "samples.csv").is_file():
        staging = cache / "data.partial"  # renamed when complete: a killed run leaves no half set
        shutil.rmtree(staging, ignore_errors=True)
        _say(f"writing synthetic data to {data} (first run only)")
        with console_progress("synthetic data") as progress:
            make_synthetic(staging, scale=scale, seed=0, progress=progress)
        staging.rename(data)
    if not (root / "project.db").is_file():
        Project.init(root).close()
    with Project.open(root) as project:
        if not project.status()["samples"]["total"]:
            _say(f"importing it into the demo project {root}")
            with console_progress("import") as progress:
                project.import_native(data, progress=progress)
        if project.current_round_id() is None:
            cfg_path = config_path(str(config))
            _say(f"training round 0 with the {cfg_path.stem} preset (first run only; minutes on a CPU)")
            with console_progress("train round 0") as progress:
                run_round(project, load_config(cfg_path), config_name=cfg_path.stem, progress=progress)
    return root


def _say(line: str) -> None:
    print(f"mersemi demo: {line}", file=sys.stderr, flush=True)


def _serve(root: Path, host: str, port: int, auth: list[tuple[str, str]] | None, nproc: int = 1) -> None:
    from .app import serve

    open_project(root).close()  # a clear one-line error for a folder that is not a project
    _check_listen(host, port)
    remove_leftovers()  # temporary folders of servers killed before they could clean up
    # Gradio's files in a folder of this server's own, not the machine-wide one every Gradio
    # app shares (another app's downloads were reachable through it).
    gradio_tmp = Path(tempfile.mkdtemp(prefix=temp_prefix("gradio")))
    os.environ["GRADIO_TEMP_DIR"] = str(gradio_tmp)
    # SIGTERM stops the server like Ctrl-C, so that a round training in it is marked failed.
    signal.signal(signal.SIGTERM, lambda *_: _raise_interrupt())
    try:
        demo = serve(root, host=host, port=port, auth=auth, nproc=nproc)
    except OSError as e:
        raise ProjectError(f"cannot listen on {host}:{port}: {e}") from None
    finally:
        shutil.rmtree(gradio_tmp, ignore_errors=True)
    if demo.actions.training.is_running():
        # Its round is marked failed already; the training thread, inside torch, would abort
        # the interpreter's teardown, so leave without one.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _addresses(host: str, port: int) -> list[tuple]:
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        raise ProjectError(f"--host {shown(host)}: not a name or address this machine can resolve "
                           f"({getattr(e, 'strerror', None) or e})") from None


def _is_loopback(host: str) -> bool:
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in _addresses(host, 0))


def _check_listen(host: str, port: int) -> None:
    """One line, before Gradio's own search ("Cannot find empty port"), when the address is
    not this machine's or the port is taken."""
    family, kind, proto, _, addr = _addresses(host, port)[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            raise ProjectError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


def _port(value: str) -> int:
    return int(number(value, "--port", low=1, high=65535, integer=True, text=True))


def _raise_interrupt() -> None:
    raise KeyboardInterrupt


def _parse_logins(values: list[str], users_file: Path | None) -> list[tuple[str, str]] | None:
    """The logins of --auth (repeated) and --users FILE; every bad entry is named in one
    message, and nothing is served. None when there are none."""
    entries = [(f"--auth {i + 1}", v) for i, v in enumerate(values)]
    if users_file is not None:
        lines = read_text(users_file, "--users", limit=MiB).splitlines()
        entries += [(f"--users line {n}", line.strip()) for n, line in enumerate(lines, 1)
                    if line.strip() and not line.strip().startswith("#")]
        if not any(w.startswith("--users") for w, _ in entries):
            raise ProjectError(f"--users: no USER:PASSWORD line in {shown(str(users_file))}")
    logins: dict[str, str] = {}
    errors = []
    for where, value in entries:
        user, sep, password = value.partition(":")
        user = user.strip()
        if not sep or not user or not password:
            errors.append(f"{where}: expected USER:PASSWORD")  # never echo: it may hold a password
            continue
        try:
            person(user, f"{where}: user name")
        except UsageError as e:
            errors.append(str(e))
            continue
        if user in logins:
            errors.append(f"{where}: user {shown(user)} given twice")
        elif (twin := lookalike(user, logins)) is not None:
            errors.append(f"{where}: user {shown(user)} looks like the user {shown(twin)}; give each a name "
                          "that reads differently")
        else:
            logins[user] = password
    if errors:
        more = f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
        raise ProjectError("; ".join(errors[:20]) + more)
    return list(logins.items()) or None
