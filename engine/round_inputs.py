"""What a training round takes: the training set (`TrainSet`), what it may take from the round
before it (`Prior`), and the checks that turn bad input into a clear error before any work."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from .checkpoint import Reusable
from .config import Config
from .errors import InputError
from .folds import gold_problem


@dataclass
class TrainSet:
    features: Mapping[str, np.ndarray]  # modality -> [N, D]; np.memmap float16/32 is fine; row i = sample i
    gold_rows: np.ndarray            # int64 rows with human gold labels: the only rows evaluation folds hold
    gold_labels: np.ndarray          # int64 class ids 0..C-1
    extra_rows: np.ndarray           # relabels / accepted pseudo-labels: every training fold, no eval fold
    extra_labels: np.ndarray
    pretrain_rows: np.ndarray        # rows for contrastive pre-training (labels unused)
    pool_rows: np.ndarray            # rows scored by the fold ensemble: the pool ...
    test_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))   # ... and the test split
    # The test rows' labels (-1: unknown): the round's test metrics, never a choice of the round's.
    test_labels: np.ndarray | None = None
    # Per extra row: its label came from the model (an accepted pseudo-label). Such rows train
    # the folds but do not seed the graph, which spreads human labels only. None: none did.
    extra_from_model: np.ndarray | None = None
    # Per extra row, the class distribution it trains on ([len(extra_rows), C], rows summing to 1):
    # the votes of a card that several reviewers labeled (service/votes.py). None: each extra row
    # trains on its label alone (one-hot), as every round did before votes.
    extra_targets: np.ndarray | None = None
    # What the round may take from the round in force before it (Prior); None: nothing.
    prior: Prior | None = None

    @property
    def score_rows(self) -> np.ndarray:
        return np.concatenate([self.pool_rows, self.test_rows])


@dataclass
class Prior:
    """What a round takes from the round before it (engine/loop.py reads it from that round's
    checkpoint and the project's reusable parts). Each part is used only when its key is this
    round's; otherwise the round says so in its notes and does without it."""
    fold_key: str | None = None              # the fold split (folds.fold_key) of the parts below
    # Per extra row and fold, the class that fold's previous model predicted for it (-1: none).
    # A label from the model trains fold k only where fold k's own predecessor voted for it, so
    # no fold learns its evaluation samples' labels through pseudo-labels that the other folds'
    # models chose: out-of-fold predictions stay honest, and rounds can be judged on them.
    fold_votes: np.ndarray | None = None
    # The previous fold models: with finetune.warm_epochs, fold k starts from its own.
    fold_states: list[dict] | None = None
    # Per gold row, the class the previous round predicted for it out of fold (-1: none): the
    # teacher's errors the doubly robust loss (self_training.pseudo_loss) weighs pseudo-labels by.
    oof_classes: np.ndarray | None = None
    # Pre-trained weights and the neighbour graph of a round on the same rows (used when its
    # key is this round's reuse_key): pre-training and the graph are skipped.
    reuse: Reusable | None = None


def validate(data: TrainSet, n_classes: int, cfg: Config) -> tuple[TrainSet, list[str]]:
    """Clear errors for inputs the trainer cannot use. Returns a copy of `data` with int64
    row and label arrays, and the warnings worth keeping."""
    if n_classes < 2:
        raise InputError(f"n_classes: need at least 2 classes, got {n_classes}")
    if not data.features:
        raise InputError("features: no modality to train on")
    for m, x in data.features.items():
        if getattr(x, "ndim", 0) != 2 or x.shape[1] < 1:
            raise InputError(f"features[{m!r}]: expected a [N, D] matrix, got shape {list(np.shape(x))}")
        if not np.issubdtype(x.dtype, np.floating):
            raise InputError(f"features[{m!r}]: expected floating-point values, got {x.dtype}")
    n = {int(x.shape[0]) for x in data.features.values()}
    if len(n) != 1:
        raise InputError(f"features: modalities have different row counts {sorted(n)}")
    n_rows = n.pop()
    checked: dict[str, Any] = {name: check_rows(getattr(data, name), name, n_rows)
                               for name in ("gold_rows", "extra_rows", "pretrain_rows", "pool_rows", "test_rows")}
    data = dataclasses.replace(data, **checked)
    if data.extra_from_model is not None:
        mask = np.asarray(data.extra_from_model)
        if mask.dtype != bool or mask.shape != (len(data.extra_rows),):
            raise InputError(f"extra_from_model: expected {len(data.extra_rows)} booleans (one per extra row), "
                             f"got {mask.dtype} {list(mask.shape)}")
        data = dataclasses.replace(data, extra_from_model=mask)
    if data.extra_targets is not None:
        targets = np.asarray(data.extra_targets, np.float32)
        if targets.shape != (len(data.extra_rows), n_classes) or not np.all(np.isfinite(targets)) or \
                (targets < 0).any() or not np.allclose(targets.sum(1), 1.0, atol=1e-4):
            raise InputError(f"extra_targets: expected one class distribution per extra row "
                             f"[{len(data.extra_rows)}, {n_classes}] (finite, >= 0, rows summing to 1), got "
                             f"{targets.dtype} {list(targets.shape)}")
        data = dataclasses.replace(data, extra_targets=targets)
    votes = None if data.prior is None else data.prior.fold_votes
    if votes is not None:
        votes = np.asarray(votes)
        if votes.ndim != 2 or len(votes) != len(data.extra_rows) or not np.issubdtype(votes.dtype, np.integer):
            raise InputError(f"prior.fold_votes: expected integer classes [{len(data.extra_rows)}, K], got "
                             f"{votes.dtype} {list(votes.shape)}")
    teacher = None if data.prior is None else data.prior.oof_classes
    if teacher is not None:
        teacher = np.asarray(teacher)
        if teacher.shape != (len(data.gold_rows),) or not np.issubdtype(teacher.dtype, np.integer) or \
                (len(teacher) and (teacher.min() < -1 or teacher.max() >= n_classes)):
            raise InputError(f"prior.oof_classes: expected {len(data.gold_rows)} class ids in -1..{n_classes - 1} "
                             f"(one per gold row), got {teacher.dtype} {list(teacher.shape)}")
    if data.test_labels is not None:
        known = np.asarray(data.test_labels)
        if known.shape != (len(data.test_rows),) or (len(known) and not np.issubdtype(known.dtype, np.integer)):
            raise InputError(f"test_labels: expected {len(data.test_rows)} integer class ids or -1 (one per test "
                             f"row), got {known.dtype} {list(known.shape)}")
        if len(known) and (known.min() < -1 or known.max() >= n_classes):
            raise InputError(f"test_labels: class ids must lie in -1..{n_classes - 1}, "
                             f"found {known.min()}..{known.max()}")
        data = dataclasses.replace(data, test_labels=known.astype(np.int64))
    for rows, name in ((data.gold_rows, "gold_labels"), (data.extra_rows, "extra_labels")):
        labels = np.asarray(getattr(data, name))
        if (labels.ndim != 1 or len(labels) != len(rows)
                or (len(labels) and not np.issubdtype(labels.dtype, np.integer))):
            raise InputError(f"{name}: expected {len(rows)} integer class ids (one per row), "
                             f"got {labels.dtype} {list(labels.shape)}")
        if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
            raise InputError(f"{name}: class ids must lie in 0..{n_classes - 1}, "
                             f"found {labels.min()}..{labels.max()}")
        data = dataclasses.replace(data, **{name: cast(Any, labels.astype(np.int64))})
    for name in ("gold_rows", "extra_rows"):
        rows = getattr(data, name)
        if len(np.unique(rows)) != len(rows):
            raise InputError(f"{name}: a row appears more than once")
    both = np.intersect1d(data.gold_rows, data.extra_rows)
    if len(both):
        raise InputError(f"row {int(both[0])} is both gold and extra ({len(both)} such rows): "
                         f"a gold row's label must not also come from relabels or pseudo-labels")
    counts = np.bincount(data.gold_labels, minlength=n_classes)
    if problem := gold_problem(counts.tolist(), [str(c) for c in range(n_classes)]):
        raise InputError(problem)
    notes = []
    if cfg.model.kind == "mrccl":
        unknown = sorted(set(cfg.model.vote_weights) - {"fusion"} - set(data.features))
        if unknown:
            notes.append(f"model.vote_weights names {', '.join(unknown)}, not modalities of this data "
                         f"({', '.join(data.features)}); those get default_vote_weight")
    return data, notes


def check_rows(rows: np.ndarray, name: str, n_rows: int) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.ndim != 1 or (len(rows) and not np.issubdtype(rows.dtype, np.integer)):
        raise InputError(f"{name}: expected a 1-d array of integer rows, got {rows.dtype} {list(rows.shape)}")
    if len(rows) and (rows.min() < 0 or rows.max() >= n_rows):
        raise InputError(f"{name}: rows must lie in 0..{n_rows - 1}, found {rows.min()}..{rows.max()}")
    return rows.astype(np.int64)
