"""Value types that flow between the pipeline stages.

Everything here is immutable plain data: the pure stages take these and
return these, so they can be tested without a cluster or a remote.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Manifest = dict[str, Any]

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "gitopsd"
TARGET_LABEL = "gitopsd.io/target"
PRUNE_ANNOTATION = "gitopsd.io/prune"
# On an object decrypted from SOPS: its values are shown only as stand-ins, like Secret data.
DECRYPTED_ANNOTATION = "gitopsd.io/decrypted"
FIELD_MANAGER = "gitopsd"
# Where targets keep their inventories: ConfigMaps of this name prefix and label. No
# target may declare such an object (it could rewrite another target's inventory).
INVENTORY_LABEL = "gitopsd.io/inventory-of"
INVENTORY_PREFIX = "gitopsd-inventory-"

# What a manifest file is called, for the tree reader and for render.
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
# kustomize's third accepted name has no suffix; read only at the top of a target's path,
# where `render: auto` looks for it (plain YAML still skips it: it is not a manifest).
KUSTOMIZATION_NAME = "Kustomization"


def is_read(relative: str) -> bool:
    """Whether a file at `relative` (to the target's path) is read from the tree."""
    return relative.lower().endswith(MANIFEST_SUFFIXES) or relative == KUSTOMIZATION_NAME


NAMESPACE_KIND = ("", "Namespace")
CRD_KIND = ("apiextensions.k8s.io", "CustomResourceDefinition")
# (group, kind) of what other objects need before they can exist: written first.
DEFINITION_KINDS = frozenset({NAMESPACE_KIND, CRD_KIND})
# Cluster-scoped kinds render can place before discovery has answered (a fresh cluster).
CLUSTER_SCOPED_KINDS = DEFINITION_KINDS | {
    ("", "Node"),
    ("", "PersistentVolume"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("storage.k8s.io", "StorageClass"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("networking.k8s.io", "IngressClass"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("apiregistration.k8s.io", "APIService"),
}


@dataclass(frozen=True, order=True)
class ResourceKey:
    """Identity of one object: group, kind, namespace ('' if cluster-scoped) and name."""

    group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{kind} {where}{self.name}"

    def as_dict(self) -> dict[str, str]:
        """The key as the stable log fields `kind`, `namespace`, `name` (plus `group`)."""
        return {
            "group": self.group,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
        }


def group_of(api_version: str) -> str:
    """The API group of an apiVersion: '' for the core group ('v1')."""
    return api_version.rpartition("/")[0]


@dataclass(frozen=True)
class SourceFile:
    """One declared file, by its path relative to the target's path."""

    path: str
    content: bytes


@dataclass(frozen=True)
class Revision:
    """An exact commit of the declared state, and where it came from."""

    commit: str
    ref: str = ""
    message: str = ""
    author: str = ""  # the commit author's name, for the status page and notifications
    chart: str = ""  # a Helm target's chart from a chart repository: "web 0.2.0"

    @property
    def short(self) -> str:
        """The first 12 hex digits of the commit, for logs."""
        return self.commit[:12]


@dataclass(frozen=True)
class DesiredObject:
    """An object as Git declares it, with gitopsd's labels and namespace default applied."""

    key: ResourceKey
    manifest: Manifest
    origin: str  # "path/in/tree.yaml#2": the file and the document's index

    @property
    def api_version(self) -> str:
        return str(self.manifest["apiVersion"])


@dataclass(frozen=True)
class LiveObject:
    """An object as the cluster holds it, as a raw dict straight from the API server."""

    key: ResourceKey
    manifest: Manifest

    @property
    def labels(self) -> Mapping[str, str]:
        return self.manifest.get("metadata", {}).get("labels") or {}

    @property
    def annotations(self) -> Mapping[str, str]:
        return self.manifest.get("metadata", {}).get("annotations") or {}


@dataclass(frozen=True)
class FieldChange:
    """One field that differs: its path, what Git declares and what is live.

    Values of Secret data are already redacted here (see normalize.redact_secret).
    """

    path: str
    desired: Any
    live: Any


@dataclass(frozen=True)
class FieldOwner:
    """Who last wrote a field, from managedFields."""

    manager: str
    operation: str
    time: str


@dataclass(frozen=True)
class DriftReport:
    """How one declared object differs from the live one."""

    key: ResourceKey
    missing: bool
    changes: tuple[FieldChange, ...] = ()
    owners: tuple[FieldOwner, ...] = ()

    @property
    def field_paths(self) -> tuple[str, ...]:
        return tuple(change.path for change in self.changes)


@dataclass(frozen=True)
class IgnoreRule:
    """Fields (JSON pointers) gitopsd neither declares nor compares on matching objects."""

    kind: str
    pointers: tuple[str, ...]
    group: str | None = None  # None: any group
    name: str | None = None  # None: any name
    namespace: str | None = None  # None: any namespace


class StepKind(enum.Enum):
    """What the plan does with one object."""

    CREATE = "create"
    APPLY = "apply"
    RECREATE = "recreate"
    DELETE = "delete"
    RELEASE = "release"  # an adopted object Git no longer declares: gitopsd lets go, keeps it

    @property
    def removes(self) -> bool:
        """Whether the step ends gitopsd's hold on an object Git no longer declares."""
        return self in (StepKind.DELETE, StepKind.RELEASE)


# The reason of a step that takes over an object gitopsd did not create.
ADOPT_REASON = "adopt"


@dataclass(frozen=True)
class PlanStep:
    """One write of the plan; `desired` is None for deletions and releases."""

    kind: StepKind
    key: ResourceKey
    desired: DesiredObject | None
    drift: DriftReport | None = None
    reason: str = ""  # "drift", "changed in git", "missing", "adopt", "not declared"
    # For a deletion: the UID of the object the plan saw, so a namesake created since
    # (by someone else, between the read and the write) is not deleted in its place.
    uid: str = ""


@dataclass(frozen=True)
class Plan:
    """The minimal, ordered set of writes that brings the cluster to Git's state."""

    steps: tuple[PlanStep, ...] = ()
    unchanged: tuple[ResourceKey, ...] = ()
    # Drift only in fields ignore rules hand to other controllers: shown, never corrected.
    ignored: tuple[DriftReport, ...] = ()
    # Undeclared objects prune leaves alone: not labelled as this target's, or annotated
    # `gitopsd.io/prune: disabled`, or every deletion when the render is empty.
    kept: tuple[ResourceKey, ...] = ()
    # Every declared object as gitopsd applies it: ignored fields out, handed-over ones in.
    desired: tuple[DesiredObject, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.steps

    @property
    def adoptions(self) -> frozenset[ResourceKey]:
        """The objects this plan takes over from whoever made them."""
        return frozenset(step.key for step in self.steps if step.reason == ADOPT_REASON)


class Action(enum.Enum):
    """What happened to one object in a pass, as journaled."""

    CREATED = "created"
    CORRECTED = "corrected"
    UPDATED = "updated"
    RECREATED = "recreated"
    PRUNED = "pruned"
    ADOPTED = "adopted"  # existed before, made by another manager; now gitopsd's
    RELEASED = "released"  # adopted, then dropped from Git: gitopsd's labels removed, kept
    UNCHANGED = "unchanged"  # a write the server's dry-run showed would change nothing
    KEPT = "kept"  # not declared, but prune left it alone (older journal rows: "ignored")
    SKIPPED = "skipped"
    FAILED = "failed"

    @property
    def wrote(self) -> bool:
        """Whether the cluster was changed: a create, an apply, a recreate, a prune, an
        adoption or a release."""
        return self in _WROTE


_WROTE = frozenset(
    {
        Action.CREATED,
        Action.CORRECTED,
        Action.UPDATED,
        Action.RECREATED,
        Action.PRUNED,
        Action.ADOPTED,
        Action.RELEASED,
    }
)


@dataclass(frozen=True)
class ChangeSetEntry:
    """The outcome for one object."""

    key: ResourceKey
    action: Action
    drift: DriftReport | None = None
    error: str = ""
    lost_managers: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChangeSet:
    """Every outcome of one pass, in the order they happened."""

    entries: tuple[ChangeSetEntry, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> tuple[ChangeSetEntry, ...]:
        return tuple(e for e in self.entries if e.action is Action.FAILED)

    @property
    def writes(self) -> int:
        return sum(1 for e in self.entries if e.action.wrote)
