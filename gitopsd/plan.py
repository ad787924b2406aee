"""Desired objects, live objects and the inventory in; the ordered writes of one pass out.

Pure. An object in sync and unchanged in Git gets no write; prune deletes only what
this target provably created and Git no longer declares.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from gitopsd.diff import compare
from gitopsd.handoff import as_applied
from gitopsd.inventory import manifest_hash
from gitopsd.model import (
    DEFINITION_KINDS,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    PRUNE_ANNOTATION,
    TARGET_LABEL,
    DesiredObject,
    DriftReport,
    IgnoreRule,
    LiveObject,
    Plan,
    PlanStep,
    ResourceKey,
    StepKind,
)

_NOTHING_APPLIED: Mapping[ResourceKey, str] = MappingProxyType({})

# Within a tier, what others refer to goes first: a Deployment's pods should find their
# ServiceAccount, ConfigMaps and Secrets already there.
_KIND_RANK = {
    "Namespace": 0,
    "CustomResourceDefinition": 1,
    "ClusterRole": 2,
    "ClusterRoleBinding": 3,
    "ServiceAccount": 10,
    "Secret": 11,
    "ConfigMap": 12,
    "PersistentVolumeClaim": 13,
    "Role": 14,
    "RoleBinding": 15,
    "Service": 16,
}
_LAST_RANK = 100


class Tier(enum.IntEnum):
    """The stages of a pass, in apply order; deletions run them in reverse."""

    DEFINITIONS = 0  # Namespaces and CustomResourceDefinitions: what other objects need
    CLUSTER = 1  # other cluster-scoped objects
    NAMESPACED = 2


def tier_of(key: ResourceKey) -> Tier:
    """The stage an object is written in."""
    if (key.group, key.kind) in DEFINITION_KINDS:
        return Tier.DEFINITIONS
    return Tier.NAMESPACED if key.namespace else Tier.CLUSTER


def order_key(key: ResourceKey) -> tuple[int, int, str, str, str, str]:
    """Apply order: by tier, then within it what others refer to first, then by name."""
    rank = _KIND_RANK.get(key.kind, _LAST_RANK)
    return (tier_of(key), rank, key.group, key.kind, key.namespace, key.name)


def make_plan(
    desired: Sequence[DesiredObject],
    live: Mapping[ResourceKey, LiveObject],
    inventory: frozenset[ResourceKey],
    *,
    rules: Sequence[IgnoreRule],
    prune: bool,
    last_applied: Mapping[ResourceKey, str] = _NOTHING_APPLIED,
    target: str = "",
    allow_empty: bool = False,
) -> Plan:
    """The minimal ordered writes; steps carry the manifest to apply (see handoff.as_applied).

    `last_applied` holds manifest_hash of each object as last applied.
    An empty `desired` prunes nothing unless `allow_empty`.
    """
    writes: list[PlanStep] = []
    unchanged: list[ResourceKey] = []
    ignored: list[DriftReport] = []
    applied: list[DesiredObject] = []
    for obj in desired:
        current = live.get(obj.key)
        applied.append(as_applied(obj, current, rules))
        step = _step(applied[-1], current, last_applied)
        if step is not None:
            writes.append(step)
            continue
        unchanged.append(obj.key)
        # as_applied returns `obj` itself when no rule matches: nothing hidden then.
        hidden = compare(obj, current) if applied[-1] is not obj else None
        if hidden is not None:
            ignored.append(hidden)
    deletions, kept = _prunes(desired, live, inventory, prune, target, allow_empty)
    writes.sort(key=lambda step: order_key(step.key))
    return Plan(
        steps=(*writes, *deletions),
        unchanged=tuple(unchanged),
        ignored=tuple(ignored),
        kept=tuple(kept),
        desired=tuple(applied),
    )


def _prunes(
    desired: Sequence[DesiredObject],
    live: Mapping[ResourceKey, LiveObject],
    inventory: frozenset[ResourceKey],
    prune: bool,
    target: str,
    allow_empty: bool,
) -> tuple[list[PlanStep], list[ResourceKey]]:
    """Deletions of what the target owns and no longer declares, and what prune leaves alone."""
    deletions: list[PlanStep] = []
    kept: list[ResourceKey] = []
    if not prune:
        return deletions, kept
    owner = target or _target_of(desired)
    declared = frozenset(obj.key for obj in desired)
    for key in sorted(inventory - declared, key=order_key, reverse=True):
        current = live.get(key)
        if current is None:
            continue  # already gone: nothing to write
        if (not declared and not allow_empty) or not _prunable(current, owner):
            kept.append(key)
        else:
            deletions.append(PlanStep(StepKind.DELETE, key, None, reason="not declared"))
    return deletions, kept


def _step(
    applied: DesiredObject, current: LiveObject | None, last_applied: Mapping[ResourceKey, str]
) -> PlanStep | None:
    """The write one declared object needs, or None when it is in sync and unchanged in Git."""
    key = applied.key
    if current is None:
        return PlanStep(StepKind.CREATE, key, applied, DriftReport(key, missing=True), "missing")
    drift = compare(applied, current)
    if drift is not None:
        return PlanStep(StepKind.APPLY, key, applied, drift, reason="drift")
    recorded = last_applied.get(key)
    # No record (a new state directory, an adopted object) and in sync: nothing to write.
    if recorded is not None and recorded != manifest_hash(applied.manifest):
        return PlanStep(StepKind.APPLY, key, applied, None, reason="changed in git")
    return None


def _target_of(desired: Sequence[DesiredObject]) -> str:
    for obj in desired:
        labels = obj.manifest.get("metadata", {}).get("labels") or {}
        if labels.get(TARGET_LABEL):
            return str(labels[TARGET_LABEL])
    return ""


def _prunable(current: LiveObject, target: str) -> bool:
    """Only objects gitopsd labelled for this target, and not protected by annotation."""
    labels = current.labels
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE:
        return False
    owner = labels.get(TARGET_LABEL)
    if not owner or (target and owner != target):
        return False
    return current.annotations.get(PRUNE_ANNOTATION) != "disabled"
