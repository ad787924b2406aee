"""The semver range matcher behind `ref_kind: semver`."""

from __future__ import annotations

import pytest

from gitopsd.semver import RangeError, highest_match, parse_range, parse_tag

TAGS = [
    "v0.2.3",
    "v0.2.9",
    "v0.3.0",
    "v1.0.0",
    "v1.2.0",
    "v1.4.0",
    "1.4.1",
    "v2.0.0",
    "v2.1.0-rc.1",
    "latest",
    "v3",
]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (">=1.2 <2", "1.4.1"),
        (">= 1.2 < 2", "1.4.1"),
        ("^1.2", "1.4.1"),
        ("~1.2", "v1.2.0"),
        ("~1.4.0", "1.4.1"),
        ("1.x", "1.4.1"),
        ("1", "1.4.1"),
        ("=1.2", "v1.2.0"),
        ("1.4.0", "v1.4.0"),
        ("^0.2", "v0.2.9"),
        (">=2", "v2.0.0"),
        ("<1 || >=2", "v2.0.0"),
        (">3", None),
    ],
)
def test_highest_match(spec: str, expected: str | None) -> None:
    assert highest_match(spec, TAGS) == expected


def test_tags_that_are_not_plain_versions_are_ignored() -> None:
    assert parse_tag("v2.1.0-rc.1") is None
    assert parse_tag("v3") is None
    assert parse_tag("v1.4.0") == (1, 4, 0)


@pytest.mark.parametrize("spec", ["", ">=banana", "1.2.3.4", "||"])
def test_bad_ranges(spec: str) -> None:
    with pytest.raises(RangeError):
        parse_range(spec)
