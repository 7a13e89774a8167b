"""The round trainer on small generated data: learning, fold bookkeeping, oversampling,
reproducibility, saved ensembles, bad input."""
from __future__ import annotations

import dataclasses
import re
import json

import numpy as np
import pytest
import torch

from mersemi.engine.calibration import expected_calibration_error
from mersemi.engine.checkpoint import Checkpoint
from mersemi.engine.config import ConfigError, load_config
from mersemi.engine.errors import InputError
from mersemi.engine.folds import epoch_order, eval_scheme, fold_key, make_folds
from mersemi.engine.metrics import waf
from mersemi.engine.results import RoundMetrics
from mersemi.engine.train import Prior, TrainSet, predict, reuse_key, train_round

CFG = load_config().replace(**{
    "model.hidden": 32, "model.classifier_dims": [32, 16], "pretrain.epochs": 1,
    "pretrain.batch_size": 128, "finetune.folds": 3, "finetune.epochs": 8, "finetune.patience": 0,
    "finetune.batch_size": 16, "pretrain.min_steps": 0, "finetune.min_steps": 0})


def clusters(n_per_class=(60, 50, 20), dims=(8, 12), seed=0, pool=200):
    """Gaussian classes visible in every modality; rows: gold, then pool."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    y_pool = rng.integers(0, len(n_per_class), pool)
    all_y = np.concatenate([y, y_pool])
    feats = {}
    for m, d in enumerate(dims):
        centers = rng.normal(0, 2.0, (len(n_per_class), d))
        feats[f"m{m}"] = (centers[all_y] + rng.normal(0, 1.0, (len(all_y), d))).astype(np.float16)
    n_gold = len(y)
    rows = np.arange(len(all_y))
    return feats, y, all_y, n_gold, rows


def trainset(feats, y, n_gold, rows, extra=None):
    extra_rows, extra_y = extra if extra else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    return TrainSet(features=feats, gold_rows=np.arange(n_gold), gold_labels=y.astype(np.int64),
                    extra_rows=extra_rows, extra_labels=extra_y, pretrain_rows=rows,
                    pool_rows=rows[n_gold:])


def test_learns_separable_data_and_scores_the_pool():
    feats, y, all_y, n_gold, rows = clusters()
    steps = []
    r = train_round(trainset(feats, y, n_gold, rows), 3, CFG, progress=lambda m, f: steps.append(f))
    assert r.metrics.cv.waf > 0.9
    assert r.scores.oof.shape == (n_gold, 3) and r.scores.pool.shape == (len(rows) - n_gold, 3)
    np.testing.assert_allclose(r.scores.pool.sum(1), 1, atol=1e-5)
    assert (r.scores.pool.argmax(1) == all_y[n_gold:]).mean() > 0.9
    assert steps == sorted(steps) and steps[-1] == 1.0  # progress is monotone and finishes
    assert len(steps) >= CFG.finetune.folds * CFG.finetune.epochs  # at least once per epoch
    assert sum(f["n_eval"] for f in r.metrics.work.folds) == n_gold
    assert set(r.metrics.work.timings) >= {"pretrain_s", "finetune_s", "score_s", "total_s"}
    assert r.metrics.work.timings["pretrain_s"] > 0
    assert r.metrics.test is None and r.scores.test.shape == (0, 3)   # no test rows: no test metrics
    assert RoundMetrics.model_validate(json.loads(json.dumps(r.metrics.to_json()))) == r.metrics   # stored as JSON


def test_evaluation_folds_hold_gold_rows_only_and_extra_rows_train_in_every_fold():
    feats, y, all_y, n_gold, rows = clusters()
    pool = rows[n_gold:]
    # Gold rows deliberately not first, and extra rows interleaved with them.
    data = TrainSet(features=feats, gold_rows=rows[::2][:100], gold_labels=all_y[::2][:100].astype(np.int64),
                    extra_rows=rows[1::2][:50], extra_labels=all_y[1::2][:50].astype(np.int64),
                    pretrain_rows=rows, pool_rows=pool)
    folds = make_folds(data, 3, 3, seed=0)
    eval_pos = np.concatenate([f.eval_pos for f in folds])
    assert sorted(eval_pos.tolist()) == list(range(100))     # each gold row evaluated exactly once
    for f in folds:
        eval_rows = data.gold_rows[f.eval_pos]
        assert np.isin(eval_rows, data.gold_rows).all()
        assert not np.isin(eval_rows, data.extra_rows).any()
        assert np.isin(data.extra_rows, f.train_rows).all()   # every extra row in every training fold
        assert not np.isin(eval_rows, f.train_rows).any()     # nothing evaluated is trained on

    r = train_round(data, 3, CFG)
    for f, fold in zip(r.metrics.work.folds, folds):
        assert f["n_eval"] == len(fold.eval_pos) and f["n_train"] == 100 - f["n_eval"] + 50
    # Out-of-fold probabilities exist for exactly the gold rows (each filled once).
    assert r.scores.oof.shape == (100, 3)
    np.testing.assert_allclose(r.scores.oof.sum(1), 1, atol=1e-5)


def test_the_round_measures_the_test_rows_whose_label_it_knows():
    """Test metrics are the engine's: the test rows are scored with the pool, and measured
    against the labels given (-1: unknown, left out); they choose nothing."""
    feats, y, all_y, n_gold, rows = clusters(pool=120)
    pool, test = rows[n_gold:n_gold + 60], rows[n_gold + 60:]
    test_labels = all_y[test].copy()
    test_labels[::4] = -1
    data = dataclasses.replace(trainset(feats, y, n_gold, rows), pool_rows=pool, test_rows=test,
                               test_labels=test_labels)
    r = train_round(data, 3, CFG)
    assert r.scores.pool.shape == (60, 3) and r.scores.test.shape == (60, 3)
    known = test_labels >= 0
    m = r.metrics.test
    assert m.n == known.sum() == 45
    assert m.waf == waf(test_labels[known], r.scores.test[known].argmax(1)) > 0.9
    assert m.ece == expected_calibration_error(r.scores.test[known], test_labels[known])
    assert len(m.f1) == 3 and np.asarray(m.confusion).sum() == 45
    assert r.checkpoint.score_rows.tolist() == np.r_[pool, test].tolist()


def test_oversampling_tops_every_class_up_to_the_largest():
    y = np.array([0] * 50 + [1] * 10 + [2] * 3)
    order = epoch_order(y, True, 4, np.random.default_rng(0))   # class 3 absent from this fold
    assert np.bincount(y[order], minlength=4).tolist() == [50, 50, 50, 0]
    assert set(range(len(y))) <= set(order.tolist())           # every original sample kept
    assert epoch_order(y, True, 4, np.random.default_rng(0)).tolist() == order.tolist()  # seeded
    plain = epoch_order(y, False, 4, np.random.default_rng(0))
    assert sorted(plain.tolist()) == list(range(len(y)))


def test_an_epoch_can_be_capped():
    y = np.array([0] * 50 + [1] * 10 + [2] * 3)
    capped = epoch_order(y, True, 3, np.random.default_rng(0), limit=40)
    assert len(capped) == 40 and len(set(capped.tolist())) > 20   # a shuffled draw, not a prefix
    assert len(epoch_order(y, True, 3, np.random.default_rng(0), limit=0)) == 150


def test_oversampling_balances_a_real_training_fold():
    feats, y, _, n_gold, rows = clusters(n_per_class=(60, 30, 9))
    data = trainset(feats, y, n_gold, rows)
    fold = make_folds(data, 3, 3, seed=0)[0]
    order = epoch_order(fold.train_labels, True, 3, np.random.default_rng(1))
    counts = np.bincount(fold.train_labels[order], minlength=3)
    assert counts.tolist() == [40, 40, 40]


def test_same_seed_same_probabilities_and_the_callers_rng_is_left_alone():
    feats, y, _, n_gold, rows = clusters()
    torch.manual_seed(123)
    a = train_round(trainset(feats, y, n_gold, rows), 3, CFG)
    after = torch.rand(1)
    torch.manual_seed(123)
    b = train_round(trainset(feats, y, n_gold, rows), 3, CFG)
    np.testing.assert_array_equal(a.scores.pool, b.scores.pool)
    np.testing.assert_array_equal(a.scores.oof, b.scores.oof)
    assert torch.rand(1).item() == after.item()
    c = train_round(trainset(feats, y, n_gold, rows), 3, CFG.replace(seed=1))
    assert not np.array_equal(a.scores.pool, c.scores.pool)


def test_saved_ensemble_predicts_the_same_from_a_read_only_float16_memmap(tmp_path):
    # The ensemble alone: with label spreading the stored scores also hold the graph's term.
    cfg = CFG.replace(**{"propagation.enabled": False})
    feats, y, _, n_gold, rows = clusters()
    for m, x in feats.items():
        np.save(tmp_path / f"{m}.npy", x)
    mapped = {m: np.load(tmp_path / f"{m}.npy", mmap_mode="r") for m in feats}
    r = train_round(trainset(mapped, y, n_gold, rows), 3, cfg)
    r.checkpoint.save(tmp_path / "round-0.pt")
    state = Checkpoint.load(tmp_path / "round-0.pt")   # weights_only: tensors and plain data only
    assert len(state.folds) == CFG.finetune.folds and state.modalities == {"m0": 8, "m1": 12}
    assert state.fold_key == r.checkpoint.fold_key and (state.fold_votes == r.checkpoint.fold_votes).all()
    np.testing.assert_allclose(predict(state, mapped, rows[n_gold:]), r.scores.pool, atol=1e-6)
    # A subset of rows, a different scoring batch size, and plain arrays give the same.
    some = rows[n_gold:][::7]
    np.testing.assert_allclose(predict(state, feats, some, CFG.replace(score_batch_size=5)),
                               r.scores.pool[::7], atol=1e-6)
    assert predict(state, feats, np.zeros(0, np.int64)).shape == (0, 3)
    with pytest.raises(InputError, match="modality 'm1' missing"):
        predict(state, {"m0": feats["m0"]}, some)


def test_a_checkpoint_of_an_earlier_version_loads_with_what_it_has(tmp_path):
    """Checkpoint.load is the one reader of every version of the file: one saved before the
    fold split and votes were kept still loads, and says it has no votes."""
    torch.save({"config": {}, "modalities": {"m0": 8}, "n_classes": 3, "folds": []}, tmp_path / "round-0.pt")
    old = Checkpoint.load(tmp_path / "round-0.pt")
    assert (old.temperature, old.graph_weight, old.fold_key, old.score_rows, old.fold_votes) == (1.0, None, None,
                                                                                                 None, None)
    assert old.votes_for(np.array([1, 2])) is None and old.modalities == {"m0": 8}
    new = Checkpoint({}, {"m0": 8}, 3, [], fold_key="k", score_rows=np.array([5, 7]),
                     fold_votes=np.array([[1, 2], [0, 2]], np.int8))
    new.save(tmp_path / "round-1.pt")
    assert Checkpoint.load(tmp_path / "round-1.pt").votes_for(np.array([7, 6, 5])).tolist() == [[2, 2], [-1, -1],
                                                                                                [1, 0]]


@pytest.mark.parametrize("dims", [(8,), (8, 12, 6, 5)])
def test_one_and_four_modalities(dims):
    feats, y, _, n_gold, rows = clusters(dims=dims)
    # Every fine-tuning term on, as the paper's preset has IMCL-AE (and IMCL-NE may be).
    cfg = CFG.replace(**{"loss.imcl_ae": 0.1, "loss.imcl_ne": 0.1})
    r = train_round(trainset(feats, y, n_gold, rows), 3, cfg)
    assert r.metrics.cv.waf > 0.8


def test_baseline_model_trains():
    cfg = CFG.replace(**{"model.kind": "attention_baseline", "pretrain.enabled": False,
                         "loss.imcl_ae": 0.0, "loss.imcl_ne": 0.0})
    feats, y, _, n_gold, rows = clusters()
    assert train_round(trainset(feats, y, n_gold, rows), 3, cfg).metrics.cv.waf > 0.8


def test_early_stopping_keeps_the_best_epoch():
    feats, y, _, n_gold, rows = clusters()
    cfg = CFG.replace(**{"finetune.epochs": 40, "finetune.patience": 2, "pretrain.enabled": False,
                         "finetune.select": "loss"})   # "auto" keeps the last epoch on small folds
    r = train_round(trainset(feats, y, n_gold, rows), 3, cfg)
    for f in r.metrics.work.folds:
        assert f["epochs"] == min(f["best_epoch"] + 2, 40)
    assert any(f["epochs"] < 40 for f in r.metrics.work.folds)


def test_pretraining_weights_are_validated_and_one_term_is_enough():
    with pytest.raises(ConfigError, match="pretrain.imcl_ae"):
        CFG.replace(**{"pretrain.imcl_ae": 0.0, "pretrain.imcl_ne": 0.0})
    feats, y, _, n_gold, rows = clusters(dims=(8,))
    cfg = CFG.replace(**{"pretrain.imcl_ne": 0.0, "finetune.epochs": 2})
    r = train_round(trainset(feats, y, n_gold, rows), 3, cfg)   # one modality: nothing to pre-train
    assert r.metrics.work.timings["pretrain_s"] == 0 and any("pre-training skipped" in w for w in r.metrics.notes)


def test_a_tiny_class_is_evaluated_in_fewer_folds_and_the_scheme_says_so():
    feats, y, _, n_gold, rows = clusters(n_per_class=(60, 50, 2))
    r = train_round(trainset(feats, y, n_gold, rows), 3, CFG)
    scheme = r.metrics.eval_scheme
    assert (scheme["folds"], scheme["smallest_class"], scheme["largest_class"]) == (3, 2, 60)
    assert "1 class(es) with fewer samples than folds are evaluated in fewer folds" in scheme["text"]
    assert r.scores.oof.shape == (n_gold, 3)
    # The class was evaluated in 2 of the 3 folds, once per sample.
    assert sum(1 for f in make_folds(trainset(feats, y, n_gold, rows), 3, 3, 0) if (y[f.eval_pos] == 2).any()) == 2


@pytest.mark.parametrize("cap, counts, folds", [("largest", (4, 3, 2), 4), ("smallest", (4, 3, 2), 2),
                                               ("largest", (60, 50, 40), 5), ("smallest", (9, 9, 2), 2),
                                               ("largest", (2, 2, 2), 2)])
def test_the_number_of_folds_follows_the_class_fold_cap_names(cap, counts, folds):
    fc = CFG.replace(**{"finetune.folds": 5, "finetune.fold_cap": cap}).finetune
    scheme = eval_scheme(np.array(counts), fc)
    assert scheme["folds"] == folds and scheme["fold_cap"] == cap
    assert ("finetune.folds 5" in scheme["text"]) == (folds < 5)


def test_every_class_needs_two_gold_samples_before_any_training():
    calls = []
    for n_per_class, message in (((30, 30, 0), "class '2' has no labeled sample; every class needs at least 2"),
                                 ((30, 30, 1), "class '2' has 1 labeled sample; every class needs at least 2")):
        feats, y, _, n_gold, rows = clusters(n_per_class=n_per_class)
        with pytest.raises(InputError, match=re.escape(message)):
            train_round(trainset(feats, y, n_gold, rows), 3, CFG, progress=lambda m, f: calls.append(m))
    assert calls == []


def test_no_pool_trains_and_scores_nothing():
    feats, y, _, n_gold, rows = clusters(pool=0)
    data = trainset(feats, y, n_gold, rows)
    r = train_round(data, 3, CFG)
    assert r.scores.pool.shape == (0, 3)


def test_bad_inputs_are_clear_errors():
    feats, y, _, n_gold, rows = clusters()

    def bad(match, n_classes=3, **changes):
        data = trainset(feats, y, n_gold, rows)
        for k, v in changes.items():
            setattr(data, k, v)
        with pytest.raises(InputError, match=match):
            train_round(data, n_classes, CFG)

    bad("pool_rows: rows must lie in 0..", pool_rows=np.array([0, len(rows) + 5]))
    bad("test_labels: expected 2 integer class ids or -1", test_rows=np.array([0, 1]), test_labels=np.array([1]))
    bad(r"test_labels: class ids must lie in -1..2", test_rows=np.array([0, 1]), test_labels=np.array([1, 3]))
    bad("pretrain_rows: expected a 1-d array of integer rows", pretrain_rows=np.array([0.5, 1.0]))
    bad("gold_labels: class ids must lie in 0..2", gold_labels=np.where(y == 2, 7, y).astype(np.int64))
    bad("gold_labels: expected 130 integer class ids", gold_labels=y[:-1].astype(np.int64))
    bad("gold_rows: a row appears more than once", gold_rows=np.r_[0, np.arange(n_gold - 1)])
    bad("different row counts", features={"m0": feats["m0"], "m1": feats["m1"][:-1]})
    bad(r"features\['m0'\]: expected a \[N, D\] matrix", features={"m0": feats["m0"][:, 0]})
    bad("need at least 2 classes", n_classes=1)
    bad("both gold and extra", extra_rows=np.array([0]), extra_labels=np.array([1]))


def test_tqdm_adapter_drives_one_bar_to_the_end():
    from mersemi.engine.progress import TqdmProgress

    adapter = TqdmProgress("round", disable=False)
    with adapter as progress:
        progress("fold 1/5: epoch 1/20", 0.1)
        progress("fold 1/5: epoch 2/20", 0.05)   # never moves back
        assert adapter.bar.n == 10
        progress("done", 1.0)
        assert adapter.bar.n == 100 and adapter.bar.postfix == "done"


def test_auto_selection_keeps_the_last_epoch_on_small_evaluation_folds():
    from mersemi.engine.loops import SELECT_AUTO_MIN_EVAL, selection_rule

    assert selection_rule("auto", SELECT_AUTO_MIN_EVAL - 1) == "last"
    assert selection_rule("auto", SELECT_AUTO_MIN_EVAL) == "waf"
    assert [selection_rule(s, 3) for s in ("loss", "waf", "last")] == ["loss", "waf", "last"]
    feats, y, _, n_gold, rows = clusters()
    cfg = CFG.replace(**{"finetune.epochs": 6, "finetune.patience": 1, "pretrain.enabled": False,
                         "finetune.select": "auto"})
    r = train_round(trainset(feats, y, n_gold, rows), 3, cfg)
    for f in r.metrics.work.folds:   # small folds: every epoch runs and the last one is kept
        assert f["select"] == "last" and f["best_epoch"] == f["epochs"] == 6


def test_a_pseudo_label_trains_only_the_folds_whose_predecessor_voted_for_it():
    feats, y, all_y, n_gold, rows = clusters(n_per_class=(30, 30, 30))
    extra = (rows[n_gold:n_gold + 4], np.array([0, 1, 2, 0]))
    data = trainset(feats, y, n_gold, rows, extra)
    data.extra_from_model = np.array([True, True, True, False])     # the last one is a person's
    votes = np.array([[0, 1, 0], [1, 1, -1], [0, 0, 0], [2, 2, 2]])
    folds = make_folds(data, 3, 3, 0, votes)
    trained = [set(f.train_rows.tolist()) & set(extra[0].tolist()) for f in folds]
    e = extra[0].tolist()
    assert trained == [{e[0], e[1], e[3]}, {e[1], e[3]}, {e[0], e[3]}]   # -1: no vote, no agreement
    key = fold_key(data.gold_rows, data.gold_labels, 3, CFG.seed)
    r = train_round(dataclasses.replace(data, prior=Prior(fold_key=key, fold_votes=votes)), 3, CFG)
    assert r.checkpoint.fold_votes.shape == (3, len(rows) - n_gold)
    assert r.checkpoint.fold_key == key and r.metrics.calibration.log_loss > 0
    assert [f["n_train"] for f in r.metrics.work.folds] == [len(f.train_rows) for f in folds]
    # votes of another split (another seed, another K) are not used, and the round says so
    other = train_round(dataclasses.replace(data, prior=Prior(fold_key="other", fold_votes=votes)), 3, CFG)
    assert any("split the folds otherwise: every pseudo-label trains every fold" in n
               for n in other.metrics.notes)
    assert [f["n_train"] for f in other.metrics.work.folds] == [len(f.train_rows) for f in make_folds(data, 3, 3, 0)]
    with pytest.raises(InputError, match="prior.fold_votes: expected integer classes"):
        train_round(dataclasses.replace(data, prior=Prior(fold_votes=np.zeros(4))), 3, CFG)


def test_a_later_round_reuses_pretraining_and_the_graph_and_can_start_from_the_fold_models():
    feats, y, all_y, n_gold, rows = clusters(n_per_class=(30, 30, 30))
    cfg = CFG.replace(**{"propagation.enabled": True, "finetune.warm_epochs": 2})
    first = train_round(trainset(feats, y, n_gold, rows), 3, cfg)
    assert first.reusable.key == reuse_key(trainset(feats, y, n_gold, rows), cfg)
    assert first.reusable.graph is not None and first.metrics.work.samples_trained["pretrain"] > 0
    prior = Prior(fold_key=first.checkpoint.fold_key, fold_states=first.checkpoint.folds, reuse=first.reusable)
    second = train_round(dataclasses.replace(trainset(feats, y, n_gold, rows), prior=prior), 3, cfg)
    assert second.metrics.work.samples_trained["pretrain"] == 0
    assert any("taken from an earlier round" in n for n in second.metrics.notes)
    assert [f["warm"] for f in second.metrics.work.folds] == [True] * 3
    assert max(f["epochs"] for f in second.metrics.work.folds) <= 2
    assert second.metrics.cv.waf >= first.metrics.cv.waf - 0.05
    changed = cfg.replace(**{"pretrain.epochs": 2})                  # another pre-training: done again
    third = train_round(dataclasses.replace(trainset(feats, y, n_gold, rows), prior=prior), 3, changed)
    assert third.metrics.work.samples_trained["pretrain"] > 0


def test_folds_side_by_side_give_the_same_round_as_one_at_a_time():
    feats, y, all_y, n_gold, rows = clusters(n_per_class=(30, 30, 30))
    one = train_round(trainset(feats, y, n_gold, rows), 3, CFG.replace(**{"finetune.parallel_folds": 1}))
    two = train_round(trainset(feats, y, n_gold, rows), 3, CFG.replace(**{"finetune.parallel_folds": 2}))
    assert (one.metrics.work.fold_workers, two.metrics.work.fold_workers) == (1, 2)
    np.testing.assert_array_equal(one.scores.pool, two.scores.pool)
    np.testing.assert_array_equal(one.scores.oof, two.scores.oof)


@pytest.mark.parametrize("graph_says, kept", [("truth", True), ("wrong", False)])
def test_label_spreading_joins_only_where_it_does_not_cost_out_of_fold_classes(graph_says, kept, monkeypatch):
    import mersemi.engine.train as train_module

    feats, y, all_y, n_gold, rows = clusters(n_per_class=(30, 30, 30))
    data = trainset(feats, y, n_gold, rows)
    gold = data.gold_labels

    def spread(graph, bank, data, folds, n_classes, cfg):   # a graph that knows the truth, or contradicts it
        shift = 0 if graph_says == "truth" else 1
        oof = np.eye(n_classes, dtype=np.float32)[(gold + shift) % n_classes]   # certain
        return oof, np.full((len(data.score_rows), n_classes), 1.0 / n_classes, np.float32)

    monkeypatch.setattr(train_module, "_spread_labels", spread)
    # a plain product (the graph's weight is not fitted away), judged on these few gold samples
    cfg = CFG.replace(**{"finetune.calibrate": False, "propagation.joint_fit_min": 10})
    r = train_round(data, 3, cfg.replace(**{"propagation.enabled": True}))
    left_out = [n for n in r.metrics.notes if n.startswith("label spreading left out: out-of-fold WAF")]
    assert (r.metrics.calibration.graph_weight is not None) == kept and bool(left_out) == (not kept), r.metrics.notes
    if not kept:   # the round is the round without the graph
        alone = train_round(data, 3, cfg.replace(**{"propagation.enabled": False}))
        np.testing.assert_allclose(r.scores.pool, alone.scores.pool, rtol=1e-5, atol=1e-6)
