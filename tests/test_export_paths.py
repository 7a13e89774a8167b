"""`mersemi export --out` never writes into a project except under its exports/ folder, and
refuses a folder or a missing parent in one line (issue 10, points 7 and 10)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mersemi.engine.synthetic import make_synthetic
from mersemi.service.exports import export
from mersemi.service.project import Project, ProjectError
from test_cli import run, snapshot

KINDS = [("labels", "csv"), ("labels", "mertools"), ("decisions", "csv"), ("predictions", "csv")]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("native") / "data"
    make_synthetic(out, scale=0.02, seed=1)
    return out


@pytest.fixture
def project(tmp_path, data, capsys) -> Path:
    root = tmp_path / "p"
    assert run(capsys, "init", root)[0] == 0
    assert run(capsys, "import", root, "--native", data)[0] == 0
    return root


def refused(capsys, root: Path, out: Path, what: str, fmt: str, *needles: str) -> None:
    before = snapshot(root)
    code, _, err = run(capsys, "export", root, "--what", what, "--out", out, "--format", fmt)
    assert code == 1 and err.startswith("mersemi: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    assert snapshot(root) == before


@pytest.mark.parametrize("what, fmt", KINDS)
def test_outputs_inside_the_project_are_refused(what, fmt, project, tmp_path, capsys):
    inside = [project / "project.db", project / "features" / "audio.npy", project / "features" / "manifest.json",
              project / "checkpoints" / "round-0.pt", project / "labels.csv",
              project / "exports" / ".." / "project.db"]
    for out in inside:
        refused(capsys, project, out, what, fmt, str(out), "inside the project", "exports")


@pytest.mark.parametrize("what, fmt", KINDS)
def test_symlinks_are_never_written_through(what, fmt, project, tmp_path, capsys):
    link = tmp_path / "innocent.csv"
    link.symlink_to(project / "project.db")
    refused(capsys, project, link, what, fmt, "symbolic link")
    alias = tmp_path / "alias"
    alias.symlink_to(project, target_is_directory=True)
    refused(capsys, project, alias / "features" / "text.npy", what, fmt, "inside the project")


def test_an_exports_folder_that_points_elsewhere_in_the_project_is_refused(project, capsys):
    (project / "exports").rmdir()
    (project / "exports").symlink_to(project / "features", target_is_directory=True)
    refused(capsys, project, project / "exports" / "audio.npy", "labels", "csv", "inside the project")


def test_another_project_is_protected_too(project, tmp_path, capsys):
    other = tmp_path / "other"
    assert run(capsys, "init", other)[0] == 0
    before = snapshot(other)
    refused(capsys, project, other / "project.db", "labels", "csv", "inside the project")
    assert snapshot(other) == before


@pytest.mark.parametrize("what, fmt", KINDS)
def test_folder_and_missing_parent_are_one_line_errors(what, fmt, project, tmp_path, capsys):
    refused(capsys, project, tmp_path, what, fmt, str(tmp_path), "is a folder")
    refused(capsys, project, project / "exports", what, fmt, "is a folder")
    refused(capsys, project, tmp_path / "no" / "such" / "labels.csv", what, fmt, "no such folder")


def test_allowed_places_still_work(project, tmp_path, capsys):
    for out in (project / "exports" / "labels.csv", tmp_path / "elsewhere.csv"):
        code, _, err = run(capsys, "export", project, "--what", "labels", "--out", out)
        assert code == 0 and out.is_file(), err
    again = project / "exports" / "labels.csv"
    assert run(capsys, "export", project, "--what", "decisions", "--out", again)[0] == 0  # overwrite: fine
    npz = project / "exports" / "label-6way.npz"
    assert run(capsys, "export", project, "--what", "labels", "--out", npz, "--format", "mertools")[0] == 0


def test_the_python_api_refuses_too(project):
    with Project.open(project) as p:
        with pytest.raises(ProjectError, match="inside the project"):
            export(p, "labels", project / "project.db")
        assert os.path.getsize(project / "project.db") > 0
