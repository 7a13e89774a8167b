"""One round as `status --json` and the app's round history show it (moved here from
service/project.py)."""
from __future__ import annotations


def round_summary(r, classes: list[str]) -> dict:
    """One round as status --json and the app's history show it."""
    m = r.metrics or {}
    comp = r.composition or {}
    wall = ((r.finished_at - r.started_at).total_seconds()
            if r.finished_at is not None and r.started_at is not None else None)
    return {
        "id": r.id, "status": r.status, "config": r.config_name, "auto_accept": r.auto_accept,
        "started_at": None if r.started_at is None else r.started_at.isoformat(timespec="seconds"),
        "wall_s": None if wall is None else round(wall, 1),
        "cv_waf": m.get("cv_waf"), "cv_accuracy": m.get("cv_accuracy"),
        "cv_f1": _per_class(m.get("cv_f1"), classes),
        "test_waf": m.get("test_waf"), "test_accuracy": m.get("test_accuracy"),
        "test_f1": _per_class(m.get("test_f1"), classes),
        "train_size": comp.get("total"), "composition": comp,
        "pseudo_labels": comp.get("pseudo_per_class"),
        "pseudo_precision": m.get("pseudo_precision"),
        "eval_scheme": m.get("eval_scheme"), "kept_reason": m.get("discarded"),
        "oof_ece": m.get("oof_ece"), "test_ece": m.get("test_ece"), "temperature": m.get("temperature"),
        "graph_weight": m.get("graph_weight"), "graph_cv_waf": m.get("graph_cv_waf"),
        "graph_share_from": m.get("graph_share_from"),
        "notes": m.get("warnings", []),
        "policy": (r.config or {}).get("self_training", {}).get("policy"),
        "auto_accept_selection": m.get("auto_accept"),
        "thresholds": r.thresholds,
        # What the policy did after the round: per class old -> new and who set the value in force.
        "threshold_changes": [{"class": classes[c["class_id"]]} | {k: v for k, v in c.items() if k != "class_id"}
                              for c in m.get("threshold_changes", [])],
        "unreachable": [classes[c] for c in m.get("unreachable", [])],
        "error": r.error,
    }


def _per_class(values, classes: list[str]) -> dict | None:
    return None if values is None else {c: round(float(v), 4) for c, v in zip(classes, values)}
