"""Normalization: Secret handling, projection and canonical spellings."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from gitopsd.normalize import (
    LAST_APPLIED_ANNOTATION,
    canonical,
    project,
    redact_secret,
    secret_string_data_to_data,
)
from tests.support.standins import shown_as
from tests.unit._data import cases


@pytest.mark.parametrize("case", cases("canonical_cases.yaml"))
def test_canonical_table(case: dict[str, Any]) -> None:
    assert (canonical(case["a"]) == canonical(case["b"])) is case["equal"]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _short_hash(text: str) -> str:
    return shown_as(text)


SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {
        "name": "db",
        "annotations": {LAST_APPLIED_ANNOTATION: '{"data":{"password":"aHVudGVyMg=="}}'},
    },
    "data": {"password": _b64("hunter2")},
    "stringData": {"token": "t0ken-value"},
}


def test_redact_secret_hashes_decoded_values() -> None:
    original = copy.deepcopy(SECRET)

    result = redact_secret(SECRET)

    assert original == SECRET
    assert result["data"] == {"password": _short_hash("hunter2")}
    assert result["stringData"] == {"token": _short_hash("t0ken-value")}
    assert result["metadata"]["annotations"][LAST_APPLIED_ANNOTATION] == "<redacted>"
    for value in ("hunter2", _b64("hunter2"), "t0ken-value", "aHVudGVyMg=="):
        assert value not in repr(result)


def test_redact_secret_same_value_same_hash_in_data_and_string_data() -> None:
    from_data = redact_secret({"kind": "Secret", "data": {"k": _b64("same")}})
    from_string_data = redact_secret({"kind": "Secret", "stringData": {"k": "same"}})

    assert from_data["data"]["k"] == from_string_data["stringData"]["k"]


def test_redact_secret_leaves_other_kinds_alone() -> None:
    config_map = {"kind": "ConfigMap", "data": {"password": "visible"}}

    assert redact_secret(config_map) == {"kind": "ConfigMap", "data": {"password": "visible"}}


@pytest.mark.parametrize(
    ("manifest", "data"),
    [
        ({"kind": "Secret", "stringData": {"a": "x"}}, {"a": _b64("x")}),
        (
            {"kind": "Secret", "data": {"a": _b64("old")}, "stringData": {"a": "new"}},
            {"a": _b64("new")},
        ),
        ({"kind": "Secret", "data": {"a": "%not base64%"}}, {"a": "%not base64%"}),
        ({"kind": "Secret", "data": {"a": "eA==\n"}}, {"a": "eA=="}),
    ],
)
def test_secret_string_data_to_data(manifest: dict[str, Any], data: dict[str, str]) -> None:
    original = copy.deepcopy(manifest)

    result = secret_string_data_to_data(manifest)

    assert manifest == original
    assert result == {"kind": "Secret", "data": data}


def test_secret_string_data_to_data_leaves_other_kinds_alone() -> None:
    config_map = {"kind": "ConfigMap", "stringData": {"a": "x"}}

    assert secret_string_data_to_data(config_map) == {"kind": "ConfigMap", "stringData": {"a": "x"}}


@pytest.mark.parametrize(
    ("desired", "live", "expected"),
    [
        pytest.param(
            {"spec": {"replicas": 1}},
            {"spec": {"replicas": 2, "paused": False}, "status": {"ready": 1}},
            {"spec": {"replicas": 2}},
            id="undeclared fields dropped",
        ),
        pytest.param(
            {"spec": {"replicas": 1, "paused": True}},
            {"spec": {"replicas": 1}},
            {"spec": {"replicas": 1}},
            id="fields missing live stay missing",
        ),
        pytest.param(
            {"containers": [{"name": "b", "image": "x"}, {"name": "a"}]},
            {
                "containers": [
                    {"name": "a", "tty": True},
                    {"name": "c"},
                    {"name": "b", "image": "y"},
                ]
            },
            {"containers": [{"name": "b", "image": "y"}, {"name": "a"}]},
            id="containers matched by name, undeclared ones dropped",
        ),
        pytest.param(
            {"ports": [{"containerPort": "80"}]},
            {"ports": [{"containerPort": 80, "protocol": "TCP"}]},
            {"ports": [{"containerPort": 80}]},
            id="ports matched by number across spellings",
        ),
        pytest.param(
            {"subjects": [{"name": "app"}]},
            {"subjects": [{"name": "app", "kind": "User"}, {"name": "mallory"}]},
            {"subjects": [{"name": "app"}, {"name": "mallory"}]},
            id="atomic list keeps extra live items",
        ),
        pytest.param(
            {"args": ["a", "b", "c"]},
            {"args": ["a"]},
            {"args": ["a"]},
            id="shorter live list",
        ),
        pytest.param(
            {"metadata": {"creationTimestamp": None, "name": "x"}},
            {"metadata": {"creationTimestamp": "2025-01-01T00:00:00Z", "name": "x"}},
            {"metadata": {"name": "x"}},
            id="declared null states nothing",
        ),
    ],
)
def test_project(desired: dict[str, Any], live: dict[str, Any], expected: dict[str, Any]) -> None:
    assert project(desired, live) == expected
