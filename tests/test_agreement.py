"""The pure computations behind votes (engine/agreement.py, engine/audit.py, engine/votes.py),
checked against the packages the field uses: Krippendorff's alpha against `krippendorff`,
confident learning against cleanlab's `find_label_issues`."""
from __future__ import annotations

import krippendorff
import numpy as np
import pytest
from cleanlab.filter import find_label_issues

from mersemi.engine.agreement import agreement_with, alpha_with_interval, krippendorff_alpha, pair_matrix
from mersemi.engine.audit import label_issues
from mersemi.engine.votes import REJECTED, accuracy_of, class_posterior, decided_class, majority


def random_votes(rng, units, reviewers, C, missing=0.4, copy=0.5) -> np.ndarray:
    v = rng.integers(-1, C, (units, reviewers)).astype(float)      # -1: a rejection, a value like any other
    same = rng.random(units) < copy                                # some agreement to measure
    v[same, 1] = v[same, 0]
    v[rng.random((units, reviewers)) < missing] = np.nan
    return v


@pytest.mark.parametrize("seed", range(12))
def test_alpha_overall_and_per_class_equal_the_krippendorff_package(seed):
    rng = np.random.default_rng(seed)
    C = int(rng.integers(2, 7))
    votes = random_votes(rng, int(rng.integers(10, 300)), int(rng.integers(2, 6)), C)
    theirs = krippendorff.alpha(reliability_data=votes.T, level_of_measurement="nominal")
    assert krippendorff_alpha(votes) == pytest.approx(theirs, abs=1e-9)
    overall, per_class, percent = alpha_with_interval(votes, C, draws=200, seed=seed)
    assert overall.value == pytest.approx(theirs, abs=1e-9)
    for c in range(C):
        binary = np.where(np.isnan(votes), np.nan, (votes == c).astype(float))
        with np.errstate(invalid="ignore"):   # a class never given: the package divides 0 by 0
            expected = krippendorff.alpha(reliability_data=binary.T, level_of_measurement="nominal")
        if np.isnan(expected):   # the class never given: no variation, no alpha
            assert per_class[c].value is None
        else:
            assert per_class[c].value == pytest.approx(expected, abs=1e-9)
    # percent agreement, by hand: per unit of m votes, the agreeing ordered pairs over m - 1, over all votes
    agree = total = 0.0
    for row in votes:
        vals = row[~np.isnan(row)]
        if len(vals) >= 2:
            agree += ((vals[:, None] == vals[None, :]).sum() - len(vals)) / (len(vals) - 1)
            total += len(vals)
    assert percent == pytest.approx(agree / total, abs=1e-12)


def test_the_interval_holds_the_value_narrows_with_more_units_and_is_seeded():
    rng = np.random.default_rng(0)
    small = random_votes(rng, 40, 3, 4, missing=0.0)
    large = np.concatenate([small] * 10)
    a, _, _ = alpha_with_interval(small, 4, draws=500, seed=1)
    b, _, _ = alpha_with_interval(large, 4, draws=500, seed=1)
    assert a.low < a.value < a.high and b.low < b.value < b.high
    assert a.value == pytest.approx(b.value, abs=0.02) and (b.high - b.low) < (a.high - a.low) / 2
    assert alpha_with_interval(small, 4, draws=500, seed=1)[0] == a
    assert a.units == 40


def test_no_two_votes_on_a_card_or_no_variation_give_no_alpha():
    one_each = np.array([[0, np.nan], [np.nan, 1]], float)
    overall, per_class, percent = alpha_with_interval(one_each, 2)
    assert overall.value is None and percent is None and per_class[0].units == 0
    assert krippendorff_alpha(one_each) is None
    all_same = np.array([[1, 1], [1, 1]], float)
    assert krippendorff_alpha(all_same) is None


def test_pairs_and_agreement_with_a_reference():
    votes = np.array([[0, 0, 1], [1, 1, np.nan], [2, 0, 2], [np.nan, 1, 1]], float)
    both, share = pair_matrix(votes)
    assert both.tolist() == [[3, 3, 2], [3, 4, 3], [2, 3, 3]]   # cards both voted on; diagonal: own votes
    assert share[0, 1] == pytest.approx(2 / 3) and share[1, 2] == pytest.approx(1 / 3) and share[0, 2] == 0.5
    n, hits = agreement_with(votes, np.array([0, 1, 2, np.nan]))
    assert n.tolist() == [3, 3, 2] and hits[0] == 1.0 and hits[1] == pytest.approx(2 / 3) and hits[2] == 0.5


@pytest.mark.parametrize("seed", range(15))
def test_label_issues_equal_cleanlabs_confident_learning_ranked_by_self_confidence(seed):
    rng = np.random.default_rng(seed)
    n, C = int(rng.integers(10, 400)), int(rng.integers(2, 7))
    labels = rng.integers(0, C, n)
    probs = rng.dirichlet(np.ones(C) * 0.5, n)
    probs[np.arange(n), labels] += rng.random(n) * 2 * (seed % 3)   # from a useless model to a good one
    probs /= probs.sum(1, keepdims=True)
    theirs = find_label_issues(labels, probs, filter_by="confident_learning",
                               return_indices_ranked_by="self_confidence")
    assert label_issues(labels, probs).tolist() == theirs.tolist()


def test_a_label_the_model_predicts_is_no_issue_even_when_another_class_is_confident():
    # sample 2 is confidently of class 1 (0.48 >= class 1's threshold 0.35) and not of class 0
    # (0.52 < 0.807), yet its given label 0 is the predicted class: no issue, as in cleanlab
    labels = np.array([0, 0, 0, 1, 1])
    probs = np.array([[.95, .05], [.95, .05], [.52, .48], [.6, .4], [.7, .3]])
    theirs = find_label_issues(labels, probs, filter_by="confident_learning",
                               return_indices_ranked_by="self_confidence")
    assert label_issues(labels, probs).tolist() == theirs.tolist() == []


def test_label_issues_find_planted_errors_first():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 300)
    probs = np.full((300, 3), 0.05)
    probs[np.arange(300), truth] = 0.9
    given = truth.copy()
    wrong = rng.choice(300, 20, replace=False)
    given[wrong] = (truth[wrong] + 1) % 3
    assert sorted(label_issues(given, probs).tolist()) == sorted(wrong.tolist())
    assert label_issues(np.zeros(0, int), np.zeros((0, 3))).tolist() == []


def test_majority_is_strict_and_a_rejection_is_a_value():
    assert majority([2, 2, 1]) == (2, 2)
    assert majority([2, 1]) == (None, 1) and majority([0, 1, 2]) == (None, 1) and majority([1, 1, 2, 2]) == (None, 2)
    assert majority([REJECTED, REJECTED, 0]) == (REJECTED, 2) and majority([]) == (None, 0)


def test_the_vote_distribution_and_the_posterior_weighed_by_probe_accuracy():
    assert class_posterior([0, 0, 1, REJECTED], 3).tolist() == pytest.approx([2 / 3, 1 / 3, 0])
    assert class_posterior([REJECTED], 3) is None
    # one careful reviewer (0.95) against two at chance-and-a-bit (0.4): the careful one wins
    post = class_posterior([0, 1, 1], 3, [0.95, 0.4, 0.4])
    assert decided_class(post) == 0 and post.sum() == pytest.approx(1)
    # equal accuracies: the majority, and a tie stays a tie
    assert decided_class(class_posterior([0, 1, 1], 3, [0.8, 0.8, 0.8])) == 1
    assert decided_class(class_posterior([0, 1], 3, [0.8, 0.8])) is None
    assert accuracy_of(0, 0, 3) == 0.5 and accuracy_of(10, 10, 3) == pytest.approx(11 / 12)
    assert accuracy_of(0, 10, 3) > 1 / 3 and accuracy_of(1000, 1000, 3) == 0.99
