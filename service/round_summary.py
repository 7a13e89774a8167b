"""One round as the app, the command line and `status --json` show it: `RoundSummary`, read once
from the store's row with the engine's types (engine/results.py), then read by attribute. A
round that did not finish (running, failed) has no record; every value it lacks is None.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from ..db.errors import StoreDamaged
from ..db.models import Round
from ..db.writes import PolicyChange
from ..engine.errors import one_line
from ..engine.results import Composition, RoundRecord
from ..engine.vocab import RoundStatus


@dataclass(frozen=True)
class ThresholdChange:
    """What the policy did to one class's threshold after the round."""
    cls: str
    old: float
    new: float
    by: str | None        # who set the value in force now
    changed: bool
    kept_for_owner: bool  # a person owns the class: the policy left it

    def to_json(self) -> dict[str, Any]:
        return {"class": self.cls, "old": self.old, "new": self.new, "by": self.by, "changed": self.changed,
                "kept_for_owner": self.kept_for_owner}


@dataclass(frozen=True)
class RoundSummary:
    id: int
    status: RoundStatus
    config: str
    auto_accept: bool
    started_at: str | None
    wall_s: float | None
    thresholds: dict[str, float]          # in force when the round started
    classes: list[str] = field(repr=False)
    record: RoundRecord | None = None     # None: the round did not finish
    composition: Composition | None = None
    threshold_changes: list[ThresholdChange] = field(default_factory=list)
    error: str | None = None
    thresholds_now: dict[str, float] | None = None   # after the round (what `run_round` returns)

    @classmethod
    def of(cls, r: Round, classes: list[str]) -> RoundSummary:
        """Round `r` as stored; StoreDamaged (one line) when its record is not a round's."""
        try:
            return cls._of(r, classes)
        except (ValidationError, KeyError, IndexError, TypeError) as e:
            raise StoreDamaged(f"round {r.id}'s record is damaged ({one_line(e)[:120]}); "
                               "`mersemi check DIR` says what else is") from None

    @classmethod
    def _of(cls, r: Round, classes: list[str]) -> RoundSummary:
        wall = ((r.finished_at - r.started_at).total_seconds()
                if r.finished_at is not None and r.started_at is not None else None)
        return cls(id=r.id, status=RoundStatus(r.status), config=r.config_name, auto_accept=r.auto_accept,
                   started_at=None if r.started_at is None else r.started_at.isoformat(timespec="seconds"),
                   wall_s=None if wall is None else round(wall, 1), thresholds=r.thresholds, classes=classes,
                   record=None if r.metrics is None else RoundRecord.model_validate(r.metrics),
                   composition=None if r.composition is None else Composition.model_validate(r.composition),
                   threshold_changes=[ThresholdChange(classes[c.class_id], c.old, c.new, c.by, c.changed,
                                                      c.kept_for_owner)
                                      for c in map(PolicyChange.from_json, r.threshold_changes or [])],
                   error=r.error)

    def with_thresholds_now(self, thresholds: dict[str, float]) -> RoundSummary:
        return replace(self, thresholds_now=thresholds)

    # ------------------------------------------------------------------ what is shown
    @property
    def cv_waf(self) -> float | None:
        return None if self.record is None else self.record.metrics.cv.waf

    @property
    def test_waf(self) -> float | None:
        test = None if self.record is None else self.record.metrics.test
        return None if test is None else test.waf

    @property
    def test_ece(self) -> float | None:
        test = None if self.record is None else self.record.metrics.test
        return None if test is None else test.ece

    @property
    def cv_f1(self) -> dict[str, float] | None:
        return None if self.record is None else _per_class(self.record.metrics.cv.f1, self.classes)

    @property
    def train_size(self) -> int | None:
        return None if self.composition is None else self.composition.total

    @property
    def pseudo_labels(self) -> dict[str, int] | None:
        return None if self.composition is None else self.composition.pseudo_per_class

    @property
    def discard_reason(self) -> str | None:
        return None if self.record is None else self.record.discard_reason

    @property
    def notes(self) -> list[str]:
        return [] if self.record is None else self.record.metrics.notes

    @property
    def unreachable(self) -> list[str]:
        return [] if self.record is None else [self.classes[c] for c in self.record.unreachable]

    @property
    def eval_scheme_text(self) -> str | None:
        scheme = None if self.record is None else self.record.metrics.eval_scheme
        return None if scheme is None else str(scheme["text"])

    @property
    def folds(self) -> int | None:
        scheme = None if self.record is None else self.record.metrics.eval_scheme
        return None if scheme is None else int(scheme["folds"])

    def to_json(self) -> dict[str, Any]:
        """The round as `status --json`, `train --json` and the app's API give it."""
        rec = self.record
        m = None if rec is None else rec.metrics
        test = None if m is None else m.test
        cal = None if m is None else m.calibration
        out = {
            "id": self.id, "status": self.status, "config": self.config, "auto_accept": self.auto_accept,
            "started_at": self.started_at, "wall_s": self.wall_s,
            "cv_waf": self.cv_waf, "cv_accuracy": None if m is None else m.cv.accuracy, "cv_f1": self.cv_f1,
            "test_waf": self.test_waf, "test_accuracy": None if test is None else test.accuracy,
            "test_f1": None if test is None else _per_class(test.f1, self.classes),
            "train_size": self.train_size,
            "composition": None if self.composition is None else self.composition.to_json(),
            "pseudo_labels": self.pseudo_labels,
            "pseudo_precision": None if rec is None else rec.pseudo_precision,
            "eval_scheme": None if m is None else m.eval_scheme, "discard_reason": self.discard_reason,
            "oof_ece": None if m is None else m.cv.ece, "test_ece": self.test_ece,
            "temperature": None if cal is None else cal.temperature,
            "graph_weight": None if cal is None else cal.graph_weight,
            "graph_cv_waf": None if cal is None else cal.graph_cv_waf,
            "notes": self.notes,
            "policy": None if rec is None else rec.policy,
            "auto_accept_selection": None if rec is None or rec.auto_accept is None else rec.auto_accept.to_json(),
            "thresholds": self.thresholds,
            "threshold_changes": [c.to_json() for c in self.threshold_changes],
            "unreachable": self.unreachable,
            "error": self.error,
        }
        return out if self.thresholds_now is None else out | {"thresholds_now": self.thresholds_now}


def _per_class(values: list[float] | None, classes: list[str]) -> dict[str, float] | None:
    return None if values is None else {c: round(float(v), 4) for c, v in zip(classes, values)}
