"""RBAC in the user's terms: the rule a forbidden answer asks for, and the rules a target needs.

Pure, so both are table-tested without a server. A 403 from the API server names the user,
verb, resource, group and namespace in one English sentence; turning it into the exact
rule to add spares an operator on a namespace-scoped service account a trip through the
RBAC documentation for every missing verb.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# What the RBAC authorizer says, e.g. 'configmaps is forbidden: User "system:serviceaccount:a:b"
# cannot list resource "configmaps" in API group "" in the namespace "c"'.
_FORBIDDEN = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>[\w-]+) resource "(?P<resource>[^"]+)" '
    r'in API group "(?P<group>[^"]*)"(?: in the namespace "(?P<namespace>[^"]*)")?'
)

# What every namespaced kind a target declares needs: read it (list the owned objects, get
# one that lacks our labels) and write it (server-side apply is a patch, and a create when
# the object is new, even as a dry-run).
DECLARED_VERBS = ("get", "list", "create", "patch")
PRUNE_VERB = "delete"
RELEASE_VERB = "update"  # letting go of an adopted object is a PUT of the object as read
# The inventory ConfigMaps: one list reads them all, a create starts one, a patch updates it,
# and a large inventory's shards no longer needed are deleted.
INVENTORY_VERBS = ("list", "create", "patch", "delete")


@dataclass(frozen=True, order=True)
class Permission:
    """One verb on one resource, in one namespace ("" for the cluster scope)."""

    group: str
    resource: str
    namespace: str
    verb: str

    def describe(self) -> str:
        where = f"in namespace {self.namespace}" if self.namespace else "at the cluster scope"
        return f"{self.verb} {self.qualified_resource} {where}"

    @property
    def qualified_resource(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource

    def rule(self) -> str:
        """The RBAC rule that grants this permission, in YAML flow style."""
        where = f"a Role in namespace {self.namespace}" if self.namespace else "a ClusterRole"
        return (
            f'{where}: {{apiGroups: ["{self.group}"], resources: ["{self.resource}"], '
            f'verbs: ["{self.verb}"]}}'
        )


def forbidden_permission(message: str) -> tuple[str, Permission] | None:
    """The user and the permission a 403 answer's message says are missing, if it says."""
    match = _FORBIDDEN.search(message)
    if match is None:
        return None
    permission = Permission(
        match["group"], match["resource"], match["namespace"] or "", match["verb"]
    )
    return match["user"], permission


def forbidden_text(what: str, message: str) -> str:
    """One line for a 403: who may not do what, where, and the rule to add."""
    found = forbidden_permission(message)
    if found is None:
        return f"{what}: {message} (grant gitopsd's credentials this permission)"
    user, permission = found
    return (
        f"{what}: forbidden: {user} may not {permission.describe()}; "
        f"add this rule to {permission.rule()} bound to {user}"
    )


@dataclass(frozen=True)
class Scope:
    """A resource a target touches, and the namespaces it touches it in ("" if cluster-wide)."""

    group: str
    resource: str
    namespaces: frozenset[str]


def needed(
    scopes: Iterable[Scope], inventory_namespace: str, *, prune: bool, adopt: bool
) -> list[Permission]:
    """Every permission a pass over these declared resources needs, sorted."""
    verbs = [*DECLARED_VERBS, *([PRUNE_VERB] if prune else []), *([RELEASE_VERB] if adopt else [])]
    found = {Permission("", "configmaps", inventory_namespace, verb) for verb in INVENTORY_VERBS}
    for scope in scopes:
        for namespace in scope.namespaces:
            found.update(Permission(scope.group, scope.resource, namespace, verb) for verb in verbs)
    return sorted(found)
