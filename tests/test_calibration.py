"""Temperature scaling and the fold average: confidences that mean probabilities."""
import numpy as np

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
