"""The command-line contract: init/import/status round trips, thresholds, decide, export, and
bad input that must leave the project byte-for-byte unchanged."""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mersemi.engine.results import AutoAccept, ClassPick
from mersemi.engine.synthetic import make_synthetic
from mersemi.ui.cli_commands import auto_accept_notes
from fixtures import build_mertools
from mersemi.ui.cli import main

CLASSES = ["neutral", "angry", "happy", "sad", "worried", "surprise"]


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(project: Path) -> dict[str, str]:
    """Hash of every file under the project: the database and the feature files."""
    return {str(p.relative_to(project)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(project.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def native(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("native") / "data"
    make_synthetic(out, scale=0.05, seed=3)
    return out


@pytest.fixture
def empty_project(tmp_path, capsys) -> Path:
    assert run(capsys, "init", tmp_path / "p")[0] == 0
    return tmp_path / "p"


# ---------------------------------------------------------------------- round trips

def test_init_import_native_status_round_trip(empty_project, native, capsys):
    code, out, err = run(capsys, "import", empty_project, "--native", native)
    assert code == 0, err
    code, out, _ = run(capsys, "status", empty_project, "--json")
    status = json.loads(out)
    df = pd.read_csv(native / "samples.csv")
    assert status["samples"]["total"] == len(df)
    for split in ("labeled", "unlabeled", "test"):
        assert status["samples"][split] == int((df["split"] == split).sum())
    labeled = df[df["split"] == "labeled"]
    assert status["labeled_per_class"] == {c: int((labeled["label"] == c).sum()) for c in CLASSES}
    assert status["rounds"] == [] and status["current_round"] is None
    # Features are stored float16 and read back row by row.
    from mersemi.engine.features import FeatureStore
    fs = FeatureStore(empty_project / "features")
    for m, dim in status["modalities"].items():
        src = np.load(native / f"{m}.npy")
        assert src.shape[1] == dim
        np.testing.assert_allclose(fs.rows(m, [0, 5]), src[[0, 5]].astype(np.float16), rtol=1e-3)


def test_import_mertools_round_trip(empty_project, tmp_path, capsys):
    data = build_mertools(tmp_path / "mer")
    code, _, err = run(capsys, "import", empty_project, *data.cli_args())
    assert code == 0, err
    status = json.loads(run(capsys, "status", empty_project, "--json")[1])
    assert status["samples"] == {"labeled": len(data.train), "unlabeled": len(data.pool), "test": 0,
                                 "total": len(data.names)}
    assert status["modalities"] == {"audio": 6, "text": 10, "video": 4}
    from mersemi.engine.features import FeatureStore
    fs = FeatureStore(empty_project / "features")
    for m in ("audio", "text", "video"):  # [D], [T, D] mean-pooled, per-frame folders averaged
        got = fs.rows(m, np.arange(len(data.names)))
        want = np.stack([data.expected[m][n] for n in data.names])
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)


def test_import_mertools_csv_labels_and_float32(empty_project, tmp_path, capsys):
    data = build_mertools(tmp_path / "mer", label_format="csv", transcripts=False, media=False)
    code, _, err = run(capsys, "import", empty_project, *data.cli_args(), "--dtype", "float32")
    assert code == 0, err
    from mersemi.engine.features import FeatureStore
    fs = FeatureStore(empty_project / "features")
    assert fs.dtype == "float32"
    np.testing.assert_array_equal(fs.rows("audio", [0])[0], data.expected["audio"][data.names[0]])


def test_second_import_is_refused(empty_project, native, capsys):
    assert run(capsys, "import", empty_project, "--native", native)[0] == 0
    before = snapshot(empty_project)
    code, _, err = run(capsys, "import", empty_project, "--native", native)
    assert code == 1 and "already holds" in err
    assert snapshot(empty_project) == before


def test_console_script_reports_errors_on_one_line(tmp_path):
    exe = Path(sys.executable).with_name("mersemi")
    r = subprocess.run([str(exe), "status", str(tmp_path / "nothing")], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "not a project" in r.stderr


# ---------------------------------------------------------------------- bad input

def _corrupt_native(kind: str, folder: Path) -> tuple[str, str]:
    """Break a copy of a native folder; return (file, what) the error must name: the sample,
    or the problem when no one sample is at fault."""
    df = pd.read_csv(folder / "samples.csv", dtype=str, keep_default_na=False)
    if kind == "duplicate":
        df.loc[7, "name"] = df.loc[3, "name"]
        df.to_csv(folder / "samples.csv", index=False)
        return "samples.csv", df.loc[3, "name"]
    if kind == "unknown_class":
        i = int(np.flatnonzero(df["split"] == "labeled")[2])
        df.loc[i, "label"] = "bored"
        df.to_csv(folder / "samples.csv", index=False)
        return "samples.csv", df.loc[i, "name"]
    if kind == "missing_column":
        df.drop(columns=["split"]).to_csv(folder / "samples.csv", index=False)
        return "samples.csv", "split"
    if kind == "inf":
        m = np.load(folder / "video.npy")
        m[11, 2] = np.inf
        np.save(folder / "video.npy", m)
        return "video.npy", df.loc[11, "name"]
    if kind == "unreadable":
        (folder / "text.npy").write_bytes(b"this is not a numpy file")
        return "text.npy", "unreadable .npy file"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["duplicate", "unknown_class", "missing_column", "inf", "unreadable"])
def test_bad_native_import_names_the_problem_and_changes_nothing(kind, empty_project, native, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(native, bad)
    file, what = _corrupt_native(kind, bad)
    before = snapshot(empty_project)
    code, out, err = run(capsys, "import", empty_project, "--native", bad)
    assert code == 1
    assert err.count("\n") == 1, err
    assert what and file in err and what in err
    assert snapshot(empty_project) == before


def _corrupt_mertools(kind: str, data) -> tuple[str, str]:
    """As _corrupt_native, for a MERTools folder."""
    name = data.names[5]
    if kind == "missing_sample":
        data.feature_file("audio", name).unlink()
        return data.modality_map["audio"], name
    if kind == "wrong_dimension":
        np.save(data.feature_file("audio", name), np.zeros(7, np.float32))
        return f"{name}.npy", name
    if kind == "nan":
        frames = np.load(data.feature_file("text", name))
        frames[0, 1] = np.nan
        np.save(data.feature_file("text", name), frames)
        return f"{name}.npy", name
    if kind == "unreadable":
        data.feature_file("audio", name).write_bytes(b"\x93NUMPY garbage")
        return f"{name}.npy", name
    if kind == "empty_labels":
        np.savez(data.labels, train_corpus={}, test1_corpus={})
        return data.labels.name, "empty label file"
    if kind == "unknown_class":
        corpus = {n: {"emo": "bored" if n == name else e} for n, e in data.train.items()}
        np.savez(data.labels, train_corpus=corpus, test1_corpus={n: {"emo": "neutral"} for n in data.pool})
        return data.labels.name, name
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["missing_sample", "wrong_dimension", "nan", "unreadable",
                                  "empty_labels", "unknown_class"])
def test_bad_mertools_import_names_the_problem_and_changes_nothing(kind, empty_project, tmp_path, capsys):
    data = build_mertools(tmp_path / "mer")
    file, what = _corrupt_mertools(kind, data)
    before = snapshot(empty_project)
    code, out, err = run(capsys, "import", empty_project, *data.cli_args())
    assert code == 1
    assert err.count("\n") == 1, err
    assert what and file in err and what in err
    assert snapshot(empty_project) == before
    assert list((empty_project / "features").iterdir()) == []


def test_bad_init_arguments(tmp_path, capsys):
    assert run(capsys, "init", tmp_path / "a", "--classes", "happy")[0] == 1
    assert run(capsys, "init", tmp_path / "b", "--classes", "happy,Happy")[0] == 1
    assert run(capsys, "init", tmp_path / "c")[0] == 0
    code, _, err = run(capsys, "init", tmp_path / "c")
    assert code == 1 and "already a project" in err


# ---------------------------------------------------------------------- thresholds

def _threshold_values(out: str) -> dict[str, float]:
    return {c: row["threshold"] for c, row in json.loads(out).items()}


def test_thresholds_set_and_validate(empty_project, capsys):
    code, out, _ = run(capsys, "thresholds", empty_project, "--json")
    assert _threshold_values(out) == {"neutral": 0.99, "angry": 0.99, "happy": 0.99, "sad": 0.99,
                                      "worried": 0.85, "surprise": 0.85}
    code, out, _ = run(capsys, "thresholds", empty_project, "--set", "happy=0.9,Worried=0.7", "--json")
    assert code == 0 and _threshold_values(out)["happy"] == 0.9 and _threshold_values(out)["worried"] == 0.7
    before = snapshot(empty_project)
    for bad in ("happy=1.5", "happy=-0.1", "happy=abc", "bored=0.5", "happy", "happy=nan"):
        code, _, err = run(capsys, "thresholds", empty_project, "--set", f"sad=0.5,{bad}")
        assert code == 1 and err.count("\n") == 1, (bad, err)
    assert snapshot(empty_project) == before  # sad=0.5 was not written either


# ---------------------------------------------------------------------- with a trained round

@pytest.fixture(scope="module")
def trained(tmp_path_factory, native) -> Path:
    """A project with round 0 trained by the real engine (fast preset)."""
    root = tmp_path_factory.mktemp("trained") / "p"
    assert main(["init", str(root)]) == 0
    assert main(["import", str(root), "--native", str(native)]) == 0
    assert main(["train", str(root), "--config", str(Path(__file__).parent / "fast.yaml")]) == 0
    return root


@pytest.fixture
def project(trained, tmp_path) -> Path:
    copy = tmp_path / "p"
    shutil.copytree(trained, copy)
    return copy


def _pool_predictions(project: Path, tmp_path: Path, capsys) -> pd.DataFrame:
    out = tmp_path / "pred.csv"
    assert run(capsys, "export", project, "--what", "predictions", "--out", out)[0] == 0
    return pd.read_csv(out)


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "decision", "label"])
        w.writerows(rows)
    return path


@pytest.mark.slow
def test_status_json_after_a_round(project, capsys):
    status = json.loads(run(capsys, "status", project, "--json")[1])
    (r,) = status["rounds"]
    assert r["status"] == "done" and status["current_round"] == r["id"] == 0
    assert 0 < r["cv_waf"] <= 1 and 0 < r["test_waf"] <= 1
    assert set(r["cv_f1"]) == set(CLASSES) and set(r["test_f1"]) == set(CLASSES)
    assert r["pseudo_labels"] == {c: 0 for c in CLASSES}
    assert r["wall_s"] > 0
    # the round records the thresholds it started with; the target-precision policy then set
    # the project's own from the round's calibrated confidences
    assert set(r["thresholds"]) == set(CLASSES) and r["policy"] == "target_precision"
    assert all(0 < v <= 1 for v in status["thresholds"].values())
    assert 0 <= r["test_ece"] <= 1 and 0 <= r["oof_ece"] <= 1 and r["temperature"] > 0
    # label spreading ran (the default preset, a small project) and its weight is on record
    assert r["graph_weight"] >= 0 and 0 <= r["graph_cv_waf"] <= 1


@pytest.mark.slow
def test_decide_export_labels_and_decisions(project, tmp_path, capsys):
    pred = _pool_predictions(project, tmp_path, capsys)
    pool = pred[pred["split"] == "unlabeled"].reset_index(drop=True)
    assert list(pred.columns) == ["name", "split", "predicted", "confidence"] + [f"p_{c}" for c in CLASSES]
    np.testing.assert_allclose(pred[[f"p_{c}" for c in CLASSES]].sum(axis=1), 1, atol=1e-4)
    other = next(c for c in CLASSES if c != pool.loc[2, "predicted"])
    given = next(c for c in CLASSES if c != pool.loc[3, "predicted"])
    f = _write_csv(tmp_path / "d.csv", [[pool.loc[0, "name"], "accept", ""],
                                        [pool.loc[1, "name"], "reject", ""],
                                        [pool.loc[2, "name"], "relabel", other],
                                        [pool.loc[3, "name"], "label", given]])
    code, out, err = run(capsys, "decide", project, "--file", f, "--reviewer", "ann")
    assert code == 0, err
    status = json.loads(run(capsys, "status", project, "--json")[1])
    assert sum(status["decisions"]["accept"].values()) == 1
    assert status["decisions"]["relabel"][other] == 1

    # One source per label, the same in the export, status and the decision log: a person's
    # accept verified the prediction, a relabel changed it, a label gave a class.
    labels_out = tmp_path / "labels.csv"
    assert run(capsys, "export", project, "--what", "labels", "--out", labels_out)[0] == 0
    labels = pd.read_csv(labels_out)
    assert (labels["source"] == "gold").sum() == status["samples"]["labeled"]
    by_source = {s: labels[labels["source"] == s][["name", "label"]].values.tolist()
                 for s in ("verified", "relabeled", "labeled", "pseudo")}
    assert by_source == {"verified": [[pool.loc[0, "name"], pool.loc[0, "predicted"]]],
                         "relabeled": [[pool.loc[2, "name"], other]],
                         "labeled": [[pool.loc[3, "name"], given]], "pseudo": []}
    assert {s: {c: n for c, n in status["labels"][s].items() if n} for s in by_source} == {
        "verified": {pool.loc[0, "predicted"]: 1}, "relabeled": {other: 1}, "labeled": {given: 1}, "pseudo": {}}

    log_out = tmp_path / "log.csv"
    assert run(capsys, "export", project, "--what", "decisions", "--out", log_out)[0] == 0
    log = pd.read_csv(log_out, keep_default_na=False)
    assert log["decision"].tolist() == ["accept", "reject", "relabel", "label"]
    assert log["source"].tolist() == ["verified", "", "relabeled", "labeled"]
    assert set(log["reviewer"]) == {"ann"}

    npz_out = tmp_path / "label-6way.npz"
    assert run(capsys, "export", project, "--what", "labels", "--out", npz_out, "--format", "mertools")[0] == 0
    npz = np.load(npz_out, allow_pickle=True)
    train = npz["train_corpus"].item()
    assert train[pool.loc[2, "name"]]["emo"] == other and len(train) == len(labels)
    assert pool.loc[0, "name"] not in npz["test1_corpus"].item()


@pytest.mark.slow
@pytest.mark.parametrize("rows, problem", [
    ([["no_such_sample", "accept", ""]], "unknown sample"),
    ([["{pool}", "relabel", "bored"]], "unknown label"),
    ([["{pool}", "relabel", ""]], "needs a label"),
    ([["{pool}", "maybe", ""]], "must be accept, reject, relabel or label"),
    ([["{labeled}", "accept", ""]], "not in the pool (it is a labeled sample)"),
    ([["{pool}", "accept", ""], ["no_such_sample", "reject", ""]], "unknown sample"),
    ([["{pool}", "label", "bored"]], "unknown label"),
    ([["{pool}", "label", ""]], "label needs a label"),
    ([["{labeled}", "label", "happy"]], "not in the pool (it is a labeled sample)"),
    ([["{test}", "label", "happy"]], "not in the pool (it is a test sample)"),
    ([["nobody", "label", "happy"]], "unknown sample"),
])
def test_bad_decisions_change_nothing(rows, problem, project, tmp_path, capsys):
    pred = _pool_predictions(project, tmp_path, capsys)
    pool_name = pred[pred["split"] == "unlabeled"]["name"].iloc[0]
    labeled_name, test_name = _a_name(project, "labeled"), _a_name(project, "test")
    rows = [[r[0].format(pool=pool_name, labeled=labeled_name, test=test_name), r[1], r[2]] for r in rows]
    f = _write_csv(tmp_path / "d.csv", rows)
    before = snapshot(project)
    code, _, err = run(capsys, "decide", project, "--file", f)
    assert code == 1 and err.count("\n") == 1
    assert problem in err and str(f) in err
    assert snapshot(project) == before


def _a_name(project: Path, split: str) -> str:
    from mersemi.service.project import Project
    with Project.open(project) as p:
        ids, _, _ = p.store.samples.split_arrays(split)
        return p.store.samples.names([int(ids[0])])[int(ids[0])]


@pytest.mark.slow
def test_decide_names_every_bad_row(project, tmp_path, capsys):
    f = _write_csv(tmp_path / "d.csv", [["ghost_1", "accept", ""], [_a_name(project, "test"), "label", "sad"],
                                        ["ghost_2", "label", "sad"]])
    before = snapshot(project)
    code, _, err = run(capsys, "decide", project, "--file", f)
    assert code == 1 and err.count("\n") == 1
    assert "ghost_1" in err and "ghost_2" in err and "test sample" in err
    assert snapshot(project) == before


@pytest.mark.slow
def test_label_gives_a_class_to_any_pool_sample_and_relabel_to_the_prediction_is_an_accept(project, tmp_path, capsys):
    pred = _pool_predictions(project, tmp_path, capsys)
    pool = pred[pred["split"] == "unlabeled"].reset_index(drop=True)
    low = pool.sort_values("confidence").iloc[0]          # far below any threshold
    other = next(c for c in CLASSES if c != low["predicted"])
    f = _write_csv(tmp_path / "d.csv", [[low["name"], "label", other],
                                        [pool.loc[1, "name"], "relabel", pool.loc[1, "predicted"]]])
    code, out, err = run(capsys, "decide", project, "--file", f, "--reviewer", "ann")
    assert code == 0, err
    assert "1 relabels named the predicted class and were recorded as accepts" in out
    status = json.loads(run(capsys, "status", project, "--json")[1])
    assert status["decisions"]["label"][other] == 1
    assert sum(status["decisions"]["accept"].values()) == 1 and sum(status["decisions"]["relabel"].values()) == 0
    labels_out = tmp_path / "labels.csv"
    assert run(capsys, "export", project, "--what", "labels", "--out", labels_out)[0] == 0
    labels = pd.read_csv(labels_out).set_index("name")
    assert labels.loc[low["name"], "label"] == other


@pytest.mark.slow
def test_queue_prints_what_the_app_shows(project, capsys):
    from mersemi.service.project import Project
    from mersemi.service.review import DEFAULT_QUEUE, queue_page

    code, out, err = run(capsys, "queue", project, "--limit", "7", "--csv")
    assert code == 0, err
    rows = list(csv.DictReader(out.splitlines()))
    assert list(rows[0])[:5] == ["name", "kind", "predicted", "confidence", "reason"]
    with Project.open(project) as p:
        cards, total = queue_page(p, limit=7)
        th = p.thresholds()
    assert [r["name"] for r in rows] == [c.name for c in cards] and len(rows) == min(7, total)
    kinds = [r["kind"] for r in rows]
    assert set(kinds) <= ({"label", "verify"} if DEFAULT_QUEUE == "both" else {DEFAULT_QUEUE})
    assert kinds == sorted(kinds)   # "both": every label card before the first verify card
    verify = json.loads(run(capsys, "queue", project, "--kind", "verify", "--limit", "1000", "--json")[1])
    assert all(r["confidence"] >= th[r["predicted"]] - 1e-4 for r in verify)
    assert [r["confidence"] for r in verify] == sorted(r["confidence"] for r in verify)
    label = json.loads(run(capsys, "queue", project, "--kind", "label", "--limit", "1000", "--json")[1])
    assert all(r["confidence"] < th[r["predicted"]] for r in label)
    assert all(r["reason"].startswith("below threshold: top two classes") for r in label)
    assert not {r["name"] for r in verify} & {r["name"] for r in label}
    happy = json.loads(run(capsys, "queue", project, "--kind", "label", "--class", "happy", "--json")[1])
    assert happy and {r["predicted"] for r in happy} == {"happy"}
    for bad in (["--limit", "0"], ["--limit", "x"], ["--class", "bored"]):
        code, _, err = run(capsys, "queue", project, *bad)
        assert code == 1 and err.count("\n") == 1, (bad, err)


@pytest.mark.parametrize("bad", ["0", "-2", "x", "1.5", "inf"])
def test_train_refuses_a_bad_round_count_and_writes_nothing(empty_project, bad, capsys):
    # --rounds is refused before the project is opened: a new, empty project will do (with a
    # good count, training it would fail on its missing features instead)
    before = snapshot(empty_project)
    code, _, err = run(capsys, "train", empty_project, "--rounds", bad, "--auto-accept")
    assert code == 1 and err.count("\n") == 1 and "--rounds" in err
    assert snapshot(empty_project) == before


@pytest.mark.slow
def test_auto_accept_rounds_stop_when_nothing_new_passes_and_never_take_a_human_decision(project, tmp_path, capsys):
    pred = _pool_predictions(project, tmp_path, capsys)
    pool = pred[pred["split"] == "unlabeled"].sort_values("confidence", ascending=False)
    top = pool.iloc[0]
    f = _write_csv(tmp_path / "d.csv", [[top["name"], "reject", ""]])
    assert run(capsys, "decide", project, "--file", f, "--reviewer", "ann")[0] == 0
    # fixed thresholds at 1.0: nothing passes, so the second of three rounds is not trained
    cfg = tmp_path / "fixed.yaml"
    cfg.write_text(f"extends: {Path(__file__).parent / 'fast.yaml'}\nself_training:\n  policy: fixed\n")
    assert run(capsys, "thresholds", project, "--set", ",".join(f"{c}=1.0" for c in CLASSES))[0] == 0
    code, out, err = run(capsys, "train", project, "--config", cfg, "--auto-accept", "--rounds", "3")
    assert code == 0, err
    assert "stopped after 1 of 3 rounds: no new candidate passes" in out
    assert "  note: neighbour graph over " in out      # the round says how it found the graph
    status = json.loads(run(capsys, "status", project, "--json")[1])
    assert [r["id"] for r in status["rounds"]] == [0, 1]
    # thresholds low enough that the rejected sample is a candidate again: still not taken
    assert run(capsys, "thresholds", project, "--set", ",".join(f"{c}=0.0" for c in CLASSES))[0] == 0
    code, out, err = run(capsys, "train", project, "--config", cfg, "--auto-accept", "--json")
    assert code == 0, err
    r2 = json.loads(out.splitlines()[-1])
    assert r2["auto_accept_selection"]["accepted"] > 0
    from mersemi.service.project import Project
    with Project.open(project) as p:
        sid = p.store.samples.by_name([top["name"]])[top["name"]][0]
        cur = p.store.decisions.in_force([sid])[sid]
    assert (cur.action, ) == ("reject", )
    assert sum(r2["composition"]["pseudo_per_class"].values()) == r2["auto_accept_selection"]["accepted"]



def test_a_round_says_which_classes_had_no_candidate_and_how_many_the_gate_held_back():
    # joy's pick comes from a version that did not record the gate's count
    auto = AutoAccept(thresholds={"calm": 0.9, "joy": 0.9}, from_round=2, accepted=4, classes={
        "calm": ClassPick(candidates=7, disagreed=3, accepted=4), "joy": ClassPick(candidates=0, accepted=0)})
    assert auto_accept_notes(auto) == [
        "no candidate at the threshold (the target precision may be out of reach): joy",
        "3 candidates held back: round 2's fold models disagree on them"]
    assert auto_accept_notes(None) == []

# ---------------------------------------------------------------------- help, progress, pipes

def test_help_speaks_to_users_and_documents_every_argument(capsys):
    from mersemi.ui.cli import build_parser

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "orchestration layer" not in out and "Parses arguments" not in out
    assert "mersemi init DIR" in out and "mersemi queue DIR" in out
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction))
    undocumented = [f"{name} {a.dest}" for name, p in sub.choices.items() for a in p._actions
                    if not a.help and a.dest != "help"]
    assert undocumented == []
    with pytest.raises(SystemExit):
        main(["decide", "--help"])
    assert "name, decision (accept | reject | relabel | label), label" in capsys.readouterr().out


def test_decide_records_the_os_login_by_default(monkeypatch):
    import getpass

    from mersemi.ui.cli import build_parser

    monkeypatch.setattr(getpass, "getuser", lambda: "osuser")
    args = build_parser().parse_args(["decide", "p", "--file", "d.csv"])
    assert args.reviewer == "osuser"
    assert build_parser().parse_args(["thresholds", "p"]).by == "osuser"


def test_a_closed_pipe_ends_quietly(empty_project):
    # The reader is gone before the command writes (status --json | head -c0).
    exe = Path(sys.executable).with_name("mersemi")
    p = subprocess.Popen([str(exe), "status", str(empty_project), "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait() == 0 and err == "", err


@pytest.mark.slow
def test_train_says_each_phase_when_stderr_is_no_terminal(project):
    exe = Path(sys.executable).with_name("mersemi")
    r = subprocess.run([str(exe), "train", str(project), "--config", str(Path(__file__).parent / "fast.yaml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert any(line.startswith("train: fold 1/") for line in lines), r.stderr
    assert any(line.startswith("train: writing predictions") for line in lines), r.stderr
    assert len(lines) < 30   # a line per phase, not per epoch


@pytest.mark.slow
def test_thresholds_show_candidates_and_expected_precision(project, capsys):
    from mersemi.service.project import Project
    from mersemi.service.review import class_table

    low = ",".join(f"{c}=0.3" for c in CLASSES)
    code, out, err = run(capsys, "thresholds", project, "--set", low, "--json")
    assert code == 0, err
    table = json.loads(out)
    with Project.open(project) as p:
        expect = {r["class"]: r for r in class_table(p)}
    assert list(table) == CLASSES
    for c, row in table.items():
        assert row["candidates"] == expect[c]["candidates"]
        assert row["expected_precision"] == expect[c]["expected_precision"]
        assert row["oof_support"] == expect[c]["oof_support"]
    assert sum(r["candidates"] for r in table.values()) > 0
    code, out, _ = run(capsys, "thresholds", project)
    assert "candidates" in out and "expected precision" in out
    happy = next(line for line in out.splitlines() if line.strip().startswith("happy"))
    assert str(table["happy"]["candidates"]) in happy.split()
