"""engine/thresholds.py: the one check of a threshold and the one rounding rule."""
import math

import pytest

from mersemi.engine.thresholds import STEP, ThresholdError, check, parse, quantize

CLASSES = ["calm", "joy", "anger"]


def test_quantize_rounds_up_to_the_step_and_never_past_one():
    assert quantize(0.9) == 0.9              # 0.9 * 1000 is 900.0000000000001
    assert quantize(0.9001) == 0.901         # up: never admits a sample the exact value would not
    assert quantize(0.93) == 0.93
    assert quantize(0.9999) == 1.0
    assert quantize(1.0) == 1.0 and quantize(0.0) == 0.0
    assert all(quantize(k * STEP) == pytest.approx(k * STEP) for k in range(0, 1001, 37))


def test_parse_checks_every_value_and_matches_classes_case_insensitively():
    assert parse(CLASSES, {"Joy": 0.8, "anger": 0.9004}) == {1: 0.8, 2: 0.901}
    for values, message in (({"fear": 0.5}, "unknown class 'fear'; classes are calm, joy, anger"),
                            ({"joy": 1.5}, "threshold for joy: must lie in [0, 1], got 1.5"),
                            ({"joy": -0.1}, "must lie in [0, 1]"),
                            ({"joy": math.nan}, "must lie in [0, 1], got nan"),
                            ({"joy": math.inf}, "must lie in [0, 1]"),
                            ({"joy": "high"}, "threshold for joy: not a number: 'high'"),
                            ({"joy": None}, "not a number"), ({"joy": True}, "not a number"),
                            ({"joy": [0.5]}, "not a number"), ({3: 0.5}, "unknown class 3")):
        with pytest.raises(ThresholdError) as e:
            parse(CLASSES, values)
        assert message in str(e.value), values
    with pytest.raises(ThresholdError, match="not a number"):
        check("0.5", "joy")  # a string is not a number: the command line converts its text first
