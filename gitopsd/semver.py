"""A small semver range matcher for tag refs: `>=1.2 <2`, `^1.4`, `~1.2.3`, `1.x`, `a || b`.

Written here rather than imported because the rule set we need is tiny and PEP 440
(`packaging`) has a different range syntax and pre-release ordering than semver tags.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable

Version = tuple[int, int, int]

_VERSION = re.compile(r"^v?(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?$")
_TAG = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
_COMPARATOR = re.compile(r"^(>=|<=|>|<|==|=|\^|~)?\s*(\S+)$")
_OPS: dict[str, Callable[[Version, Version], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}

Predicate = Callable[[Version], bool]


class RangeError(ValueError):
    """The range does not parse."""


def parse_tag(tag: str) -> Version | None:
    """`v1.4.0` or `1.4.0` as a version; None for anything else (pre-releases included)."""
    match = _TAG.match(tag)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def _partial(text: str) -> tuple[Version, int]:
    """A possibly partial version, padded with zeros, and how many parts were given."""
    match = _VERSION.match(text)
    if not match:
        raise RangeError(f"not a version: {text!r}")
    given = [p for p in match.groups() if p is not None and p not in ("x", "*")]
    parts = [int(p) for p in given] + [0] * (3 - len(given))
    return (parts[0], parts[1], parts[2]), len(given)


def _bump(version: Version, given: int) -> Version:
    """The first version past the given parts: 1.2 -> 1.3.0, 1 -> 2.0.0."""
    major, minor, patch = version
    if given <= 1:
        return (major + 1, 0, 0)
    if given == 2:
        return (major, minor + 1, 0)
    return (major, minor, patch + 1)


def _between(low: Version, high: Version) -> Predicate:
    return lambda v: low <= v < high


def _comparator(text: str) -> Predicate:
    match = _COMPARATOR.match(text)
    if not match:
        raise RangeError(f"not a comparator: {text!r}")
    op, version_text = match[1] or "=", match[2]
    version, given = _partial(version_text)
    if op == "^":
        # Caret keeps the left-most non-zero part fixed, as npm and Cargo do.
        major, minor, _ = version
        upto = 1 if major or given == 1 else 2 if minor or given == 2 else 3
        return _between(version, _bump(version, upto))
    if op == "~":
        return _between(version, _bump(version, min(given, 2)))
    op = "=" if op == "==" else op
    if op == "=" and given < 3:
        return _between(version, _bump(version, given))
    compare = _OPS[op]
    return lambda v: compare(v, version)


def parse_range(text: str) -> Predicate:
    """Comparators separated by spaces all hold; alternatives are separated by `||`."""
    alternatives: list[list[Predicate]] = []
    for alternative in text.split("||"):
        # Allow ">= 1.2" as well as ">=1.2".
        tokens = re.sub(r"(>=|<=|>|<|==|=|\^|~)\s+", r"\1", alternative.strip()).split()
        if not tokens:
            raise RangeError(f"empty range in {text!r}")
        alternatives.append([_comparator(token) for token in tokens])
    return lambda v: any(all(p(v) for p in preds) for preds in alternatives)


def highest_match(range_text: str, tags: Iterable[str]) -> str | None:
    """The tag with the highest version matching the range, or None."""
    matches = parse_range(range_text)
    best: tuple[Version, str] | None = None
    for tag in tags:
        version = parse_tag(tag)
        if version is not None and matches(version) and (best is None or version > best[0]):
            best = (version, tag)
    return best[1] if best else None
