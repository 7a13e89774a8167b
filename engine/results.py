"""What a round produces, typed: the engine fills these, the service stores them (as JSON in the
round's row) and reads them back with the same types, the app and the command line show them.

`RoundMetrics` is one trained round (engine/train.py): the metrics of each split against its
labels, the calibration, how the round ran, its notes. `RoundRecord` is that round as a step of
the self-training loop (engine/loop.py): what the automatic step accepted and why, the verdict of
the discard guard, the classes the policy cannot reach. `Composition` is the training set's
make-up. A field a round of an older version did not record is None (migration 0007 brought the
stored JSON of every older round to these shapes); a round of this version fills every one.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from .thresholds import Policy, TargetPer
from .vocab import POOL_SOURCES


class Record(BaseModel):
    """A stored record: frozen, and an unknown field is an error (a typo, or JSON of another shape)."""
    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class SplitMetrics(Record):
    """One split's predictions against its labels: WAF, accuracy, F1 per class (class order),
    the confusion matrix (rows true, columns predicted) and the calibration error (ECE) of the
    probabilities."""
    n: int | None = None
    waf: float | None = None
    accuracy: float | None = None
    f1: list[float] | None = None
    confusion: list[list[int]] | None = None
    ece: float | None = None

    @classmethod
    def of(cls, y: np.ndarray, probs: np.ndarray, n_classes: int, pred: np.ndarray | None = None) -> SplitMetrics:
        """`pred`: the classes to score when they are not the argmax of `probs` (train.py: the
        cross-validation scores the fold ensemble, before the graph joins it)."""
        from .calibration import expected_calibration_error
        from .metrics import classification_metrics

        m = classification_metrics(y, probs.argmax(1) if pred is None else pred, n_classes)
        return cls(n=int(len(y)), waf=m["waf"], accuracy=m["accuracy"], f1=m["f1"], confusion=m["confusion"],
                   ece=expected_calibration_error(probs, y))


class Calibration(Record):
    """How the round's probabilities were calibrated on the out-of-fold predictions."""
    temperature: float | None = None
    graph_weight: float | None = None  # the label-spreading graph's weight; None: it did not join
    graph_cv_waf: float | None = None  # the graph alone, out of fold; None: it did not run
    ece_before: float | None = None  # out-of-fold ECE of the ensemble before calibration
    log_loss: float | None = None  # out-of-fold log-loss after it: what the discard guard compares


class Work(Record):
    """How the round ran."""
    device: str | None = None
    processes: int | None = None
    fold_workers: int | None = None
    n_train: dict[str, int] | None = None  # gold rows, extra rows
    samples_trained: dict[str, int] | None = None  # pre-training, fine-tuning (all folds)
    timings: dict[str, float] | None = None  # seconds per phase, total_s
    folds: list[dict[str, Any]] | None = None  # per fold: its WAF, best epoch, sizes (engine/loops.py)


class RoundMetrics(Record):
    """One trained round. cv: the out-of-fold predictions of the gold samples (evaluation folds
    hold gold only); test: the test samples with labels (None without any)."""
    cv: SplitMetrics
    test: SplitMetrics | None = None
    calibration: Calibration = Calibration()
    eval_scheme: dict[str, Any] | None = None  # engine/folds.eval_scheme
    work: Work = Work()
    notes: list[str] = []


class ClassPick(Record):
    candidates: int           # undecided, at or above the class's threshold
    accepted: int
    # candidates the gate held back (self_training.gate folds: the fold models disagree); None: a
    # round of a version that did not record it
    disagreed: int | None = None
    expected_precision: float | None = None


class AutoAccept(Record):
    """What an automatic step accepted and why: the thresholds it took the candidates at (class
    name -> value), the policy behind them, the class-balance cap, per class the candidates,
    how many the cap kept and their expected precision (mean calibrated confidence)."""
    policy: Policy | None = None  # None (and below): a round of a version that did not record it
    target_precision: float | None = None
    target_per: TargetPer | None = None
    balance_cap: float | None = None
    from_round: int | None = None
    thresholds: dict[str, float]
    classes: dict[str, ClassPick]
    accepted: int


class Composition(Record):
    """The training set's make-up: per label source the count and the count per class;
    pseudo_new the pseudo-labels this round's automatic step added; human_digest a fingerprint
    of the human labels (two rounds with the same one differ only by the tool's labels)."""
    gold: int | None = None
    gold_per_class: dict[str, int] | None = None
    verified: int | None = None
    verified_per_class: dict[str, int] | None = None
    relabeled: int | None = None
    relabeled_per_class: dict[str, int] | None = None
    labeled: int | None = None
    labeled_per_class: dict[str, int] | None = None
    consensus: int | None = None          # votes (issue 27): a card's majority of K votes
    consensus_per_class: dict[str, int] | None = None
    adjudicated: int | None = None
    adjudicated_per_class: dict[str, int] | None = None
    pseudo: int | None = None
    pseudo_per_class: dict[str, int] | None = None
    pseudo_new: int | None = None
    total: int | None = None
    human_digest: str | None = None

    @classmethod
    def of(cls, classes: list[str], gold_y: np.ndarray, extra_y: np.ndarray, sources: np.ndarray,
           new_pseudo: int, human_digest: str) -> Composition:
        per_source: dict[str, Any] = {}
        for s in POOL_SOURCES:
            mask = np.asarray(sources, dtype=object) == s
            per_source[s.value] = int(mask.sum())
            per_source[f"{s.value}_per_class"] = _per_class(classes, np.asarray(extra_y)[mask])
        return cls(gold=int(len(gold_y)), gold_per_class=_per_class(classes, gold_y), **per_source,
                   pseudo_new=int(new_pseudo), total=int(len(gold_y) + len(extra_y)), human_digest=human_digest)


class ReverseValidation(Record):
    """The reverse guard's evidence (engine/reverse_validation.py): balanced accuracy on the gold
    samples of a model trained on the pseudo-labels alone against the reference round's
    out-of-fold predictions, their difference and its bootstrap interval."""
    pseudo: int
    gold: int
    reference: float
    reverse: float
    difference: float
    lower: float
    upper: float
    level: float


class RoundRecord(Record):
    """A round of the loop as the store keeps it (its `metrics`; the composition beside it)."""
    metrics: RoundMetrics
    auto_accept: AutoAccept | None = None  # None: no automatic step
    pseudo_precision: dict[str, float | None] | None = None  # against the pool's hidden truth, when known
    unreachable: list[int] = []   # classes in which no candidate reaches the target
    discard_reason: str | None = None  # why the round is not in force; None: kept
    wall_s: float | None = None  # the step: choosing, training, judging
    policy: Policy | None = None  # the policy that proposed the next thresholds
    reverse_validation: ReverseValidation | None = None  # the reverse guard's evidence; None: it did not run

    def to_json(self) -> dict[str, Any]:
        """Without `reverse_validation` where the guard did not run: the shape every stored round
        has had since schema 8 (reading it back gives None)."""
        out = super().to_json()
        if out.get("reverse_validation") is None:
            out.pop("reverse_validation", None)
        return out


def _per_class(classes: list[str], y: np.ndarray) -> dict[str, int]:
    counts = np.bincount(np.asarray(y, np.int64), minlength=len(classes))
    return {c: int(n) for c, n in zip(classes, counts)}
