"""Health rules, one YAML case per rule (tests/unit/testdata/health/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gitopsd.health import RULE_KINDS, Health, assess

DATA = Path(__file__).parent / "testdata" / "health"


def _cases() -> list[Any]:
    cases = []
    for path in sorted(DATA.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text()):
            cases.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return cases


@pytest.mark.parametrize("case", _cases())
def test_health_rule(case: dict[str, Any]) -> None:
    result = assess(case["object"])
    assert (result.status.value, result.reason) == (case["status"], case["reason"])


def test_every_kind_with_a_rule_has_a_case() -> None:
    covered = set()
    for path in DATA.glob("*.yaml"):
        for case in yaml.safe_load(path.read_text()):
            obj = case["object"] or {}
            group = obj.get("apiVersion", "").rpartition("/")[0]
            covered.add((group, obj.get("kind")))
    assert RULE_KINDS - covered == set()


def test_every_status_value_is_reachable() -> None:
    seen = {case.values[0]["status"] for case in _cases()}
    assert seen == {h.value for h in Health}
