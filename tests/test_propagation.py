"""Label spreading over a neighbour graph, and how a round joins it to the ensemble."""
import os
from types import SimpleNamespace
import subprocess
import sys

import numpy as np
import scipy.sparse as sp
import pytest
import torch

from mersemi.engine import propagation
from mersemi.engine.calibration import combine, fit_temperature, fit_weights
from mersemi.engine.config import ConfigError, load_config
from mersemi.engine.errors import InputError
from mersemi.engine.propagation import knn_graph, plan_knn, spread


def two_chains(n=40):
    """Two lines of points far apart: within a line each point's neighbours are its own."""
    t = np.linspace(0, 1, n)
    a = np.c_[t, np.zeros(n), np.ones(n)]
    b = np.c_[np.zeros(n), t, np.ones(n)] + [0, 0, -2]
    return np.r_[a, b].astype(np.float32)


def test_graph_is_symmetric_normalised_and_links_each_row_to_its_nearest():
    x = two_chains()
    g = knn_graph(x, 3)[0]
    assert g.shape == (80, 80)
    assert abs(g - g.T).max() < 1e-6                      # symmetric
    assert g.diagonal().max() == 0                         # no row is its own neighbour
    assert g[:40, 40:].nnz == 0 and g[40:, :40].nnz == 0   # the chains never touch
    # D^-1/2 W D^-1/2: with 0/1 links, entry ij = 1 / sqrt(deg_i deg_j)
    w = (g > 0).astype(np.float64)
    deg = np.asarray(w.sum(1)).ravel()
    i, j = g.nonzero()
    np.testing.assert_allclose(np.asarray(g[i, j]).ravel(), 1 / np.sqrt(deg[i] * deg[j]), rtol=1e-5)
    assert deg.min() >= 3
    # chunks of any size build the same graph
    assert abs(knn_graph(x, 3, chunk=7)[0] - g).max() < 1e-6


def test_one_label_per_chain_reaches_the_whole_chain_and_no_further():
    g = knn_graph(two_chains(), 3)[0]
    p = spread(g, np.array([0, 40]), np.array([1, 2]), 3, alpha=0.99, iterations=60)
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)
    assert (p[:40].argmax(1) == 1).all() and (p[40:].argmax(1) == 2).all()
    # a chain without any label stays uniform: it adds nothing to a product of probabilities
    p = spread(g, np.array([0]), np.array([1]), 3, alpha=0.99, iterations=60)
    np.testing.assert_allclose(p[40:], 1 / 3, atol=1e-6)


def test_alpha_sets_how_far_labels_travel():
    g = knn_graph(two_chains(), 3)[0]
    near = spread(g, np.array([0, 39]), np.array([0, 1]), 2, alpha=0.2, iterations=30)
    far = spread(g, np.array([0, 39]), np.array([0, 1]), 2, alpha=0.99, iterations=30)
    # row 5 is near label 0: a low alpha keeps it almost certain, a high alpha blurs it
    assert near[5, 0] > far[5, 0] > 0.5


def _boundary(p):
    """The first row of the chain 0..39 that the graph gives class 1."""
    return int(np.argmax(p[:40].argmax(1) == 1))


def test_equal_class_mass_puts_the_boundary_midway_whatever_the_label_counts():
    """Five labels of class 0 at one end of a chain, one of class 1 at the other: per label,
    class 0 pushes the boundary far towards the lone label; with equal class mass it sits
    near the midpoint between the nearest labels (rows 4 and 39)."""
    g = knn_graph(two_chains(), 3)[0]
    seeds, labels = np.array([0, 1, 2, 3, 4, 39]), np.array([0, 0, 0, 0, 0, 1])
    per_label = spread(g, seeds, labels, 2, alpha=0.99, iterations=60, class_mass="per_label")
    equal = spread(g, seeds, labels, 2, alpha=0.99, iterations=60, class_mass="equal")
    assert abs(_boundary(equal) - 21.5) <= 1.5
    assert _boundary(per_label) >= 25
    np.testing.assert_allclose(equal.sum(1), 1, atol=1e-5)
    # one label per class: the two are the same
    one_each = (np.array([0, 39]), np.array([0, 1]))
    np.testing.assert_allclose(spread(g, *one_each, 2, 0.99, 60, class_mass="equal"),
                               spread(g, *one_each, 2, 0.99, 60, class_mass="per_label"), atol=1e-6)
    with pytest.raises(ValueError, match="class_mass"):
        spread(g, *one_each, 2, 0.99, 60, class_mass="prior")


def test_tiny_graphs_do_not_break():
    assert knn_graph(np.ones((1, 3)), 7)[0].nnz == 0
    g = knn_graph(np.eye(3), 7)[0]                      # k capped at n - 1
    assert g.nnz == 6
    np.testing.assert_allclose(spread(g, np.array([0]), np.array([1]), 2, 0.99, 10)[0].argmax(), 1)


def _sources(seed: int = 0):
    rng = np.random.default_rng(seed)
    n, c = 400, 3
    y = rng.integers(0, c, n)

    def noisy(right_share, conf):
        pred = np.where(rng.random(n) < right_share, y, (y + rng.integers(1, c, n)) % c)
        p = np.full((n, c), (1 - conf) / (c - 1))
        p[np.arange(n), pred] = conf
        return p

    noise = np.tile(np.full(c, 1 / c), (n, 1)) + rng.dirichlet(np.ones(c), n) * 0.5
    return y, noisy(0.7, 0.9), noisy(0.9, 0.6), noise / noise.sum(1, keepdims=True)


@pytest.mark.parametrize("joint", [False, True])
def test_weights_keep_a_helpful_source_and_drop_a_useless_one(joint):
    y, model, useful, noise = _sources()
    w = fit_weights([model, useful], y, joint)
    assert w[1] > 0.5 * w[0] > 0
    assert (combine([model, useful], w).argmax(1) == y).mean() > (model.argmax(1) == y).mean() + 0.05
    w_noise = fit_weights([model, noise], y, joint)
    assert w_noise[1] < 0.5 * w[1]
    assert abs((combine([model, noise], w_noise).argmax(1) == y).mean() - (model.argmax(1) == y).mean()) < 0.03


def test_separate_weights_are_each_sources_own_temperature_and_the_joint_fit_drops_a_copy():
    y, model, useful, _ = _sources()
    np.testing.assert_allclose(fit_weights([model, useful], y),
                               [1 / fit_temperature(model, y), 1 / fit_temperature(useful, y)])
    # a source that repeats the first adds nothing: only the joint fit sees it
    sep, joint = fit_weights([model, model], y), fit_weights([model, model], y, joint=True)
    assert sep[1] == pytest.approx(sep[0])
    assert joint.sum() == pytest.approx(sep[0], rel=1e-2)   # together they are the temperature
    np.testing.assert_array_equal(fit_weights([model, useful], np.zeros(0, int)), [1.0, 1.0])
    np.testing.assert_array_equal(fit_weights([model, useful], np.zeros(0, int), joint=True), [1.0, 0.0])


def test_propagation_keys_are_validated_by_name():
    cfg = load_config()
    for key, bad, msg in (("propagation.alpha", 1.0, "propagation.alpha: must be < 1"),
                          ("propagation.alpha", 0.0, "propagation.alpha"),
                          ("propagation.neighbours", 0, "propagation.neighbours: must be > 0"),
                          ("propagation.knn", "faiss", "propagation.knn: must be"),
                          ("propagation.max_rows", 10,
                           r"propagation.max_rows: unknown key \(label spreading runs at any size"),
                          ("propagation.iterations", -1, "propagation.iterations: must be > 0"),
                          ("propagation.joint_fit_min", -1, "propagation.joint_fit_min: must be >= 0"),
                          ("propagation.class_mass", "prior", "propagation.class_mass")):
        with pytest.raises(ConfigError, match=msg):
            cfg.replace(**{key: bad})


# ---------------------------------------------------------------------- in a round

def test_out_of_fold_spreading_hides_the_folds_own_labels():
    """A gold row labelled against its whole neighbourhood: out of fold, the graph must not
    know that label (it would make the calibration fit trust the graph more than it should)."""
    from types import SimpleNamespace

    from mersemi.engine.folds import Fold
    from mersemi.engine.train import TrainSet, _spread_labels

    g = knn_graph(two_chains(), 3)[0]
    gold = np.array([0, 10, 20, 40, 50, 60])
    labels = np.array([0, 1, 0, 1, 1, 1])                 # row 10 sits in chain 0, labelled 1
    data = TrainSet(features={}, gold_rows=gold, gold_labels=labels, extra_rows=np.array([70]),
                    extra_labels=np.array([1]), pretrain_rows=np.arange(80), score_rows=np.arange(80))
    folds = [Fold(train_rows=np.r_[np.delete(gold, k), 70], train_labels=np.r_[np.delete(labels, k), 1],
                  eval_pos=np.array([k])) for k in range(len(gold))]
    bank = SimpleNamespace(local=lambda rows: np.asarray(rows, np.int64))
    cfg = load_config()
    oof, scores = _spread_labels(g, bank, data, folds, 2, cfg)
    assert oof[1].argmax() == 0              # its neighbours' class, not its own label
    assert scores[10, 1] > oof[1, 1] + 0.2   # with every label, its own label is a seed
    assert (oof[3:].argmax(1) == 1).all()
    assert scores.shape == (80, 2)
    # labels that came from the model never seed the graph: row 70 alone, marked as such,
    # changes nothing; as a human label it does
    import dataclasses
    flip = dataclasses.replace(data, extra_labels=np.array([0]))
    _, by_human = _spread_labels(g, bank, flip, folds, 2, cfg)
    _, by_model = _spread_labels(g, bank, dataclasses.replace(flip, extra_from_model=np.array([True])),
                                 folds, 2, cfg)
    _, without = _spread_labels(g, bank, dataclasses.replace(data, extra_rows=np.zeros(0, np.int64),
                                                              extra_labels=np.zeros(0, np.int64)), folds, 2, cfg)
    np.testing.assert_allclose(by_model, without)
    assert by_human[70, 0] > without[70, 0] + 0.1


def test_a_round_spreads_with_the_configured_class_mass():
    from types import SimpleNamespace

    from mersemi.engine.folds import Fold
    from mersemi.engine.train import TrainSet, _spread_labels

    g = knn_graph(two_chains(), 3)[0]
    gold, labels = np.array([0, 1, 2, 3, 4, 39]), np.array([0, 0, 0, 0, 0, 1])
    data = TrainSet(features={}, gold_rows=gold, gold_labels=labels, extra_rows=np.zeros(0, np.int64),
                    extra_labels=np.zeros(0, np.int64), pretrain_rows=np.arange(80), score_rows=np.arange(80))
    folds = [Fold(train_rows=gold[1:], train_labels=labels[1:], eval_pos=np.array([0]))]
    bank = SimpleNamespace(local=lambda rows: np.asarray(rows, np.int64))
    cfg = load_config()
    assert cfg.propagation.class_mass == "equal"          # the default
    _, equal = _spread_labels(g, bank, data, folds, 2, cfg)
    _, per_label = _spread_labels(g, bank, data, folds, 2, cfg.replace(**{"propagation.class_mass": "per_label"}))
    assert abs(_boundary(equal) - 21.5) <= 2 and _boundary(per_label) >= _boundary(equal) + 3


def _round(cfg, graph_share=None, votes=False):
    """Three classes, 6 gold samples each, 10 accepted pseudo-labels (right ones); `votes`: the
    previous round's folds voted for every pseudo-label (the out-of-fold predictions stay honest)."""
    from mersemi.engine.folds import fold_key
    from mersemi.engine.train import Prior, TrainSet, train_round

    rng = np.random.default_rng(0)
    y_all = np.repeat([0, 1, 2], 70)
    feats = {m: (rng.normal(0, 2, (3, d))[y_all] + rng.normal(0, 1, (len(y_all), d))).astype(np.float32)
             for m, d in (("a", 6), ("b", 5))}
    gold = np.r_[0:6, 70:76, 140:146]
    rest = np.setdiff1d(np.arange(len(y_all)), gold)
    extra = rest[::20]
    prior = Prior(fold_key=fold_key(gold, y_all[gold], 3, cfg.seed),
                  fold_votes=np.repeat(y_all[extra][:, None], 3, axis=1)) if votes else None
    ts = TrainSet(features=feats, gold_rows=gold, gold_labels=y_all[gold], extra_rows=extra,
                  extra_labels=y_all[extra], pretrain_rows=np.arange(len(y_all)), score_rows=rest,
                  graph_share=graph_share, extra_from_model=np.ones(len(extra), bool), prior=prior)
    return train_round(ts, 3, cfg), y_all[rest]


FAST = load_config().replace(**{
    "model.hidden": 16, "model.classifier_dims": [16], "pretrain.epochs": 1, "pretrain.min_steps": 20,
    "finetune.folds": 3, "finetune.epochs": 3, "finetune.min_steps": 0, "finetune.patience": 0})


def test_a_round_joins_the_graph_and_reports_it():
    r, y = _round(FAST)
    m = r.metrics
    assert m["graph_weight"] is not None and m["graph_weight"] >= 0
    assert 0 <= m["graph_cv_waf"] <= 1 and m["timings"]["graph_s"] > 0
    assert r.state["graph_weight"] == m["graph_weight"]
    np.testing.assert_allclose(r.score_probs.sum(1), 1, atol=1e-5)
    off, _ = _round(FAST.replace(**{"propagation.enabled": False}))
    assert off.metrics["graph_weight"] is None and off.metrics["graph_cv_waf"] is None
    assert not np.allclose(off.score_probs, r.score_probs)
    # the ensemble part is the same round: the graph only re-weighs its scores
    np.testing.assert_array_equal(off.metrics["cv_confusion"], m["cv_confusion"])


def test_the_joint_fit_starts_at_joint_fit_min_gold_samples():
    sep, _ = _round(FAST)                  # FAST's 18 gold rows are below the default 100
    joint, _ = _round(FAST.replace(**{"propagation.joint_fit_min": 1}))
    assert joint.metrics["graph_weight"] != sep.metrics["graph_weight"]
    np.testing.assert_array_equal(joint.metrics["cv_confusion"], sep.metrics["cv_confusion"])


def test_a_round_without_pretraining_skips_the_graph_and_says_why_and_any_size_builds_it():
    r, _ = _round(FAST.replace(**{"pretrain.enabled": False}))
    assert r.metrics["graph_weight"] is None
    assert any("propagation skipped: it needs the pre-trained embedding" in w for w in r.metrics["warnings"])
    r, _ = _round(FAST)
    assert r.metrics["graph_weight"] is not None
    assert any("neighbour graph over 210 rows: 7 neighbours per row, exact" in w for w in r.metrics["warnings"])


def _true_graph(x, k=7):
    from sklearn.neighbors import NearestNeighbors

    truth = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(x).kneighbors(x, return_distance=False)[:, 1:]
    want = sp.csr_matrix((np.ones(x.shape[0] * k), (np.repeat(np.arange(len(x)), k), truth.ravel())),
                         shape=(len(x), len(x)))
    return want.maximum(want.T)


def _clustered(n=3000, d=48, seed=0):
    """Rows around 30 centres, as a pre-trained embedding groups its rows."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(30, d))[rng.integers(0, 30, n)] + 0.6 * rng.normal(size=(n, d))).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _kernels(bf16: bool, f32_gflops: float = 30.0):
    from mersemi.engine.hardware import CpuKernels

    return CpuKernels("AVX512" if bf16 else "AVX2", bf16, f32_gflops, 2 * f32_gflops if bf16 else None,
                      torch.bfloat16 if bf16 else None)


@pytest.mark.parametrize("bf16", [False, True])
def test_the_exact_graph_finds_the_true_neighbours_with_or_without_bfloat16(bf16, monkeypatch):
    """A CPU without bfloat16 in hardware takes FAISS's float32 flat index; one whose bfloat16
    measured faster takes bfloat16 candidates re-scored in float32. Both find every true neighbour."""
    monkeypatch.setattr(propagation, "cpu_kernels", lambda: _kernels(bf16))
    x = _clustered()
    exact, how = knn_graph(x, 7, "exact", chunk=500)
    assert how == "7 neighbours per row, exact" + (" (bfloat16 candidates, re-scored in float32)" if bf16 else "")
    assert ((exact > 0) != (_true_graph(x) > 0)).nnz == 0


def test_a_cpu_without_bfloat16_in_hardware_decides_float32_once_per_process(tmp_path):
    """What an AVX2-only CPU reports, seen on any x86 CPU through torch's own switches: the
    process decides float32 and says why."""
    code = ("from mersemi.engine.hardware import cpu_kernels; k = cpu_kernels(); "
            "assert cpu_kernels() is k; print(k.capability, k.bf16_kernel, k.reduced); print(k.note())")
    env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path,
                         check=True).stdout.splitlines()
    assert out[0] == "AVX2 False None"
    assert out[1].startswith("CPU AVX2: float32 only, torch has no bfloat16 kernel for this CPU (float32 ")


def test_approximate_graphs_find_nearly_every_true_neighbour():
    x = _clustered()
    want = _true_graph(x)
    for method in ("ivf", "pynndescent"):
        approx, how = knn_graph(x, 7, method)
        assert how.startswith(f"7 neighbours per row, {method}")
        assert ((approx > 0).multiply(want > 0)).nnz / want.nnz > 0.97, method
        # the same rows and seed give the same graph
        assert abs(knn_graph(x, 7, method)[0] - approx).max() == 0


def test_auto_chooses_by_the_estimated_cost_on_this_machine(monkeypatch):
    """Not a row count: the same rows are compared pair by pair on a fast machine and searched
    in an inverted file on a slow one; few rows are always exact."""
    cpu = torch.device("cpu")
    monkeypatch.setattr(propagation, "cpu_kernels", lambda: _kernels(False, 27.0))   # an AVX2 core
    slow = plan_knn(121_625, 384, "auto", cpu, threads=2)
    assert slow.method == "pynndescent" and slow.exact_s > 100 and slow.approx_s < slow.exact_s / 2
    assert plan_knn(5_000, 384, "auto", cpu, threads=2).method == "exact"
    assert plan_knn(121_625, 384, "auto", cpu, threads=512).method == "exact"        # many cores
    assert plan_knn(121_625, 384, "auto", torch.device("cuda"), threads=2).method == "exact"
    assert plan_knn(121_625, 384, "exact", cpu, threads=2).method == "exact"         # a named method stays
    monkeypatch.setattr(propagation, "cpu_kernels", lambda: _kernels(False, 27_000.0))
    assert plan_knn(121_625, 384, "auto", cpu, threads=2).method == "exact"
    x = _clustered()
    assert knn_graph(x, 7, "auto")[1].startswith("7 neighbours per row, exact; estimated every pair ")


def test_bad_graph_inputs_are_one_line_before_any_work():
    x = _clustered(n=200)
    with pytest.raises(InputError, match=r"^propagation.knn: expected one of auto, exact, ivf, pynndescent, "
                                         r"got 'faiss'$"):
        knn_graph(x, 7, "faiss")
    bad = x.copy()
    bad[[5, 9]] = np.nan
    with pytest.raises(InputError, match=r"^label spreading: the embedding has NaN or inf in 2 of 200 rows "
                                         r"\(first row 5\)"):
        knn_graph(bad, 7, "exact")
    with pytest.raises(InputError, match=r"^propagation.knn ivf: 200 rows are too few for an inverted-file index"):
        knn_graph(x, 7, "ivf")


def test_rows_an_inverted_file_finds_too_few_neighbours_for_are_searched_over_every_row():
    import faiss

    x = _clustered(n=300)
    found = (np.arange(300)[:, None] + np.arange(8)) % 300   # each row itself first, then 7 others
    found[7, 3:] = -1                     # row 7's probed clusters held too few rows
    found[9] = [10, 11, 12, 13, 14, 15, 16, 17]   # a duplicate outranked row 9: its last hit goes
    cols = propagation._without_self(found, 7, x, faiss)
    assert (cols >= 0).all() and (cols != np.arange(300)[:, None]).all()
    want = np.argsort(-(x[7] @ x.T))
    np.testing.assert_array_equal(cols[7], want[want != 7][:7])
    np.testing.assert_array_equal(cols[8], np.arange(9, 16))
    np.testing.assert_array_equal(cols[9], np.arange(10, 17))


def test_a_given_graph_share_is_kept_and_only_the_temperature_is_fitted():
    from mersemi.engine.errors import InputError

    r, _ = _round(FAST, graph_share=2.5)
    assert r.metrics["graph_weight"] * r.metrics["temperature"] == pytest.approx(2.5, rel=1e-3)
    assert r.metrics["temperature"] != 1.0 and r.metrics["graph_share_kept"]
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="graph_share: expected a finite number >= 0"):
            _round(FAST, graph_share=bad)


def test_with_the_folds_votes_the_share_is_fitted_on_the_honest_out_of_fold_predictions():
    kept, _ = _round(FAST, graph_share=2.5)
    honest, _ = _round(FAST, graph_share=2.5, votes=True)
    assert not honest.metrics["graph_share_kept"]
    assert honest.metrics["graph_weight"] * honest.metrics["temperature"] != pytest.approx(2.5, rel=1e-3)
    assert any("keeps its share" in n for n in kept.metrics["warnings"])


def test_a_bad_extra_from_model_mask_is_refused_before_any_work():
    from mersemi.engine.errors import InputError
    from mersemi.engine.train import TrainSet, train_round

    x = {"a": np.zeros((10, 3), np.float32)}
    for bad in (np.array([1, 0]), np.array([True])):
        ts = TrainSet(features=x, gold_rows=np.arange(4), gold_labels=np.array([0, 1, 0, 1]),
                      extra_rows=np.array([5, 6]), extra_labels=np.array([0, 1]), pretrain_rows=np.arange(10),
                      score_rows=np.arange(4, 10), extra_from_model=bad)
        with pytest.raises(InputError, match="extra_from_model: expected 2 booleans"):
            train_round(ts, 2, FAST)


@pytest.mark.slow
def test_a_graph_that_cannot_be_built_fails_the_round_in_one_line_and_writes_nothing(tmp_path, monkeypatch):
    """An embedding with NaN (pre-training diverged): one line naming the problem, the round
    marked failed, no checkpoint, no reused graph, no predictions."""
    from pathlib import Path

    import mersemi.engine.train
    from mersemi.engine.synthetic import make_synthetic
    from mersemi.service.project import Project, ProjectError
    from mersemi.service.rounds import run_round

    make_synthetic(tmp_path / "data", scale=0.05, seed=1)
    fast = load_config(Path(__file__).parent / "fast.yaml")
    real = mersemi.engine.train.embed

    def diverged(*args, **kwargs):
        e = real(*args, **kwargs).clone()
        e[3] = float("nan")
        return e

    monkeypatch.setattr(mersemi.engine.train, "embed", diverged)
    with Project.init(tmp_path / "p") as p:
        p.import_native(tmp_path / "data")
        with pytest.raises(ProjectError) as caught:
            run_round(p, fast)
        assert str(caught.value).startswith("label spreading: the embedding has NaN or inf in 1 of ")
        assert "\n" not in str(caught.value)
        rounds = p.status()["rounds"]
        assert [r["status"] for r in rounds] == ["failed"]
        assert sorted(x.name for x in (p.root / "checkpoints").iterdir()) == []
        assert p.store.rounds.current() is None


@pytest.mark.parametrize("graph_says, built", [("truth", True), ("wrong", False)])
def test_an_expensive_graph_is_built_only_where_an_estimate_on_a_sample_says_the_round_keeps_it(
        graph_says, built, monkeypatch):
    """Where the whole graph would cost more than the budget, a graph over the seeds and a
    sample of the other rows is judged by the round's own rule first; a graph the round would
    leave out is never built."""
    from mersemi.engine import round_graph
    from mersemi.engine.folds import Fold
    from mersemi.engine.metrics import waf
    from mersemi.engine.train import TrainSet

    x = torch.as_tensor(two_chains())
    gold = np.r_[0:40:4, 40:80:4]
    labels = (gold >= 40).astype(np.int64)
    data = TrainSet(features={}, gold_rows=gold, gold_labels=labels, extra_rows=np.zeros(0, np.int64),
                    extra_labels=np.zeros(0, np.int64), pretrain_rows=np.arange(80), score_rows=np.arange(80))
    folds = [Fold(train_rows=gold[k::2], train_labels=labels[k::2], eval_pos=np.arange(len(gold))[1 - k::2])
             for k in range(2)]
    rng = np.random.default_rng(0)
    oof = np.where(rng.random(len(gold)) < 0.8, labels, 1 - labels)       # the ensemble: 80 % right
    oof = np.eye(2)[oof] * 0.4 + 0.3
    built_rows = []
    real_knn = round_graph.knn_graph

    def knn(e, *args, **kwargs):
        built_rows.append(len(e))
        return real_knn(e, *args, **kwargs)

    def spread_labels(graph, bank, data, folds, n_classes, cfg):    # a graph that knows the truth, or contradicts it
        says = labels if graph_says == "truth" else 1 - labels
        return np.eye(2)[says] * 0.8 + 0.1, np.zeros((0, 2))

    monkeypatch.setattr(round_graph, "knn_graph", knn)
    monkeypatch.setattr(round_graph, "spread_labels", spread_labels)
    monkeypatch.setattr(round_graph, "plan_knn", lambda n, d, method, device: propagation.KnnPlan(
        "exact", 9.0, 50.0, None))      # 9 s for every pair here: above the 5 s budget
    cfg = load_config().replace(**{"propagation.joint_fit_min": 10, "finetune.calibrate": False})
    bank = SimpleNamespace(rows=np.arange(80), local=lambda rows: np.asarray(rows, np.int64))
    notes = []
    graph = round_graph.graph_for_round(x, bank, data, folds, oof, waf(labels, oof.argmax(1)), None, 2, cfg, notes)
    assert built_rows[0] == 59                       # 80 rows x sqrt(5 / 9): what the budget compares
    assert (graph is not None) == built, notes
    if built:
        assert built_rows[1:] == [80] and graph.shape == (80, 80)
        assert "no lower than without it: the whole graph is built" in notes[0]
        assert notes[1].startswith("neighbour graph over 80 rows: 7 neighbours per row, exact")
    else:
        assert built_rows[1:] == []
        assert notes[0].startswith("label spreading left out on an estimate: a graph over 59 of 80 rows")
        assert "the whole graph (exact, estimated 9 s here) was not built" in notes[0]
    # gold samples too few to judge: the whole graph, without an estimate
    built_rows.clear()
    few = cfg.replace(**{"propagation.joint_fit_min": 100})
    assert round_graph.graph_for_round(x, bank, data, folds, oof, 0.8, None, 2, few, []) is not None
    assert built_rows == [80]
