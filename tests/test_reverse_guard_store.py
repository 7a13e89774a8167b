# ruff: noqa: F811  (the fixtures imported from tests/test_round_steps.py are the tests' arguments)
"""The reverse guard through the product (service/rounds.py against a real SQLite store): the
round in force's out-of-fold predictions come back from the store as the guard's reference, and a
`train --auto-accept` round whose pseudo-labels contradict the gold labels is discarded. The
engine is tests/test_round_steps.py's stand-in; the reverse model runs on the project's features."""
from __future__ import annotations


import mersemi.service.rounds as rounds
from test_round_steps import FIXED, FakeEngine, data, engine, project  # noqa: F401  (fixtures)


def every_pool_prediction_wrong(engine: FakeEngine) -> None:
    for i, t, c in zip(engine.pool_ids.tolist(), engine.pool_true, engine.pool_conf):
        engine.probs[i] = engine._row(int((t + 1) % engine.C), float(c))


def test_a_round_on_pseudo_labels_that_contradict_the_gold_is_discarded_by_the_reverse_guard(project, engine):
    every_pool_prediction_wrong(engine)
    cfg = FIXED.replace(**{"self_training.guard": "reverse"})
    r0 = rounds.run_round(project, cfg)
    project.set_thresholds({c: 0.9 for c in project.classes}, by="ann")
    r1 = rounds.run_round(project, cfg, auto_accept=True)
    assert r1.status == "discarded" and project.store.rounds.current().id == r0.id
    rv = project.round(r1.id).record.reverse_validation
    gold = len(project.store.samples.split_arrays("labeled")[0])
    assert rv is not None and rv.gold == gold and rv.reference == 1.0 and rv.upper < 0
    assert "predicts the gold samples worse than round" in r1.discard_reason


def test_the_log_loss_guard_alone_keeps_that_round(project, engine):
    every_pool_prediction_wrong(engine)
    rounds.run_round(project, FIXED)
    project.set_thresholds({c: 0.9 for c in project.classes}, by="ann")
    r1 = rounds.run_round(project, FIXED, auto_accept=True)   # the same out-of-fold log-loss: kept
    assert r1.status == "done" and project.round(r1.id).record.reverse_validation is None
    assert project.store.rounds.current().id == r1.id
