"""A target run with least-privilege credentials against the real API server's RBAC: a
ServiceAccount token (TokenRequest) whose only grants are examples/rbac/gitopsd-rbac.yaml,
bound in two namespaces (issue 11)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from gitopsd.adapters.kubernetes import KubernetesAdapter
from gitopsd.adapters.rbac import Permission, Scope, needed
from gitopsd.config import ClusterSettings, RefKind, SourceSettings, TargetSettings
from gitopsd.errors import ForbiddenError
from gitopsd.passresult import PassOutcome
from gitopsd.reconcile import Reconciler
from tests.support.cluster import ControlPlane
from tests.support.rbac_grant import Grant, granted, rbac_documents
from tests.support.sources import FilesSource


@pytest.fixture
def grant(cluster: ControlPlane, api_client: Any, tmp_path: Path) -> Iterator[Grant]:
    with granted(cluster, api_client, tmp_path) as made:
        yield made


def _configmap(name: str, namespace: str, value: str) -> str:
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
        f"data: {{value: {value}}}\n"
    )


def _deployment(name: str, namespace: str) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: c, image: registry.k8s.io/pause:3.10}}]}}
"""


def _reconciler(grant: Grant, source: FilesSource) -> tuple[Reconciler, KubernetesAdapter]:
    first = grant.namespaces[0]
    settings = TargetSettings(
        name=f"lp-{first}",
        source=SourceSettings(repo="memory", ref_kind=RefKind.BRANCH, ref="main"),
        cluster=ClusterSettings(kubeconfig=grant.kubeconfig),
        namespace=first,
        inventory_namespace=first,  # the sidecar case: the inventory next to the objects
    )
    adapter = KubernetesAdapter(settings.cluster, settings.inventory_namespace)
    return Reconciler(settings, source, adapter), adapter


def _two_namespaces(grant: Grant, value: str) -> dict[str, str]:
    a, b, _ = grant.namespaces
    return {
        "a.yaml": _configmap("settings", a, value),
        "b.yaml": _configmap("settings", b, value) + "---\n" + _deployment("web", b),
    }


def test_a_role_in_two_namespaces_is_enough(grant: Grant, api_client: Any) -> None:
    source = FilesSource(_two_namespaces(grant, "one"))
    reconciler, adapter = _reconciler(grant, source)
    try:
        first = reconciler.run()
        assert first.outcome is PassOutcome.CONVERGED, first.error
        assert reconciler.run().outcome is PassOutcome.IN_SYNC
        source.files = _two_namespaces(grant, "two")
        del source.files["a.yaml"]
        changed = reconciler.run()
        assert changed.outcome is PassOutcome.CONVERGED, changed.error
    finally:
        adapter.close()
    core = client.CoreV1Api(api_client)
    a, b, _ = grant.namespaces
    assert core.read_namespaced_config_map("settings", b).data == {"value": "two"}
    names = [item.metadata.name for item in core.list_namespaced_config_map(a).items]
    assert "settings" not in names, "the object Git dropped was not pruned"


def test_a_third_namespace_fails_naming_the_rule_and_writes_nothing(
    grant: Grant, api_client: Any
) -> None:
    source = FilesSource(_two_namespaces(grant, "one"))
    reconciler, adapter = _reconciler(grant, source)
    core = client.CoreV1Api(api_client)
    a, b, c = grant.namespaces
    try:
        assert reconciler.run().outcome is PassOutcome.CONVERGED
        inventory = core.read_namespaced_config_map(f"gitopsd-inventory-lp-{a}", a)
        source.files = _two_namespaces(grant, "two")
        source.files["c.yaml"] = _configmap("settings", c, "two")
        refused = reconciler.run()
    finally:
        adapter.close()
    assert refused.outcome is PassOutcome.FAILED
    assert isinstance(refused.error, ForbiddenError)
    message = str(refused.error)
    assert "\n" not in message
    assert f"{grant.user} may not list configmaps in namespace {c}" in message
    assert (
        f'add this rule to a Role in namespace {c}: {{apiGroups: [""], '
        'resources: ["configmaps"], verbs: ["list"]}' in message
    )
    for space in (a, b):
        assert core.read_namespaced_config_map("settings", space).data == {"value": "one"}
    assert not core.list_namespaced_config_map(c).items
    after = core.read_namespaced_config_map(f"gitopsd-inventory-lp-{a}", a)
    assert after.metadata.resource_version == inventory.metadata.resource_version


def test_the_documented_rules_are_what_a_target_needs() -> None:
    """Every verb the example grants is one a pass needs, and the reverse (prune and adopt on,
    as by default); the cluster test above proves the grant suffices."""
    role = rbac_documents("n", "ns", "sa", "home")[0]
    granted = {
        Permission(group, resource, "ns", verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    scopes = [
        Scope("", "configmaps", frozenset({"ns"})),
        Scope("apps", "deployments", frozenset({"ns"})),
    ]
    assert set(needed(scopes, "ns", prune=True, adopt=True)) == granted
