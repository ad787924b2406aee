"""The RBAC rule a forbidden answer asks for, from the API server's own words."""

from __future__ import annotations

import pytest

from gitopsd.adapters.kube_errors import cluster_error
from gitopsd.adapters.rbac import Permission, Scope, forbidden_permission, forbidden_text, needed

NAMESPACED = (
    'configmaps is forbidden: User "system:serviceaccount:a:gitopsd" cannot list resource '
    '"configmaps" in API group "" in the namespace "c"'
)
CLUSTER = (
    'namespaces is forbidden: User "alice" cannot create resource "namespaces" in API group ""'
    " at the cluster scope"
)
GROUPED = (
    'deployments.apps "web" is forbidden: User "bob" cannot patch resource "deployments" in '
    'API group "apps" in the namespace "b"'
)


@pytest.mark.parametrize(
    ("message", "user", "permission"),
    [
        (NAMESPACED, "system:serviceaccount:a:gitopsd", Permission("", "configmaps", "c", "list")),
        (CLUSTER, "alice", Permission("", "namespaces", "", "create")),
        (GROUPED, "bob", Permission("apps", "deployments", "b", "patch")),
    ],
)
def test_the_permission_a_forbidden_message_names(
    message: str, user: str, permission: Permission
) -> None:
    assert forbidden_permission(message) == (user, permission)


def test_the_line_names_verb_resource_namespace_and_rule() -> None:
    line = forbidden_text("list ConfigMap", NAMESPACED)
    assert line == (
        "list ConfigMap: forbidden: system:serviceaccount:a:gitopsd may not list configmaps in "
        'namespace c; add this rule to a Role in namespace c: {apiGroups: [""], resources: '
        '["configmaps"], verbs: ["list"]} bound to system:serviceaccount:a:gitopsd'
    )
    assert "a ClusterRole: " in forbidden_text("x", CLUSTER)
    assert "patch deployments.apps in namespace b" in forbidden_text("x", GROUPED)


def test_a_message_in_another_form_is_kept_with_the_generic_hint() -> None:
    assert forbidden_text("x", "Unauthorized") == (
        "x: Unauthorized (grant gitopsd's credentials this permission)"
    )
    assert "may not list configmaps" in str(cluster_error(403, {"message": NAMESPACED}, "x"))


def test_needed_permissions_follow_prune_and_adopt() -> None:
    scopes = [Scope("apps", "deployments", frozenset({"b"}))]
    verbs = {p.verb for p in needed(scopes, "a", prune=False, adopt=False) if p.namespace == "b"}
    assert verbs == {"get", "list", "create", "patch"}
    inventory = {p for p in needed(scopes, "a", prune=True, adopt=True) if p.namespace == "a"}
    verbs = ("list", "create", "patch", "delete")
    assert inventory == {Permission("", "configmaps", "a", v) for v in verbs}
