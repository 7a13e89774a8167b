"""A round's JSON in the shapes of the engine's types (schema 8).

The round's `metrics` were one flat dict that three layers wrote keys into; they become the
engine's RoundRecord: the metrics of each split (cv, test), the calibration, how the round ran,
its notes, and beside them the automatic step's choice, the pseudo-labels' precision, the
classes the policy cannot reach, why the round was discarded (the key `discarded` held that
reason) and the policy. What the policy did to each threshold after the round moves out of the
metrics into the new column `threshold_changes`. The composition keeps its keys; a key a round
of an older version did not record becomes null. The label-spreading share carried from an
earlier round (graph_share_kept, graph_share_from) is gone: fold votes replaced it.

Each row is rewritten from its stored values alone; the shapes are written out here as they are
at this revision, whatever the engine's types become later.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

from mersemi.db.migrate import set_schema_version

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SOURCES = ("gold", "verified", "relabeled", "labeled", "consensus", "adjudicated", "pseudo")
POLICIES = {"target_precision": "target_precision", "fixed": "fixed", "thresholds": "fixed"}  # old name: fixed
WORK = ("device", "processes", "fold_workers", "n_train", "samples_trained", "timings", "folds")


def record(m: dict, config: dict | None) -> dict:
    """A flat metrics dict of any earlier version as the RoundRecord's JSON."""
    test = None
    if m.get("test_waf") is not None:
        test = {"n": m.get("test_n"), "waf": m.get("test_waf"), "accuracy": m.get("test_accuracy"),
                "f1": m.get("test_f1"), "confusion": None, "ece": m.get("test_ece")}
    gold = (m.get("n_train") or {}).get("gold")
    return {
        "metrics": {
            "cv": {"n": gold, "waf": m.get("cv_waf"), "accuracy": m.get("cv_accuracy"), "f1": m.get("cv_f1"),
                   "confusion": m.get("cv_confusion"), "ece": m.get("oof_ece")},
            "test": test,
            "calibration": {"temperature": m.get("temperature"), "graph_weight": m.get("graph_weight"),
                            "graph_cv_waf": m.get("graph_cv_waf"), "ece_before": m.get("oof_ece_raw"),
                            "log_loss": m.get("oof_log_loss")},
            "eval_scheme": m.get("eval_scheme"),
            "work": {k: m.get(k) for k in WORK},
            "notes": list(m.get("warnings") or []),
        },
        "auto_accept": auto_accept(m.get("auto_accept")),
        "pseudo_precision": m.get("pseudo_precision"),
        "unreachable": list(m.get("unreachable") or []),
        "discard_reason": m.get("discarded"),
        "wall_s": m.get("wall_s"),
        "policy": POLICIES.get(((config or {}).get("self_training") or {}).get("policy") or ""),
    }


def auto_accept(a: dict | None) -> dict | None:
    if a is None:
        return None
    return {"policy": POLICIES.get(a.get("policy") or ""), "target_precision": a.get("target_precision"),
            "target_per": a.get("target_per"), "balance_cap": a.get("balance_cap"), "from_round": a.get("from_round"),
            "thresholds": a.get("thresholds") or {},
            "classes": {c: {"candidates": v.get("candidates", 0), "accepted": v.get("accepted", 0),
                            "expected_precision": v.get("expected_precision")}
                        for c, v in (a.get("classes") or {}).items()},
            "accepted": a.get("accepted", 0)}


def composition(c: dict) -> dict:
    keys = [k for s in SOURCES for k in (s, f"{s}_per_class")] + ["pseudo_new", "total", "human_digest"]
    return {k: c.get(k) for k in keys}


def upgrade() -> None:
    with op.batch_alter_table("rounds") as batch:
        batch.add_column(sa.Column("threshold_changes", sa.JSON(none_as_null=True), nullable=True))
    rounds = sa.table("rounds", sa.column("id", sa.Integer), sa.column("config", sa.JSON(none_as_null=True)),
                      sa.column("metrics", sa.JSON(none_as_null=True)),
                      sa.column("composition", sa.JSON(none_as_null=True)),
                      sa.column("threshold_changes", sa.JSON(none_as_null=True)))
    conn = op.get_bind()
    for rid, config, metrics, comp in conn.execute(sa.select(rounds.c.id, rounds.c.config, rounds.c.metrics,
                                                             rounds.c.composition)).all():
        values: dict = {}
        if metrics is not None:
            values["metrics"] = record(metrics, config)
            values["threshold_changes"] = metrics.get("threshold_changes")
        if comp is not None:
            values["composition"] = composition(comp)
        if values:
            conn.execute(sa.update(rounds).where(rounds.c.id == rid).values(**values))
    set_schema_version(op, 8)
