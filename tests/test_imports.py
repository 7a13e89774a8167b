"""How the package's modules import each other: each imports alone (no cycle breaks it), the
module-level imports form no cycle (type-only imports included), no module imports another
module's private name. (What the command line imports: tests/test_cli_startup.py.)"""
from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Alembic runs it inside a migration's context; it is no module to import.
NOT_IMPORTABLE = {"mersemi.db.migrations.env"}


def package_modules() -> dict[str, Path]:
    """Every module of the installed package (pyproject's packages), name -> file."""
    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = setup["package-dir"]
    out = {}
    for package in setup["packages"]:
        top = next(p for p in dirs if package == p or package.startswith(p + "."))
        folder = REPO / dirs[top] / package[len(top):].lstrip(".").replace(".", "/")
        for file in sorted(folder.glob("*.py")):
            name = package if file.stem == "__init__" else f"{package}.{file.stem}"
            out[name] = file
    return out


MODULES = package_modules()


def imports_of(name: str, tree: ast.Module, top_level_only: bool) -> list[tuple[ast.ImportFrom | ast.Import, str]]:
    """(statement, module of the package it names) for each import of a package module: at
    module level (in if / try blocks too, `if TYPE_CHECKING:` included) or anywhere."""
    if top_level_only:
        nodes, stack = [], list(tree.body)
        while stack:
            n = stack.pop()
            if isinstance(n, (ast.Import, ast.ImportFrom)):
                nodes.append(n)
            elif isinstance(n, (ast.If, ast.Try)):
                stack += n.body + n.orelse + getattr(n, "finalbody", []) + \
                    [x for h in getattr(n, "handlers", []) for x in h.body]
    else:
        nodes = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    package = name if MODULES[name].stem == "__init__" else name.rsplit(".", 1)[0]
    out = []
    for n in nodes:
        if isinstance(n, ast.Import):
            out += [(n, a.name) for a in n.names if a.name in MODULES]
            continue
        if n.level:
            base = package.split(".")[:len(package.split(".")) - n.level + 1] + (n.module or "").split(".")
            source = ".".join(p for p in base if p)
        else:
            source = n.module or ""
        if not source.startswith("mersemi"):
            continue
        for a in n.names:
            out.append((n, f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source))
    return out


@pytest.mark.slow
def test_every_module_imports_alone_in_a_fresh_interpreter():
    """Each module is the first of the package a fresh interpreter imports (a child forked from
    one that has loaded only the third-party libraries, so that 80 imports take seconds): an
    import cycle that breaks depending on which module comes first fails here."""
    names = sorted(set(MODULES) - NOT_IMPORTABLE)
    script = f"""
import importlib, os, sys, traceback
for lib in ("torch", "gradio", "sklearn", "scipy", "pandas", "numpy", "sqlalchemy", "alembic", "yaml"):
    importlib.import_module(lib)
assert not [m for m in sys.modules if m.startswith("mersemi")]
failed = {{}}
for name in {names!r}:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            importlib.import_module(name)
            code = 0
        except BaseException:
            os.write(w, traceback.format_exc().strip().splitlines()[-1].encode()[-500:])
            code = 1
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        error = f.read().decode()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        failed[name] = error or f"exit status {{status}}"
print(repr(failed))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "{}", out.stdout[-5000:]


def import_cycles() -> list[list[str]]:
    """The cycles of the module-level import graph (strongly connected components)."""
    graph = {name: {target for _, target in imports_of(name, ast.parse(file.read_text()), top_level_only=True)
                    if target != name}
             for name, file in MODULES.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_module_level_imports_form_no_cycle():
    """A cycle that happens to import in one order (or only under TYPE_CHECKING) is still one."""
    assert import_cycles() == []


def private_imports() -> list[str]:
    """Every use of another package module's private name (`from .x import _y`, `x._y` with x a
    package module): file:line and what."""
    found = []
    for name, file in MODULES.items():
        tree = ast.parse(file.read_text())
        bound: set[str] = set()   # local names of package modules
        for n, target in imports_of(name, tree, top_level_only=False):
            if isinstance(n, ast.ImportFrom):
                for a in n.names:
                    private = a.name.startswith("_") and not a.name.startswith("__")
                    if private and target != name:
                        found.append(f"{file.relative_to(REPO)}:{n.lineno}: from {target} import {a.name}")
                    if f"{target}" in MODULES and target.endswith("." + a.name):
                        bound.add(a.asname or a.name)
            else:
                bound |= {a.asname or a.name for a in n.names if a.asname}
        for n in ast.walk(tree):
            if not isinstance(n, ast.Attribute) or not n.attr.startswith("_") or n.attr.startswith("__"):
                continue
            owner = ast.unparse(n.value)
            if owner in bound or owner in MODULES:   # review._views, mersemi.service.review._views
                found.append(f"{file.relative_to(REPO)}:{n.lineno}: {owner}.{n.attr}")
    return found


def test_no_module_uses_another_modules_private_name():
    assert private_imports() == []
