"""The self-training loop as one estimator in scikit-learn's manner (`SelfTrainer`), which the
product (service/rounds.py, against the store) and the benchmarks (against arrays) both drive:

    trainer = SelfTrainer(config, classes, max_iter=3)
    trainer.fit(data, labels)          # a round on the gold and the labels in force
    while (r := trainer.step(data)) is not None and r.kept:
        ...                            # an automatic round: pseudo-labels in, judged, kept or not
    trainer.termination_condition_     # max_iter | no_change | not_better

`step` is the one place where pseudo-labels are chosen (`choose`: the round in force's
candidates at the thresholds, within the class-balance cap, engine/self_training.py) and where
an automatic round is judged (`judge`: the discard guard). A round trained on pseudo-labels
takes its predecessor's fold votes, so that each fold trains only on the pseudo-labels its own
predecessor voted for and the out-of-fold evidence the guard reads stays honest
(engine/train.Prior). Methods that choose, weight or judge pseudo-labels otherwise replace
`choose` or `judge`.

The product keeps the loop's state in its store between processes: `resume` gives a new
estimator the round in force, as `fit` or `step` would have left it.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

from . import self_training
from .checkpoint import Checkpoint, Reusable
from .config import Config
from .errors import InputError
from .progress import ProgressFn
from .results import AutoAccept, Composition, ReverseValidation, RoundRecord
from .reverse_validation import reverse_validation
from .round_inputs import Prior, TrainSet
from .vocab import HUMAN_SOURCES, Source

if TYPE_CHECKING:
    from .train import RoundResult

TrainFn = Callable[[TrainSet, int, Config, "ProgressFn | None"], "RoundResult"]


class Termination(StrEnum):
    """Why the loop stopped (`SelfTrainer.termination_condition_`)."""
    MAX_ITER = "max_iter"        # max_iter automatic rounds trained
    NO_CHANGE = "no_change"      # no new candidate passes the thresholds
    NOT_BETTER = "not_better"    # the round was worse on the out-of-fold evidence: not kept


@dataclass(frozen=True)
class LoopData:
    """What the loop trains on and scores. Rows are feature rows (a project's sample ids)."""
    features: Mapping[str, np.ndarray]
    gold_rows: np.ndarray
    gold_labels: np.ndarray
    pool_rows: np.ndarray
    test_rows: np.ndarray
    test_labels: np.ndarray                # -1: unknown; the test metrics, never a choice
    pool_truth: np.ndarray | None = None   # the pool's hidden truth (-1: unknown): the pseudo-labels' precision


@dataclass(frozen=True)
class Labels:
    """Labels in force on pool rows besides gold, with their source (engine/vocab.Source): a
    person's (verified, relabeled, labeled) or the tool's (pseudo)."""
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sources: np.ndarray = field(default_factory=lambda: np.zeros(0, object))
    # Per row, the class distribution it trains on (a card's votes, service/votes.py); None:
    # each row trains on its label alone.
    targets: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name, dtype in (("rows", np.int64), ("labels", np.int64), ("sources", object)):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype))
        if not len(self.rows) == len(self.labels) == len(self.sources):
            raise InputError(f"labels: {len(self.rows)} rows, {len(self.labels)} labels and {len(self.sources)} "
                             "sources; one each per row")
        if self.targets is not None and len(self.targets) != len(self.rows):
            raise InputError(f"labels: {len(self.rows)} rows and {len(self.targets)} target distributions")

    @property
    def from_model(self) -> np.ndarray:
        return self.sources == Source.PSEUDO

    def human(self) -> Labels:
        keep = np.isin(self.sources, HUMAN_SOURCES)
        return Labels(self.rows[keep], self.labels[keep], self.sources[keep],
                      None if self.targets is None else self.targets[keep])

    def plus(self, rows: np.ndarray, labels: np.ndarray, source: Source) -> Labels:
        targets = self.targets
        if targets is not None:   # the new rows train on their label alone
            one_hot = np.eye(targets.shape[1], dtype=np.float32)[np.asarray(labels, np.int64)]
            targets = np.concatenate([targets, one_hot])
        return Labels(np.r_[self.rows, rows], np.r_[self.labels, labels],
                      np.r_[self.sources, np.full(len(rows), source, object)], targets)

    def human_digest(self) -> str:
        """A fingerprint of the human labels: two rounds with the same one differ only by the
        tool's pseudo-labels, so the discard guard may compare them."""
        h = self.human()
        pairs = np.stack([h.rows, h.labels], axis=1) if len(h.rows) else np.zeros((0, 2), np.int64)
        return hashlib.sha1(np.ascontiguousarray(pairs, np.int64).tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class InForce:
    """The round whose predictions are in force: what `choose` takes candidates from, what the
    next round takes its fold votes and warm start from, what `judge` compares a round with."""
    round_id: int
    pool_rows: np.ndarray
    pool_pred: np.ndarray
    pool_conf: np.ndarray
    checkpoint: Checkpoint | None = None   # None: a round is judged and warm-started without it
    log_loss: float | None = None          # its out-of-fold log-loss
    human_digest: str | None = None        # Labels.human_digest of what it trained on
    gold: int | None = None                # its gold sample count
    # gold rows with its out-of-fold classes (the reverse guard's reference, the doubly robust loss's teacher)
    oof_rows: np.ndarray | None = None
    oof_pred: np.ndarray | None = None

    def oof_classes(self, gold_rows: np.ndarray) -> np.ndarray | None:
        """Its out-of-fold class of each of `gold_rows` (-1 where it had none); None without them."""
        if self.oof_rows is None or self.oof_pred is None:
            return None
        at = dict(zip(np.asarray(self.oof_rows).tolist(), np.asarray(self.oof_pred).tolist()))
        return np.array([at.get(r, -1) for r in np.asarray(gold_rows).tolist()], np.int64)


@dataclass(frozen=True)
class Choice:
    """What an automatic step takes: pool rows, their labels (the predicted classes), the
    calibrated confidences, and why (the thresholds, the policy, the cap's counts per class)."""
    rows: np.ndarray
    labels: np.ndarray
    confidence: np.ndarray
    why: AutoAccept


@dataclass
class LoopRound:
    """A round of the loop: the trained round, the record the store keeps of it, what it
    trained on, and the thresholds the policy proposes after it."""
    round_id: int
    result: RoundResult
    record: RoundRecord
    composition: Composition
    choice: Choice | None                  # the automatic step's pseudo-labels; None: no step
    thresholds: list[float]                # proposed for the classes the policy may set
    in_force: InForce = field(repr=False)  # what the loop's state is once the round is in force

    @property
    def kept(self) -> bool:
        return self.record.discard_reason is None


class SelfTrainer:
    """Rounds of MR-CCL on gold labels, human labels and the tool's pseudo-labels.

    Parameters (checked when set): `config` (engine/config.Config; its self_training section is
    the policy), `classes` (names, class order), `max_iter` (automatic rounds `step` trains
    at most; None: no limit), `train` (one round: engine/train.train_round by default).

    Attributes after `fit` or `resume`: `labels_` (the labels in force), `in_force_` (InForce),
    `reuse_` (what rounds on the same rows reuse), `thresholds_` (the policy's proposal after
    the round in force), `history_` (every LoopRound trained here), `n_iter_` (automatic rounds
    trained), `labeled_iter_` (per pool row of the last data: 0 labeled before the first
    automatic round, k accepted by the k-th, -1 never), `termination_condition_` (Termination,
    None while the loop may go on)."""

    def __init__(self, config: Config, classes: Sequence[str], *, max_iter: int | None = None,
                 train: TrainFn | None = None) -> None:
        if not isinstance(config, Config):
            raise InputError(f"config: expected an engine.config.Config, got {type(config).__name__}")
        classes = [str(c) for c in classes]
        if len(classes) < 2 or len({c.lower() for c in classes}) != len(classes):
            raise InputError(f"classes: need at least 2 distinct class names, got {classes}")
        config.self_training.check_classes(classes)
        if max_iter is not None and (isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0):
            raise InputError(f"max_iter: expected None or an integer >= 0, got {max_iter!r}")
        self.config, self.classes, self.max_iter, self.train = config, classes, max_iter, train
        self.labels_ = Labels()
        self.in_force_: InForce | None = None
        self.reference_: InForce | None = None   # the round in force when the loop started: the reverse guard's
        self.reuse_: Reusable | None = None
        self.thresholds_: list[float] | None = None
        self.history_: list[LoopRound] = []
        self.n_iter_ = 0
        self.labeled_iter_: np.ndarray | None = None
        self.termination_condition_: Termination | None = None
        self._closed = np.zeros(0, np.int64)

    # ------------------------------------------------------------------ the estimator
    def resume(self, in_force: InForce | None, labels: Labels, reuse: Reusable | None = None,
               closed: np.ndarray | None = None) -> SelfTrainer:
        """State kept elsewhere between rounds (the product's store): the round in force, the
        labels in force, the reusable parts, and the pool rows closed to the automatic step
        (every decision in force, a rejection too)."""
        self.in_force_, self.labels_, self.reuse_ = in_force, labels, reuse
        self.reference_ = in_force
        self._closed = np.zeros(0, np.int64) if closed is None else np.asarray(closed, np.int64)
        return self

    def fit(self, data: LoopData, labels: Labels | None = None, *, progress: ProgressFn | None = None,
            round_id: int | None = None) -> SelfTrainer:
        """A round on the gold labels and `labels` (default: those in force), no new
        pseudo-labels; it takes the round in force's fold votes and warm start, if any. Starts
        the loop's history afresh."""
        if labels is not None:
            self.labels_ = labels
        self.history_, self.n_iter_, self.termination_condition_ = [], 0, None
        self.labeled_iter_ = np.where(np.isin(data.pool_rows, self.labels_.rows), 0, -1)
        self._keep(self._round(data, self.labels_, None, progress, round_id))
        self.reference_ = self.in_force_
        return self

    def choose(self, gold_labels: np.ndarray, thresholds: Sequence[float] | None = None) -> Choice | None:
        """The pseudo-labels an automatic step would take now: the round in force's undecided
        candidates at `thresholds` (default: the policy's proposal, `thresholds_`), within the
        class-balance cap, where gold and human labels count as labeled and earlier
        pseudo-labels against the cap. None without a round in force, or when the config
        trains without pseudo-labels."""
        st, inf = self.config.self_training, self.in_force_
        if inf is None or not st.use_pseudo_labels:
            return None
        if thresholds is None and self.thresholds_ is None:
            raise InputError("thresholds: none proposed by a round here (resumed): give them")
        th = [float(t) for t in (thresholds if thresholds is not None else self.thresholds_ or [])]
        if len(th) != len(self.classes):
            raise InputError(f"thresholds: expected {len(self.classes)} (one per class), got {len(th)}")
        open_ = self._open(inf.pool_rows, self.labels_)
        agree = self._agree(inf)
        C = len(self.classes)
        labeled = np.bincount(np.r_[gold_labels, self.labels_.human().labels].astype(np.int64), minlength=C)
        pseudo = np.bincount(self.labels_.labels[self.labels_.from_model], minlength=C)
        sel = self_training.select(inf.pool_pred, inf.pool_conf, open_, th, labeled, pseudo, st.balance_cap, st.balance,
                                   agree)
        why = AutoAccept(policy=st.policy, target_precision=st.target_precision, target_per=st.target_per,
                         balance_cap=st.balance_cap, from_round=inf.round_id,
                         thresholds=dict(zip(self.classes, th)), classes=sel.picks(self.classes),
                         accepted=int(sel.mask.sum()))
        return Choice(inf.pool_rows[sel.mask], inf.pool_pred[sel.mask].astype(np.int64),
                      np.asarray(inf.pool_conf, np.float64)[sel.mask], why)

    def _open(self, pool_rows: np.ndarray, labels: Labels) -> np.ndarray:
        """Per pool row: open to the automatic step (no label in `labels`, not closed by a decision)."""
        return ~np.isin(pool_rows, np.union1d(self._closed, labels.rows))

    def _agree(self, inf: InForce) -> np.ndarray | None:
        """Per pool row of `inf`, whether the gate (self_training.gate) lets its candidate through;
        None: no gate. A benchmark's trial gate replaces this (bench/suite_methods.py)."""
        return self._folds_agree(inf) if self.config.self_training.gate == "folds" else None

    @staticmethod
    def _folds_agree(inf: InForce) -> np.ndarray:
        """Per pool row of `inf`: every fold model voted for the predicted class (True where the
        round kept no votes: the gate cannot see, the threshold alone decides)."""
        votes = None if inf.checkpoint is None else inf.checkpoint.votes_for(inf.pool_rows)
        if votes is None:
            return np.ones(len(inf.pool_rows), bool)
        scored = (votes >= 0).all(1)
        return ~scored | (votes == np.asarray(inf.pool_pred, np.int64)[:, None]).all(1)

    def step(self, data: LoopData, choice: Choice | None = None, *, thresholds: Sequence[float] | None = None,
             train_if_nothing_new: bool = False, progress: ProgressFn | None = None,
             round_id: int | None = None) -> LoopRound | None:
        """One automatic round: `choice` (default: `choose(thresholds)`) joins the labels in
        force as pseudo-labels, a round trains, and `judge` keeps it in force or not. None,
        with `termination_condition_` set, when the loop stops first: max_iter rounds trained,
        or no new candidate (unless `train_if_nothing_new`: then a plain round, like `fit`)."""
        t0 = time.time()
        if self.in_force_ is None:
            raise InputError("step: no round in force yet (fit or resume first)")
        if self.max_iter is not None and self.n_iter_ >= self.max_iter:
            self.termination_condition_ = Termination.MAX_ITER
            return None
        choice = choice if choice is not None else self.choose(data.gold_labels, thresholds)
        if choice is None or not len(choice.rows):
            if not train_if_nothing_new:
                self.termination_condition_ = Termination.NO_CHANGE
                return None
            r = self._round(data, self.labels_, choice, progress, round_id, t0)
            self._keep(r)
            return r
        labels = self.labels_.plus(choice.rows, choice.labels, Source.PSEUDO)
        r = self._round(data, labels, choice, progress, round_id, t0)
        self.n_iter_ += 1
        if not r.kept:
            self.termination_condition_ = Termination.NOT_BETTER
            self.history_.append(r)
            return r
        self.labels_ = labels
        if self.labeled_iter_ is not None and len(self.labeled_iter_) == len(data.pool_rows):
            self.labeled_iter_[np.isin(data.pool_rows, choice.rows)] = self.n_iter_
        self._keep(r)
        return r

    def judge(self, composition: Composition, log_loss: float | None, new_pseudo: int,
              reverse: ReverseValidation | None = None) -> str | None:
        """THE discard guard: why a round whose automatic step added pseudo-labels is not kept,
        or None. Its out-of-fold log-loss on the gold samples (evidence the test split never
        touches; honest, because each fold trains only on the pseudo-labels its own
        predecessor voted for) is compared with the round in force's, when both trained on the
        same human labels (otherwise they are not comparable on pseudo-labels alone). With
        guard "reverse", `reverse` (reverse validation of its pseudo-labels) discards it too when
        its interval lies below zero."""
        prev = self.in_force_
        if prev is None:
            return None
        keep = f"round {prev.round_id} stays in force"
        if reverse is not None and reverse.upper < 0:
            return (f"not kept: a model trained on its {reverse.pseudo} pseudo-labels alone predicts the gold "
                    f"samples worse than round {self.reference_.round_id if self.reference_ else prev.round_id} did "
                    f"out of fold (balanced accuracy {reverse.reference:.3f} -> {reverse.reverse:.3f}, "
                    f"{reverse.level:.0%} bound {reverse.upper:+.3f}); {keep}")
        if prev.log_loss is None or log_loss is None:
            return None
        if prev.human_digest != composition.human_digest or prev.gold != composition.gold:
            return None
        if log_loss <= prev.log_loss:
            return None
        return (f"not kept: out-of-fold log-loss {prev.log_loss:.3f} -> {log_loss:.3f} with {new_pseudo} new "
                f"pseudo-labels; {keep}")

    def _reverse(self, data: LoopData, labels: Labels) -> ReverseValidation | None:
        """Reverse validation of the pseudo-labels in `labels` against the reference round's
        out-of-fold classes of the gold samples both know (None: guard off, or no reference)."""
        ref, st = self.reference_, self.config.self_training
        classes = None if st.guard != "reverse" or ref is None else ref.oof_classes(data.gold_rows)
        if classes is None or not (both := classes >= 0).any():
            return None
        ref_pred = classes[both]
        pseudo = labels.from_model
        return reverse_validation(data.features, labels.rows[pseudo], labels.labels[pseudo], data.gold_rows[both],
                                  np.asarray(data.gold_labels)[both], ref_pred, level=st.guard_level,
                                  seed=self.config.seed)

    # ------------------------------------------------------------------ one round
    def _round(self, data: LoopData, labels: Labels, choice: Choice | None, progress: ProgressFn | None,
               round_id: int | None, t0: float | None = None) -> LoopRound:
        t0 = time.time() if t0 is None else t0
        st, C = self.config.self_training, len(self.classes)
        if not st.use_pseudo_labels:   # the "w/o pseudo labels" ablation: human labels only
            labels = labels.human()
        ts = TrainSet(features=data.features, gold_rows=data.gold_rows, gold_labels=data.gold_labels,
                      extra_rows=labels.rows, extra_labels=labels.labels,
                      pretrain_rows=np.concatenate([data.gold_rows, data.pool_rows]), pool_rows=data.pool_rows,
                      test_rows=data.test_rows, test_labels=data.test_labels, extra_from_model=labels.from_model,
                      extra_targets=labels.targets,
                      prior=self._prior(labels, data.gold_rows))
        result = (self.train or _train_round())(ts, C, self.config, progress)
        new = 0 if choice is None else len(choice.rows)
        composition = Composition.of(self.classes, data.gold_labels, labels.labels, labels.sources, new,
                                     labels.human_digest())
        reverse = self._reverse(data, labels) if new else None
        discard = self.judge(composition, result.metrics.calibration.log_loss, new, reverse) if new else None
        pool = result.scores.pool
        still_open = self._open(data.pool_rows, labels)
        fixed = st.threshold_for(self.classes) if st.policy == "fixed" else [1.0] * C
        proposal, unreachable = self_training.propose_thresholds(
            pool.argmax(1), pool.max(1), still_open, C, policy=st.policy, target=st.target_precision,
            per=st.target_per, fixed=fixed)
        record = RoundRecord(metrics=result.metrics, auto_accept=None if choice is None else choice.why,
                             pseudo_precision=_pseudo_precision(self.classes, labels, data),
                             unreachable=unreachable, discard_reason=discard, wall_s=round(time.time() - t0, 2),
                             policy=st.policy, reverse_validation=reverse)
        rid = round_id if round_id is not None else (0 if self.in_force_ is None else self.in_force_.round_id + 1)
        self.reuse_ = result.reusable
        in_force = InForce(rid, np.asarray(data.pool_rows, np.int64), pool.argmax(1), pool.max(1), result.checkpoint,
                           result.metrics.calibration.log_loss, composition.human_digest, composition.gold,
                           np.asarray(data.gold_rows, np.int64), result.scores.oof.argmax(1))
        return LoopRound(rid, result, record, composition, choice, proposal, in_force)

    def _keep(self, r: LoopRound) -> None:
        """`r` is in force now."""
        self.in_force_, self.thresholds_ = r.in_force, r.thresholds
        self.history_.append(r)

    def _prior(self, labels: Labels, gold_rows: np.ndarray) -> Prior:
        """What the round takes from the round in force (engine/train.Prior): its fold split,
        its fold models' votes for the pseudo-labels, its fold models (warm start), its
        out-of-fold classes of `gold_rows`, and the reusable parts. The trainer uses each part
        only where it fits."""
        prior = Prior(reuse=self.reuse_)
        inf = self.in_force_
        if inf is not None:
            prior.oof_classes = inf.oof_classes(gold_rows)
        saved = None if inf is None else inf.checkpoint
        if saved is None:
            return prior
        prior.fold_key = saved.fold_key
        if labels.from_model.any():
            prior.fold_votes = saved.votes_for(labels.rows)
        if self.config.finetune.warm_epochs:
            prior.fold_states = saved.folds
        return prior


def _train_round() -> TrainFn:
    from .train import train_round   # torch: only a round that trains needs it (not the app's preview)

    return train_round


def _pseudo_precision(classes: list[str], labels: Labels, data: LoopData) -> dict[str, float | None] | None:
    """Share of the tool's pseudo-labels that match the pool's hidden truth, per class and
    overall, where the truth is known (synthetic data, benchmarks). Evaluation only: nothing
    reads it back for training."""
    if data.pool_truth is None:
        return None
    truth = dict(zip(np.asarray(data.pool_rows).tolist(), np.asarray(data.pool_truth).tolist()))
    pseudo = [(t, y) for r, y, t in zip(labels.rows[labels.from_model].tolist(),
                                        labels.labels[labels.from_model].tolist(),
                                        (truth.get(r, -1) for r in labels.rows[labels.from_model].tolist()))
              if t >= 0]
    if not pseudo:
        return None
    out: dict[str, float | None] = {}
    for c, name in enumerate(classes):
        hits = [t == y for t, y in pseudo if y == c]
        out[name] = round(float(np.mean(hits)), 4) if hits else None
    out["overall"] = round(float(np.mean([t == y for t, y in pseudo])), 4)
    return out
