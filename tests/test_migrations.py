"""Schema migrations: a project from before migrations (schema version 1) is recognised and
upgraded with every row intact, the migrations and models.py agree on both backends, and the
version check on open names what to do."""
from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from mersemi.db.connect import sqlite_url
from mersemi.db.migrate import alembic_config
from mersemi.db.models import SCHEMA_VERSION, Base
from mersemi.db.store import Store
from mersemi.engine.results import Composition, RoundMetrics, RoundRecord, SplitMetrics
from mersemi.ui.cli import main

SCHEMA_V1 = Path(__file__).parent / "data" / "schema_v1.sql"
JSON_COLUMNS = ("config", "thresholds", "composition", "metrics")
T0 = datetime(2024, 5, 1, 12, 0, 0)


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def v1_rows() -> dict[str, list[dict]]:
    """A version-1 project's data: classes, samples of each split, a finished round with
    predictions of every kind, a failed round, decisions (one undone) and what is in force."""
    probs = [bytes(range(12)), bytes(range(12, 24)), bytes(range(24, 36))]
    return {
        "meta": [{"key": "schema_version", "value": "1"}, {"key": "media_root", "value": "/data/clips"},
                 {"key": "import_source", "value": "native"}],
        "classes": [{"id": i, "name": n} for i, n in enumerate(["neutral", "happy", "sad"])],
        "thresholds": [{"class_id": i, "value": v, "updated_at": T0, "updated_by": by}
                       for i, (v, by) in enumerate([(0.99, "init"), (0.85, "ann"), (0.5, "policy")])],
        "samples": [
            {"id": 0, "name": "l0", "split": "labeled", "gold_label": 1, "true_label": None,
             "text": "héllo", "media": "l0.mp4"},
            {"id": 1, "name": "u1", "split": "unlabeled", "gold_label": None, "true_label": 2,
             "text": None, "media": None},
            {"id": 2, "name": "u2", "split": "unlabeled", "gold_label": None, "true_label": None,
             "text": "x", "media": None},
            {"id": 3, "name": "t3", "split": "test", "gold_label": 0, "true_label": None,
             "text": None, "media": None}],
        "rounds": [
            {"id": 0, "status": "done", "created_at": T0, "started_at": T0, "finished_at": T0,
             "config": json.dumps({"seed": 0, "model": {"hidden": 128, "vote_weights": [1, 0.5]}}),
             "config_name": "default", "thresholds": json.dumps({"neutral": 0.99, "happy": 0.85}),
             "auto_accept": False, "composition": json.dumps({"gold": 1, "pseudo_per_class": {"happy": 0}}),
             "metrics": json.dumps({"cv_waf": 0.7957, "cv_f1": [0.5, 0.25, 1.0], "warnings": []}),
             "checkpoint": "checkpoints/round-0.pt", "error": None, "pid": 4242, "host": "lab"},
            {"id": 1, "status": "failed", "created_at": T0, "started_at": T0, "finished_at": T0,
             "config": json.dumps({"seed": 1}), "config_name": "mer2024", "thresholds": json.dumps({}),
             "auto_accept": True, "composition": None, "metrics": None, "checkpoint": None,
             "error": "interrupted: process 4243 on lab is gone", "pid": 4243, "host": "lab"}],
        "predictions": [
            {"round_id": 0, "sample_id": 1, "kind": "pool", "predicted": 1, "confidence": 0.9, "probs": probs[0]},
            {"round_id": 0, "sample_id": 2, "kind": "pool", "predicted": 2, "confidence": 0.6, "probs": probs[1]},
            {"round_id": 0, "sample_id": 3, "kind": "test", "predicted": 0, "confidence": 0.8, "probs": probs[2]},
            {"round_id": 0, "sample_id": 0, "kind": "oof", "predicted": 1, "confidence": 0.7, "probs": probs[0]}],
        "decisions": [
            {"id": 1, "sample_id": 1, "round_id": 0, "action": "accept", "label": 1, "undoes": None,
             "batch": "b1", "reviewer": "ann", "created_at": T0, "note": None},
            {"id": 2, "sample_id": 2, "round_id": 0, "action": "relabel", "label": 0, "undoes": None,
             "batch": "b2", "reviewer": "bob", "created_at": T0, "note": "clearly neutral"},
            {"id": 3, "sample_id": 2, "round_id": 0, "action": "reject", "label": 2, "undoes": None,
             "batch": "b3", "reviewer": "ann", "created_at": T0, "note": None},
            {"id": 4, "sample_id": 2, "round_id": 0, "action": "undo", "label": None, "undoes": 3,
             "batch": "b4", "reviewer": "ann", "created_at": T0, "note": None}],
        "current_decisions": [
            {"sample_id": 1, "decision_id": 1, "action": "accept", "label": 1},
            {"sample_id": 2, "decision_id": 2, "action": "relabel", "label": 0}],
    }


def build_v1(url: str) -> None:
    """A store exactly as the code before migrations made it: on SQLite from the DDL that code
    wrote (tests/data/schema_v1.sql), on PostgreSQL (never used before migrations) from the
    baseline revision; then the data of `v1_rows`, written through the reflected tables."""
    engine = create_engine(url)
    if url.startswith("sqlite"):
        con = sqlite3.connect(url.removeprefix("sqlite:///"))
        con.executescript(SCHEMA_V1.read_text())
        con.close()
    else:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0001")
            conn.exec_driver_sql("DROP TABLE alembic_version")  # as a version-1 store has none
            conn.exec_driver_sql("DELETE FROM meta")
    tables = MetaData()
    tables.reflect(engine)
    with engine.begin() as conn:
        for name, rows in v1_rows().items():
            conn.execute(insert(tables.tables[name]), rows)
        if not url.startswith("sqlite"):  # explicit ids leave the serial's sequence behind
            conn.exec_driver_sql("SELECT setval('decisions_id_seq', (SELECT max(id) FROM decisions))")
    engine.dispose()


def read_rows(url: str) -> dict[str, list[dict]]:
    engine = create_engine(url)
    tables = MetaData()
    tables.reflect(engine)
    out = {}
    with engine.connect() as conn:
        for name in v1_rows():
            t = tables.tables[name]
            out[name] = [dict(r._mapping) for r in conn.execute(select(t).order_by(*t.primary_key.columns))]
    engine.dispose()
    return out


def schema(url: str) -> dict:
    """Tables, columns (type, nullable, default), keys, indexes and CHECK constraints."""
    engine = create_engine(url)
    insp = inspect(engine)
    out = {}
    for t in sorted(set(insp.get_table_names()) - {"alembic_version"}):
        out[t] = {
            "columns": [(c["name"], str(c["type"].compile(engine.dialect)), c["nullable"],
                         str(c.get("default"))) for c in insp.get_columns(t)],
            "pk": insp.get_pk_constraint(t)["constrained_columns"],
            "fks": sorted((tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                          for f in insp.get_foreign_keys(t)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in insp.get_indexes(t)),
            "unique": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(t)),
            "checks": sorted((c["name"], re.sub(r"\s+", " ", c["sqltext"])) for c in insp.get_check_constraints(t)),
        }
    engine.dispose()
    return out


def sqlite_ddl(path: Path) -> list[str]:
    con = sqlite3.connect(path)
    ddl = [re.sub(r"\s+", " ", sql).strip() for (sql,) in
           con.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name != 'alembic_version' "
                       "ORDER BY name")]
    con.close()
    return ddl


# ---------------------------------------------------------------------- the schema itself

def test_baseline_revision_is_the_schema_before_migrations(tmp_path):
    old, base = tmp_path / "old.db", tmp_path / "base.db"
    con = sqlite3.connect(old)
    con.executescript(SCHEMA_V1.read_text())
    con.close()
    engine = create_engine(sqlite_url(base))
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
        assert conn.scalar(text("SELECT value FROM meta WHERE key='schema_version'")) == "1"
    engine.dispose()
    assert sqlite_ddl(base) == sqlite_ddl(old)  # the very CREATE statements


def test_migrations_build_what_models_describe(db_url, pg_server_or_none):
    """A store made by `init` (models.py, stamped head) equals one made by running every
    migration from nothing, on both backends; Alembic sees no difference left to migrate."""
    Store(db_url, create=True).close()
    other = db_url.replace("project.db", "migrated.db") if db_url.startswith("sqlite") else \
        pg_server_or_none.url(pg_server_or_none.new_database())
    engine = create_engine(other)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
        assert conn.scalar(text("SELECT value FROM meta WHERE key='schema_version'")) == str(SCHEMA_VERSION)
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()
    assert schema(other) == schema(db_url)
    checks = {t: [c[0] for c in s["checks"]] for t, s in schema(db_url).items() if s["checks"]}
    assert checks == {"current_decisions": ["ck_current_decisions_action", "ck_current_decisions_source"],
                      "decisions": ["ck_decisions_action", "ck_decisions_card", "ck_decisions_source"],
                      "predictions": ["ck_predictions_kind"],
                      "rounds": ["ck_rounds_status"], "samples": ["ck_samples_split"],
                      "vote_cards": ["ck_vote_cards_purpose"], "votes": ["ck_votes_action"]}


@pytest.fixture
def pg_server_or_none(request, db_url):
    return request.getfixturevalue("pg_server") if db_url.startswith("postgresql") else None


# ---------------------------------------------------------------------- upgrading a project

@pytest.fixture
def v1_project(tmp_path, db_url) -> Path:
    """DIR of a version-1 project: project.db, or database.url naming the server's store."""
    root = tmp_path / "p"
    (root / "features").mkdir(parents=True)
    (root / "checkpoints").mkdir()
    if db_url.startswith("sqlite"):
        db_url = sqlite_url(root / "project.db")
    else:
        (root / "database.url").write_text(db_url + "\n")
    build_v1(db_url)
    return root


def url_of(root: Path) -> str:
    return sqlite_url(root / "project.db") if (root / "project.db").exists() else \
        (root / "database.url").read_text().strip()


def test_version_1_project_is_refused_until_migrated_then_keeps_every_row(v1_project, capsys):
    url = url_of(v1_project)
    before = read_rows(url)
    code, out, err = run(capsys, "status", v1_project)
    assert code == 1 and out == ""
    assert err.strip().endswith(f"schema version 1 is older than this tool's version {SCHEMA_VERSION}; "
                                f"run 'mersemi migrate {v1_project}'")
    assert len(err.strip().splitlines()) == 1

    code, out, err = run(capsys, "migrate", v1_project)
    assert code == 0, err
    assert f"upgraded {v1_project} from schema version 1 to {SCHEMA_VERSION}" in out
    if url.startswith("sqlite"):
        (backup,) = v1_project.glob("project.db.v1-backup-*")
        assert f"backed up {v1_project / 'project.db'} to {backup}" in out
        assert read_rows(sqlite_url(backup)) == before      # the copy is the old project
        assert sqlite_ddl(backup) == sqlite_ddl_of_schema_v1(v1_project.parent)
    else:
        assert "pg_dump" in out

    after = read_rows(url)
    assert after.keys() == before.keys()
    for table, rows in before.items():
        if table == "meta":
            rows = [r if r["key"] != "schema_version" else {**r, "value": str(SCHEMA_VERSION)} for r in rows]
        if table == "rounds":  # JSON text became JSON values; heartbeat and progress columns were added
            rows = [{**r, **{c: None if r[c] is None else json.loads(r[c]) for c in JSON_COLUMNS},
                     "heartbeat_at": None, "progress": None, "progress_message": None, "threshold_changes": None}
                    for r in rows]
            # schema 8: the round's JSON in the engine's types (what the round recorded, null elsewhere)
            rows[0] |= {"metrics": RoundRecord(metrics=RoundMetrics(cv=SplitMetrics(waf=0.7957, f1=[0.5, 0.25, 1.0])))
                        .to_json(),
                        "composition": Composition(gold=1, pseudo_per_class={"happy": 0}).to_json()}
        if table in ("decisions", "current_decisions"):  # schema 4: the round's prediction, filled in
            predicted = {1: 1, 2: 2}   # sample id -> predicted class in round 0 (v1_rows)
            rows = [{**r, "predicted": predicted[r["sample_id"]]} for r in rows]
        # schema 5: where each label came from (a person's accept verified the prediction), and
        # the decisions' confidence from their round's predictions; the card is unknown
        source = {"accept": "verified", "relabel": "relabeled", "reject": None, "undo": None}
        if table == "decisions":   # schema 7: none of them is a vote
            confidence = {1: 0.9, 2: 0.6}
            rows = [{**r, "source": source[r["action"]], "card": None, "confidence": confidence[r["sample_id"]],
                     "vote": False, "votes_for": None, "votes_cast": None} for r in rows]
        if table == "current_decisions":
            rows = [{**r, "source": source[r["action"]]} for r in rows]
        if table == "thresholds":   # schema 5: a person's threshold is theirs
            rows = [{**r, "policy_may_set": r["updated_by"] != "ann"} for r in rows]
        assert after[table] == rows, table

    code, out, err = run(capsys, "status", v1_project, "--json")
    assert code == 0, err
    status = json.loads(out)
    assert [(r["id"], r["status"], r["cv_waf"]) for r in status["rounds"]] == [(0, "done", 0.7957), (1, "failed", None)]
    assert status["decisions"]["relabel"] == {"neutral": 1, "happy": 0, "sad": 0}
    assert status["labels"]["verified"] == {"neutral": 0, "happy": 1, "sad": 0}
    assert status["labels"]["relabeled"] == {"neutral": 1, "happy": 0, "sad": 0}
    assert [(c["class"], c["set_by"], c["policy_may_set"]) for c in reversed(json.loads(
        run(capsys, "thresholds", v1_project, "--history", "--json")[1]))] == [
        ("neutral", "init", True), ("happy", "ann", False), ("sad", "policy", True)]
    assert status["current_round"] == 0

    # The new CHECK constraints hold, and the new action `label` is allowed.
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO decisions (sample_id, action, label, batch, reviewer, created_at) "
                          "VALUES (1, 'label', 2, 'b5', 'ann', :t)"), {"t": T0})
    for bad in ("INSERT INTO decisions (sample_id, action, batch, reviewer, created_at) "
                "VALUES (1, 'approve', 'b6', 'ann', :t)",
                "UPDATE rounds SET status = 'paused' WHERE id = 0",
                "UPDATE samples SET split = 'train' WHERE id = 0",
                "UPDATE predictions SET kind = 'dev' WHERE sample_id = 1"):
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(bad), {"t": T0})
    engine.dispose()

    code, out, _ = run(capsys, "migrate", v1_project)
    assert code == 0 and f"already at schema version {SCHEMA_VERSION}" in out


def sqlite_ddl_of_schema_v1(where: Path) -> list[str]:
    ref = where / "reference-v1.db"
    con = sqlite3.connect(ref)
    con.executescript(SCHEMA_V1.read_text())
    con.close()
    return sqlite_ddl(ref)


def set_version(root: Path, value: str) -> None:
    engine = create_engine(url_of(root))
    with engine.begin() as conn:
        conn.execute(text("UPDATE meta SET value = :v WHERE key = 'schema_version'"), {"v": value})
    engine.dispose()


def test_newer_and_corrupt_schema_versions_are_one_line_refusals(tmp_path, capsys):
    root = tmp_path / "p"
    assert run(capsys, "init", root)[0] == 0
    set_version(root, str(SCHEMA_VERSION + 4))
    for command_line in (("status", root), ("migrate", root)):
        code, out, err = run(capsys, *command_line)
        assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
        assert f"schema version {SCHEMA_VERSION + 4} is newer than this tool's version {SCHEMA_VERSION}" in err
    set_version(root, "3a; DROP")
    for command_line in (("status", root), ("migrate", root)):
        code, out, err = run(capsys, *command_line)
        assert code == 1 and out == "" and len(err.strip().splitlines()) == 1, err
        assert "corrupt schema version '3a; DROP'" in err and "Traceback" not in err


# ---------------------------------------------------------------------- schema 6 -> 7: typed rounds

FLAT_METRICS = {   # a round's metrics as schema 6 wrote them (engine, service and store keys in one dict)
    "cv_waf": 0.81, "cv_accuracy": 0.8, "cv_f1": [0.9, 0.7, 0.8], "cv_confusion": [[3, 0, 0], [1, 2, 0], [0, 0, 3]],
    "temperature": 1.7, "oof_ece_raw": 0.2, "graph_weight": 0.5, "graph_cv_waf": 0.6, "graph_share_kept": False,
    "oof_ece": 0.05, "oof_log_loss": 0.41, "folds": [{"waf": 0.8, "best_epoch": 3}], "device": "cpu",
    "eval_scheme": {"folds": 3, "fold_cap": "largest", "smallest_class": 3, "largest_class": 3, "text": "3-fold"},
    "warnings": ["a note"], "n_train": {"gold": 9, "extra": 4}, "samples_trained": {"pretrain": 10, "finetune": 20},
    "timings": {"total_s": 12.5}, "fold_workers": 2, "processes": 1, "test_waf": 0.75, "test_accuracy": 0.7,
    "test_f1": [0.8, 0.6, 0.7], "test_n": 12, "test_ece": 0.08, "graph_share_from": None,
    "auto_accept": {"policy": "thresholds", "target_precision": 0.9, "target_per": "sample", "balance_cap": 2.0,
                    "from_round": 0, "thresholds": {"calm": 0.8, "joy": 0.8, "anger": 0.9},
                    "classes": {"calm": {"candidates": 3, "accepted": 2, "expected_precision": 0.91},
                                "joy": {"candidates": 0, "accepted": 0, "expected_precision": None},
                                "anger": {"candidates": 1, "accepted": 1, "expected_precision": 0.95}},
                    "accepted": 3},
    "pseudo_precision": {"calm": 1.0, "joy": None, "anger": 0.0, "overall": 0.6667}, "unreachable": [1],
    "wall_s": 14.0,
    "threshold_changes": [{"class_id": 0, "old": 0.8, "new": 0.85, "by": "policy", "changed": True,
                           "kept_for_owner": False}]}
# the votes' sources (schema 7), which a round before them did not record
VOTE_SOURCE_KEYS = ("consensus", "consensus_per_class", "adjudicated", "adjudicated_per_class")
FLAT_COMPOSITION = {"gold": 9, "gold_per_class": {"calm": 3, "joy": 3, "anger": 3}, "verified": 1,
                    "verified_per_class": {"calm": 1, "joy": 0, "anger": 0}, "relabeled": 0,
                    "relabeled_per_class": {"calm": 0, "joy": 0, "anger": 0}, "labeled": 0,
                    "labeled_per_class": {"calm": 0, "joy": 0, "anger": 0}, "pseudo": 3,
                    "pseudo_per_class": {"calm": 2, "joy": 0, "anger": 1}, "pseudo_new": 3, "total": 13,
                    "human_digest": "abc"}


def test_a_schema_6_round_reads_the_same_after_the_typed_rounds_migration(tmp_path, capsys):
    """Every value a schema-6 round recorded is where the typed round has it after `migrate`;
    a discarded round keeps its reason; the old policy name reads as its new one."""
    root = tmp_path / "p"
    (root / "checkpoints").mkdir(parents=True)
    url = sqlite_url(root / "project.db")
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0006")
        conn.execute(text("INSERT INTO classes (id, name) VALUES (0, 'calm'), (1, 'joy'), (2, 'anger')"))
        conn.execute(text("INSERT INTO thresholds (class_id, value, updated_at, updated_by, policy_may_set) "
                          "VALUES (0, 0.85, :t, 'policy', 1), (1, 0.8, :t, 'init', 1), (2, 0.9, :t, 'init', 1)"),
                     {"t": T0})
        for rid, status, metrics in ((0, "done", FLAT_METRICS),
                                     (1, "discarded", {**FLAT_METRICS, "threshold_changes": [],
                                                       "discarded": "not kept: worse"})):
            conn.execute(text("INSERT INTO rounds (id, status, created_at, started_at, finished_at, config, "
                              "config_name, thresholds, auto_accept, composition, metrics) VALUES (:id, :status, :t, "
                              ":t, :t, :config, 'default', '{}', 1, :comp, :metrics)"),
                         {"id": rid, "status": status, "t": T0, "comp": json.dumps(FLAT_COMPOSITION),
                          "metrics": json.dumps(metrics),
                          "config": json.dumps({"self_training": {"policy": "target_precision"}})})
    engine.dispose()
    assert run(capsys, "migrate", root)[0] == 0
    code, out, err = run(capsys, "status", root, "--json")
    assert code == 0, err
    r0, r1 = json.loads(out)["rounds"]
    assert (r0["cv_waf"], r0["cv_accuracy"], r0["test_waf"], r0["test_accuracy"]) == (0.81, 0.8, 0.75, 0.7)
    assert r0["cv_f1"] == {"calm": 0.9, "joy": 0.7, "anger": 0.8} and r0["test_f1"]["joy"] == 0.6
    assert (r0["oof_ece"], r0["test_ece"], r0["temperature"], r0["graph_weight"], r0["graph_cv_waf"]) == \
        (0.05, 0.08, 1.7, 0.5, 0.6)
    assert r0["notes"] == ["a note"] and r0["eval_scheme"]["text"] == "3-fold" and r0["policy"] == "target_precision"
    assert r0["composition"] == FLAT_COMPOSITION | dict.fromkeys(VOTE_SOURCE_KEYS)
    assert r0["pseudo_labels"] == {"calm": 2, "joy": 0, "anger": 1}
    assert r0["pseudo_precision"] == FLAT_METRICS["pseudo_precision"] and r0["unreachable"] == ["joy"]
    # the gate's count is a later field: an old round's is unknown, not zero
    assert r0["auto_accept_selection"] == {**FLAT_METRICS["auto_accept"], "policy": "fixed", "classes": {
        c: pick | {"disagreed": None} for c, pick in FLAT_METRICS["auto_accept"]["classes"].items()}}
    assert r0["threshold_changes"] == [{"class": "calm", "old": 0.8, "new": 0.85, "by": "policy", "changed": True,
                                        "kept_for_owner": False}]
    assert r0["discard_reason"] is None and r1["discard_reason"] == "not kept: worse" and r1["status"] == "discarded"
    record = RoundRecord.model_validate(read_rows(url)["rounds"][0]["metrics"])
    assert record.metrics.calibration.log_loss == 0.41 and record.metrics.work.timings == {"total_s": 12.5}
    assert record.metrics.cv.confusion == FLAT_METRICS["cv_confusion"] and record.metrics.test.n == 12
    assert record.wall_s == 14.0 and record.metrics.work.n_train == {"gold": 9, "extra": 4}
