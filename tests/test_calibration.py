"""Temperature scaling and the fold average: confidences that mean probabilities."""
import numpy as np
import pytest

from mersemi.engine.calibration import (apply_temperature, ensemble_mean, expected_calibration_error,
                                        fit_temperature, fold_term)


def _overconfident(n=4000, seed=0):
    """Three classes, true probability 0.6 on the predicted class, reported as 0.9+."""
    rng = np.random.default_rng(seed)
    pred = rng.integers(0, 3, n)
    y = np.where(rng.random(n) < 0.6, pred, (pred + rng.integers(1, 3, n)) % 3)
    probs = np.full((n, 3), 0.04)
    probs[np.arange(n), pred] = 0.92
    return probs, y


def test_temperature_fitted_on_overconfident_scores_softens_them_and_cuts_the_ece():
    probs, y = _overconfident()
    t = fit_temperature(probs, y)
    assert t > 1.5
    calibrated = apply_temperature(probs, t)
    assert np.allclose(calibrated.sum(1), 1, atol=1e-5)
    assert (calibrated.argmax(1) == probs.argmax(1)).all()     # never changes the prediction
    assert expected_calibration_error(probs, y) > 0.25
    assert expected_calibration_error(calibrated, y) < 0.03
    assert abs(calibrated.max(1).mean() - 0.6) < 0.03


def test_no_labels_means_no_rescaling():
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, int)) == 1.0


def test_fold_averages_are_the_normalised_geometric_and_the_arithmetic_mean():
    folds = [np.array([[0.98, 0.01, 0.01]]), np.array([[0.34, 0.33, 0.33]]), np.array([[0.2, 0.5, 0.3]])]
    arith = ensemble_mean(sum(fold_term(p, "arithmetic") for p in folds), 3, "arithmetic")
    geo = ensemble_mean(sum(fold_term(p, "geometric") for p in folds), 3, "geometric")
    assert np.allclose(arith, np.mean(folds, axis=0), atol=1e-6)
    g = np.prod(folds, axis=0) ** (1 / 3)
    assert np.allclose(geo, g / g.sum(), atol=1e-6)


# ---------------------------------------------------------------------- exact values (mutation testing)

def test_apply_temperature_is_the_power_rule_and_leaves_t1_and_empty_input_alone():
    p = np.array([[0.5, 0.3, 0.2], [0.7, 0.3, 0.0]])
    for t in (2.0, 0.5):
        q = np.clip(p, 1e-12, 1.0) ** (1 / t)
        np.testing.assert_allclose(apply_temperature(p, t), q / q.sum(1, keepdims=True), rtol=1e-6, atol=1e-7)
    assert apply_temperature(p, 2.0).dtype == np.float32
    same = apply_temperature(p, 1.0)
    assert same.dtype == np.float32 and np.array_equal(same, p.astype(np.float32))
    assert apply_temperature(np.zeros((0, 3)), 2.0).shape == (0, 3)
    # a zero probability stays (nearly) zero at any temperature, never NaN
    assert 0 < apply_temperature(p, 20.0)[1, 2] < 0.3 and np.isfinite(apply_temperature(p, 0.05)).all()


def test_temperature_stays_within_its_bounds():
    from mersemi.engine.calibration import T_MAX, T_MIN

    assert (T_MIN, T_MAX) == (0.05, 20.0)
    # always right at 0.34 of three: 300 samples ask for 301/302, far beyond T_MIN's reach
    probs = np.tile([0.34, 0.33, 0.33], (300, 1))
    assert abs(fit_temperature(probs, np.zeros(300, int)) - T_MIN) < 1e-3
    # right one time in three with three classes: the scores carry nothing, flatten them
    probs = np.tile([0.6, 0.2, 0.2], (300, 1))
    y = np.arange(300) % 3
    assert abs(fit_temperature(probs, y) - T_MAX) < 0.05


def test_a_few_samples_all_right_ask_for_the_rule_of_succession_not_certainty():
    # 36 out-of-fold samples, all right at 0.9: maximum likelihood would sharpen them to
    # 1.0 (T at its lower bound); 36 samples support (36 + 1) / (36 + 2).
    probs = np.tile([0.9, 0.05, 0.05], (36, 1))
    t = fit_temperature(probs, np.zeros(36, int))
    assert t > 0.2
    assert abs(apply_temperature(probs, t)[0, 0] - 37 / 38) < 2e-3


def test_ece_bins_by_ceiling_and_weights_by_samples():
    from mersemi.engine.calibration import ECE_BINS

    assert ECE_BINS == 15
    # bins of width 0.5: conf 0.5 falls in the first, 0.9 and 0.6 in the second
    probs = np.array([[0.5, 0.5], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([1, 0, 1, 1])
    # bin 1 (0.5]: sample 0, wrong (argmax 0), conf .5 -> 1 x |0 - .5|
    # bin 2 (.5, 1]: samples 1 (right, .9), 2 (wrong, .6), 3 (right, .6) -> 3 x |2/3 - .7|
    want = (1 * 0.5 + 3 * abs(2 / 3 - 0.7)) / 4
    assert expected_calibration_error(probs, y, bins=2) == pytest.approx(want)
    assert expected_calibration_error(np.zeros((0, 2)), np.zeros(0, int)) is None
    # zero confidence goes to the first bin, not bin -1
    assert expected_calibration_error(np.array([[0.0, 0.0]]), np.array([1]), bins=4) == 0.0


def test_ensemble_of_zero_models_and_log_of_zero():
    assert np.isfinite(fold_term(np.array([[1.0, 0.0]]), "geometric")).all()
    np.testing.assert_allclose(ensemble_mean(np.array([[0.2, 0.8]]), 0, "arithmetic"), [[0.2, 0.8]], rtol=1e-6)


def test_geometric_mean_of_several_rows_normalises_each_row():
    rng = np.random.default_rng(1)
    folds = [rng.dirichlet(np.ones(3), size=3) for _ in range(4)]     # 3 rows of 3 classes
    geo = ensemble_mean(sum(fold_term(p, "geometric") for p in folds), 4, "geometric")
    g = np.prod(folds, axis=0) ** (1 / 4)
    np.testing.assert_allclose(geo, g / g.sum(1, keepdims=True), rtol=1e-5)


def test_the_fit_is_the_smoothed_cross_entropy_minimum_even_on_one_sample():
    def smoothed_ce(probs, y, t):
        n, c = probs.shape
        eps = 1 / (n + 2)
        target = np.full((n, c), eps / (c - 1))
        target[np.arange(n), y] = 1 - eps
        return -(target * np.log(apply_temperature(probs, t).astype(np.float64))).sum(1).mean()

    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 4001))
    for probs, y in ((np.array([[0.6, 0.3, 0.1]]), np.array([0])),
                     (np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]]), np.array([0, 1, 1]))):
        best = grid[np.argmin([smoothed_ce(probs, y, t) for t in grid])]
        assert abs(np.log(fit_temperature(probs, y)) - np.log(best)) < 0.01


def test_ece_bins_are_right_closed_thirds_with_four_classes():
    def ece_by_hand(conf, right, bins):
        total = 0.0
        for k in range(bins):
            lo, hi = k / bins, (k + 1) / bins
            m = [(c > lo or k == 0) and c <= hi for c in conf]
            if any(m):
                n = sum(m)
                acc = sum(r for r, x in zip(right, m) if x) / n
                mean = sum(c for c, x in zip(conf, m) if x) / n
                total += n * abs(acc - mean)
        return total / len(conf)

    conf = [0.3, 0.4, 0.5, 0.9, 0.7, 1.0]          # bins (0, 1/3], (1/3, 2/3], (2/3, 1]
    right = [False, True, False, True, False, True]
    probs = np.zeros((6, 4))
    y = np.zeros(6, int)
    for i, (c, r) in enumerate(zip(conf, right)):
        probs[i] = (1 - c) / 3
        probs[i, 0] = c
        y[i] = 0 if r else 1
    want = ece_by_hand(conf, right, 3)
    # one wrong at .3; .4 right and .5 wrong; .9 and 1.0 right, .7 wrong (merging any two bins
    # changes the sum)
    assert want == pytest.approx((abs(0 - 0.3) + 2 * abs(0.5 - 0.45) + 3 * abs(2 / 3 - 2.6 / 3)) / 6)
    assert expected_calibration_error(probs, y, bins=3) == pytest.approx(want)


def test_one_row_is_rescaled_too_and_an_all_zero_row_becomes_uniform():
    q = np.array([0.6, 0.3, 0.1]) ** 2
    np.testing.assert_allclose(apply_temperature(np.array([[0.6, 0.3, 0.1]]), 0.5), [q / q.sum()], rtol=1e-6)
    np.testing.assert_allclose(apply_temperature(np.zeros((1, 3)), 0.05), [[1 / 3] * 3], rtol=1e-6)
