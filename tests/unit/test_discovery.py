"""Discovery documents in each form -> the kind table (v2 and v2beta1 share one shape)."""

from __future__ import annotations

from typing import Any

import pytest

from gitopsd.adapters.base import KindInfo
from gitopsd.adapters.discovery import (
    aggregated_kinds,
    is_aggregated,
    legacy_group_versions,
    legacy_kinds,
    nothing_usable,
)


def _aggregated(api_version: str) -> dict[str, Any]:
    deployments = {
        "resource": "deployments",
        "responseKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "scope": "Namespaced",
        "subresources": [{"subresource": "scale"}],
    }
    return {
        "apiVersion": api_version,
        "kind": "APIGroupDiscoveryList",
        "items": [
            {
                "metadata": {"name": "apps"},
                "versions": [{"version": "v1", "resources": [deployments]}],
            },
            {
                "metadata": {"name": "example.io"},
                "versions": [
                    {"version": "v2", "resources": [_widget("v2")], "freshness": "Stale"},
                    {"version": "v1", "resources": [_widget("v1")]},
                ],
            },
        ],
    }


def _widget(version: str) -> dict[str, Any]:
    kind = {"group": "example.io", "version": version, "kind": "Widget"}
    return {"resource": "widgets", "responseKind": kind, "scope": "Cluster"}


@pytest.mark.parametrize("version", ["apidiscovery.k8s.io/v2", "apidiscovery.k8s.io/v2beta1"])
def test_aggregated_documents_of_either_version(version: str) -> None:
    document = _aggregated(version)
    assert is_aggregated(document)
    assert aggregated_kinds(document) == [
        KindInfo("apps", "v1", "Deployment", "deployments", True),
        KindInfo("example.io", "v2", "Widget", "widgets", False),
        KindInfo("example.io", "v1", "Widget", "widgets", False),
    ]


def test_legacy_lists_put_the_preferred_version_first() -> None:
    core = {"kind": "APIVersions", "versions": ["v1"]}
    groups = {
        "kind": "APIGroupList",
        "groups": [
            {
                "name": "example.io",
                "versions": [
                    {"groupVersion": "example.io/v1", "version": "v1"},
                    {"groupVersion": "example.io/v2", "version": "v2"},
                ],
                "preferredVersion": {"groupVersion": "example.io/v2", "version": "v2"},
            }
        ],
    }
    assert not is_aggregated(core) and not is_aggregated(groups)
    assert legacy_group_versions(core) == [("", "v1")]
    assert legacy_group_versions(groups) == [("example.io", "v2"), ("example.io", "v1")]


def test_legacy_resource_lists_leave_subresources_out() -> None:
    resources = {
        "kind": "APIResourceList",
        "resources": [
            {"name": "deployments", "namespaced": True, "kind": "Deployment"},
            {"name": "deployments/scale", "namespaced": True, "kind": "Scale"},
            {"name": "namespaces", "namespaced": False, "kind": "Namespace"},
        ],
    }
    assert legacy_kinds("apps", "v1", resources) == [
        KindInfo("apps", "v1", "Deployment", "deployments", True),
        KindInfo("apps", "v1", "Namespace", "namespaces", False),
    ]


def test_nothing_usable_names_the_server_version() -> None:
    message = nothing_usable("https://10.0.0.1:6443", {"gitVersion": "v1.26.3"})
    assert message.startswith(
        "the API server at https://10.0.0.1:6443 (v1.26.3) described no kinds"
    )
    assert "(version unknown)" in nothing_usable("https://h", None)
