"""Bad command lines and bad config files: each gives `mersemi: error: <one line>` on stderr,
exit 1, and changes nothing on disk (issue 10, point 10)."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_cli import run, snapshot

MERSEMI = str(Path(sys.executable).parent / "mersemi")


def one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 1, err
    assert err.startswith("mersemi: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.fixture
def project(tmp_path, capsys) -> Path:
    assert run(capsys, "init", tmp_path / "p")[0] == 0
    return tmp_path / "p"


def test_config_that_is_a_folder(project, tmp_path, capsys):
    before = snapshot(project)
    folder = tmp_path / "configs.d"
    folder.mkdir()
    one_line_error(*run(capsys, "train", project, "--config", folder)[::2], str(folder), "not a file")
    assert snapshot(project) == before


@pytest.mark.parametrize("extends, problem", [
    ("{folder}", "not a file"),
    ("5", "extends: expected a file name"),
    ("[a, b]", "extends: expected a file name"),
    ("no-such.yaml", "no such file"),
])
def test_bad_extends(extends, problem, project, tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    config = tmp_path / "bad.yaml"
    config.write_text(f"extends: {extends.format(folder=tmp_path / 'sub')}\nseed: 1\n")
    before = snapshot(project)
    one_line_error(*run(capsys, "train", project, "--config", config)[::2], "bad.yaml", problem)
    assert snapshot(project) == before


def alias_bomb(levels: int = 9) -> str:
    """The billion laughs under model.vote_weights: 9 levels of 9 aliases, 9**9 strings once
    expanded. The anchors sit in a key read after vote_weights, so that a loader that
    expands aliases reaches the bomb before any other error."""
    chain = ['&l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    chain += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return (f"model:\n  default_vote_weight: [{', '.join(chain)}]\n"
            f"  vote_weights: *l{levels - 1}\n")


def test_yaml_alias_bomb_is_refused_at_once(project, tmp_path, capsys):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("extends: " + str(Path(__file__).parent / "fast.yaml") + "\n" + alias_bomb())
    t0 = time.perf_counter()
    code, _, err = run(capsys, "train", project, "--config", bomb)
    assert time.perf_counter() - t0 < 1.0
    one_line_error(code, err, "bomb.yaml", "YAML alias")


def test_an_alias_nested_deep_in_a_config_is_refused(project, tmp_path, capsys):
    config = tmp_path / "anchors.yaml"
    config.write_text("extends: " + str(Path(__file__).parent / "fast.yaml") + "\n"
                      "finetune: &ft\n  epochs: 2\npretrain: *ft\n")
    one_line_error(*run(capsys, "train", project, "--config", config)[::2], "anchors.yaml", "YAML alias")


def test_oversized_and_undecodable_configs(project, tmp_path, capsys):
    big = tmp_path / "big.yaml"
    big.write_text("seed: 1\n" + "# padding\n" * 200_000)
    one_line_error(*run(capsys, "train", project, "--config", big)[::2], "big.yaml", "more than the 1,000,000 allowed")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"seed: \xff\xfe\x00\x01\n")
    one_line_error(*run(capsys, "train", project, "--config", binary)[::2], "binary.yaml", "UTF-8")
    deep = tmp_path / "deep.yaml"
    deep.write_text("seed: " + "[" * 50_000 + "]" * 50_000 + "\n")
    one_line_error(*run(capsys, "train", project, "--config", deep)[::2], "deep.yaml")


@pytest.mark.parametrize("scale", ["inf", "-inf", "nan", "-1", "0", "1e30", "huge"])
def test_synth_scale_is_a_sensible_factor(scale, tmp_path, capsys):
    out = tmp_path / "data"
    one_line_error(*run(capsys, "synth", out, f"--scale={scale}")[::2], "scale", scale)
    assert not out.exists()


@pytest.mark.parametrize("port", ["99999", "0", "-1", "65536", "http", "80.5"])
def test_serve_port_must_be_a_port_number(port, project):
    # timeout: a guard against a hang, not a timing (60 s ran out on a machine with a load of 15)
    out = subprocess.run([MERSEMI, "serve", str(project), "--port", port],
                         capture_output=True, text=True, timeout=300)
    one_line_error(out.returncode, out.stderr, "--port", port)


def test_bad_command_lines_are_one_line_errors(project, capsys):
    one_line_error(*run(capsys, "export", project, "--what", "everything", "--out", "x.csv")[::2],
                   "export", "--what")
    one_line_error(*run(capsys, "status")[::2], "status", "required")
    one_line_error(*run(capsys)[::2], "required")
    one_line_error(*run(capsys, "frobnicate")[::2], "frobnicate")


def test_over_long_inputs_are_echoed_cut_to_200_characters(project, capsys):
    long_name = "x" * 5000
    code, _, err = run(capsys, "thresholds", project, "--set", f"{long_name}=0.5")
    one_line_error(code, err, "unknown class")
    assert len(err) < 400, len(err)


def test_names_longer_than_the_database_holds_are_refused(tmp_path, capsys):
    from app_fixtures import make_review_project

    make_review_project(tmp_path / "p").close()
    before = snapshot(tmp_path / "p")
    decisions = tmp_path / "d.csv"
    decisions.write_text(f"name,decision,label\nu05,accept,\n{'y' * 300},reject,\n")
    one_line_error(*run(capsys, "decide", tmp_path / "p", "--file", decisions, "--reviewer", "ann")[::2],
                   "longer than 255")
    decisions.write_text("name,decision,label\nu05,accept,\n")
    one_line_error(*run(capsys, "decide", tmp_path / "p", "--file", decisions, "--reviewer", "r" * 129)[::2],
                   "reviewer", "longer than 128")
    assert snapshot(tmp_path / "p") == before

    native = tmp_path / "native"
    native.mkdir()
    (native / "samples.csv").write_text(f"name,split,label\n{'z' * 256},labeled,calm\nb,labeled,joy\n")
    import numpy as np
    np.save(native / "audio.npy", np.zeros((2, 3), np.float32))
    assert run(capsys, "init", tmp_path / "q", "--classes", "calm,joy")[0] == 0
    before = snapshot(tmp_path / "q")
    one_line_error(*run(capsys, "import", tmp_path / "q", "--native", native)[::2], "samples.csv",
                   "longer than 255")
    assert snapshot(tmp_path / "q") == before
