"""Kubernetes resource quantities as exact numbers, so `0.5` and `500m` compare equal."""

from __future__ import annotations

import math
import re
from fractions import Fraction

_PATTERN = re.compile(
    r"^(?P<number>[+-]?(?:\d+\.?\d*|\.\d+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$"
)

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def parse_quantity(value: object) -> Fraction | None:
    """The exact value of a quantity (`"1Gi"`, `"500m"`, `0.5`, `"1e3"`); None if it is not one."""
    if isinstance(value, bool):  # bool is an int, but never a quantity
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int | float):
        # repr keeps the shortest exact spelling of a float: 0.1 is 1/10, not 0.1000000000000000055.
        return Fraction(repr(value)) if isinstance(value, float) else Fraction(value)
    if not isinstance(value, str):
        return None
    match = _PATTERN.match(value.strip())
    if match is None:
        return None
    number = Fraction(match["number"])
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * Fraction(1024) ** _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * Fraction(10) ** _DECIMAL[suffix]
    if suffix:
        return number * Fraction(10) ** int(suffix[1:])
    return number
