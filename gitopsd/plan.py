"""Desired objects, live objects and the inventory in; the ordered writes of one pass out.

Pure. An object in sync and unchanged in Git gets no write; prune deletes only what
this target provably created and Git no longer declares.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from gitopsd.config import IgnoreRule
from gitopsd.diff import compare
from gitopsd.model import (
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    PRUNE_ANNOTATION,
    TARGET_LABEL,
    DesiredObject,
    DriftReport,
    LiveObject,
    Manifest,
    Plan,
    PlanStep,
    ResourceKey,
    StepKind,
)
from gitopsd.normalize import rule_matches, strip_ignored

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
_FIRST = frozenset({("", "Namespace"), ("apiextensions.k8s.io", "CustomResourceDefinition")})


def order_key(key: ResourceKey) -> tuple[int, int, str, str, str, str]:
    """Apply order: Namespaces and CRDs, other cluster-scoped kinds, then namespaced objects."""
    if (key.group, key.kind) in _FIRST:
        return (0, _KIND_RANK[key.kind], key.group, key.kind, key.namespace, key.name)
    tier = 1 if not key.namespace else 2
    rank = _KIND_RANK.get(key.kind, _LAST_RANK)
    return (tier, rank, key.group, key.kind, key.namespace, key.name)


def manifest_hash(manifest: Manifest) -> str:
    """A stable digest of a manifest, to tell whether Git changed it since the last apply."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


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
    """The minimal ordered writes; steps carry the manifest to apply (ignored fields removed).

    `last_applied` holds manifest_hash of each step's `desired.manifest` as last applied.
    An empty `desired` prunes nothing unless `allow_empty`.
    """
    writes: list[PlanStep] = []
    unchanged: list[ResourceKey] = []
    ignored: list[DriftReport] = []
    for obj in desired:
        step, hidden = _plan_object(obj, live.get(obj.key), rules, last_applied)
        if step is not None:
            writes.append(step)
        else:
            unchanged.append(obj.key)
            if hidden is not None:
                ignored.append(hidden)
    deletions: list[PlanStep] = []
    kept: list[ResourceKey] = []
    if prune:
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
    writes.sort(key=lambda step: order_key(step.key))
    return Plan(
        steps=(*writes, *deletions),
        unchanged=tuple(unchanged),
        ignored=tuple(ignored),
        kept=tuple(kept),
    )


def _plan_object(
    obj: DesiredObject,
    current: LiveObject | None,
    rules: Sequence[IgnoreRule],
    last_applied: Mapping[ResourceKey, str],
) -> tuple[PlanStep | None, DriftReport | None]:
    """The step for one declared object, or (None, drift that only ignored fields show)."""
    matching = [rule for rule in rules if rule_matches(rule, obj.key)]
    applied = obj
    if matching:
        applied = DesiredObject(obj.key, strip_ignored(obj.manifest, obj.key, matching), obj.origin)
    if current is None:
        missing = DriftReport(key=obj.key, missing=True)
        return PlanStep(StepKind.CREATE, obj.key, applied, missing, reason="missing"), None
    drift = compare(applied, current)
    if drift is not None:
        return PlanStep(StepKind.APPLY, obj.key, applied, drift, reason="drift"), None
    recorded = last_applied.get(obj.key)
    # No record (a new state directory, an adopted object) and in sync: nothing to write.
    if recorded is not None and recorded != manifest_hash(applied.manifest):
        return PlanStep(StepKind.APPLY, obj.key, applied, None, reason="changed in git"), None
    return None, compare(obj, current) if matching else None


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
