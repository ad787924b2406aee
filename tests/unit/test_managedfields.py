"""One reading of managedFields: which fieldsV1 set covers which path."""

from __future__ import annotations

from typing import Any

import pytest

from gitopsd.managedfields import Segment, owns

DEPLOYMENT_FIELDS = {
    "f:spec": {
        "f:replicas": {},
        "f:selector": {},  # an atomic struct: owned whole
        "f:template": {
            "f:spec": {
                "f:containers": {
                    'k:{"name":"web"}': {".": {}, "f:image": {}, "f:args": {}},
                },
                "f:finalizers": {'v:"a"': {}},  # a set: items named by value
                "f:data": {"i:0": {"f:x": {}}},  # schemaless: items named by index
            }
        },
    }
}
POD = [("f", "spec"), ("f", "template"), ("f", "spec")]
CONTAINER = [*POD, ("f", "containers"), ("k", "name", "web")]


@pytest.mark.parametrize(
    ("path", "owned"),
    [
        pytest.param([("f", "spec"), ("f", "replicas")], True, id="a leaf"),
        pytest.param([("f", "spec")], True, id="a field above owned fields"),
        pytest.param([("f", "spec"), ("f", "paused")], False, id="a sibling"),
        pytest.param([*CONTAINER, ("f", "image")], True, id="in a keyed item"),
        pytest.param([*POD, ("f", "containers"), ("k", "name", "api")], False, id="another item"),
        pytest.param([*CONTAINER, ("f", "args"), ("i", "1")], True, id="atomic list item"),
        # The two old copies disagreed here: handoff's said no, diff's said yes. An empty
        # set owns the whole value, so a field inside an atomic struct is owned.
        pytest.param(
            [("f", "spec"), ("f", "selector"), ("f", "matchLabels"), ("f", "app")],
            True,
            id="inside an atomic struct",
        ),
        # ... and here, the other way round: an index into a granular list cannot be
        # matched, and a manager writing to that list may own the item.
        pytest.param([*POD, ("f", "finalizers"), ("i", "0")], True, id="index into a set"),
        pytest.param([*POD, ("f", "data"), ("i", "0"), ("f", "x")], True, id="named by index"),
        pytest.param([*POD, ("f", "data"), ("i", "0"), ("f", "y")], False, id="index, other"),
    ],
)
def test_owns(path: list[Segment], owned: bool) -> None:
    assert owns(DEPLOYMENT_FIELDS, path) is owned


@pytest.mark.parametrize("fields", [None, "garbage", [], {"f:spec": "x"}])
def test_unreadable_sets_own_nothing_below_them(fields: Any) -> None:
    assert owns(fields, [("f", "spec"), ("f", "replicas")]) is False
