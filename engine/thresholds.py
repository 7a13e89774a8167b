"""A per-class confidence threshold: the one check of a value and the one rounding rule.

Every threshold that is stored (a slider, `mersemi thresholds --set`, an API call, Suggest,
the policy after a round) passes through `parse` or `quantize`: a finite number in [0, 1],
rounded UP to STEP, so that rounding never admits a sample the exact value would not.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal, get_args

from .errors import InputError, shown

STEP = 0.001          # what a slider shows and the store keeps
_STEPS = round(1 / STEP)
# How a finished round sets the thresholds the policy may set, and what must reach the target.
Policy = Literal["target_precision", "fixed"]
TargetPer = Literal["set", "sample"]
TARGET_PER: tuple[str, ...] = get_args(TargetPer)


class ThresholdError(InputError):
    """A threshold value or class that cannot be stored; the message names it."""


def quantize(value: float) -> float:
    """`value` rounded up to STEP (values already on the grid stay as they are)."""
    return min(1.0, math.ceil(value * _STEPS - 1e-6) / _STEPS)


def check(value: object, cls: str) -> float:
    """A threshold for class `cls` from a number (a string is not one: the command line converts
    its text first), quantized; ThresholdError naming the class and the value otherwise (not a
    number, NaN, infinite, outside [0, 1])."""
    echo = shown(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ThresholdError(f"threshold for {cls}: not a number: {echo}")
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ThresholdError(f"threshold for {cls}: must lie in [0, 1], got {echo}")
    return quantize(float(value))


def check_target_precision(value: object, what: str = "target precision") -> float:
    """The one check of a target precision: a finite number in (0, 1]. ValueError otherwise,
    saying `what` it is ("" when the caller names it)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
        raise ValueError(f"{what + ' ' if what else ''}must lie in (0, 1], got {shown(value)}")
    return float(value)


def parse(classes: Sequence[str], values: Mapping[str, object]) -> dict[int, float]:
    """Class id -> threshold for some or all classes, every value checked before any is returned.
    Class names match case-insensitively; an unknown one is an error naming the classes."""
    lowered = {c.lower(): i for i, c in enumerate(classes)}
    out: dict[int, float] = {}
    for name, value in values.items():
        cid = lowered.get(name.strip().lower()) if isinstance(name, str) else None
        if cid is None:
            raise ThresholdError(f"unknown class {shown(name)}; classes are {', '.join(classes)}")
        out[cid] = check(value, classes[cid])
    return out
