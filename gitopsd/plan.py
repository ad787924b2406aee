"""Desired objects, live objects and the inventory in; the ordered writes of one pass out.

Pure. An object in sync and unchanged in Git gets no write; prune deletes only what
this target provably created and Git no longer declares.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

from gitopsd.diff import compare
from gitopsd.errors import OwnershipError
from gitopsd.handoff import as_applied, previous_managers
from gitopsd.inventory import manifest_hash
from gitopsd.model import (
    ADOPT_REASON,
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


@dataclass(frozen=True)
class Adoption:
    """How a target treats objects it did not create (the target's `adopt` settings)."""

    adopted: frozenset[ResourceKey] = frozenset()  # taken over before, from the inventory
    allowed: bool = True  # `adopt`: take over objects that exist already
    prune: bool = False  # `prune_adopted`: delete, rather than release, those Git drops


_ADOPTION = Adoption()

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
    adoption: Adoption = _ADOPTION,
) -> Plan:
    """The minimal ordered writes; steps carry the manifest to apply (see handoff.as_applied).

    `inventory` is every object the target may have written (Inventory.tracked);
    `last_applied` holds manifest_hash of each object as last applied. An object that
    exists but is in neither is adopted (OwnershipError when adoption is not allowed).
    An empty `desired` prunes nothing unless `allow_empty`.
    """
    writes: list[PlanStep] = []
    unchanged: list[ResourceKey] = []
    ignored: list[DriftReport] = []
    applied: list[DesiredObject] = []
    for obj in desired:
        current = live.get(obj.key)
        applied.append(as_applied(obj, current, rules))
        if current is not None and _adopting(obj.key, current, inventory, adoption, target):
            writes.append(_adoption(applied[-1], current))
            continue
        step = _step(applied[-1], current, last_applied)
        if step is not None:
            writes.append(step)
            continue
        unchanged.append(obj.key)
        # as_applied returns `obj` itself when no rule matches: nothing hidden then.
        hidden = compare(obj, current) if applied[-1] is not obj else None
        if hidden is not None:
            ignored.append(hidden)
    if not adoption.allowed:
        _refuse_adoptions(writes, target)
    deletions, kept = _prunes(desired, live, inventory, prune, target, allow_empty, adoption)
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
    adoption: Adoption,
) -> tuple[list[PlanStep], list[ResourceKey]]:
    """Deletions (releases, for adopted objects) of what the target owns and no longer
    declares, and what prune leaves alone."""
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
        elif key in adoption.adopted and not adoption.prune:
            deletions.append(PlanStep(StepKind.RELEASE, key, None, reason="not declared"))
        else:
            uid = str((current.manifest.get("metadata") or {}).get("uid") or "")
            deletions.append(PlanStep(StepKind.DELETE, key, None, reason="not declared", uid=uid))
    return deletions, kept


def _adopting(
    key: ResourceKey,
    current: LiveObject,
    tracked: frozenset[ResourceKey],
    adoption: Adoption,
    target: str,
) -> bool:
    """Whether declaring `key` takes over an object gitopsd did not create: it exists but
    the target never tracked it, or an earlier adoption did not get to label it."""
    return key not in tracked or (key in adoption.adopted and not _labelled(current, target))


def _adoption(applied: DesiredObject, current: LiveObject) -> PlanStep:
    """The write that takes `current` over, even when it already equals Git (the field
    ownership changes hands); its drift names the managers the object had."""
    drift = compare(applied, current) or DriftReport(applied.key, missing=False)
    drift = replace(drift, owners=previous_managers(current))
    return PlanStep(StepKind.APPLY, applied.key, applied, drift, reason=ADOPT_REASON)


def _refuse_adoptions(writes: Sequence[PlanStep], target: str) -> None:
    refused = sorted((s for s in writes if s.reason == ADOPT_REASON), key=lambda s: s.key)
    if not refused:
        return
    first = refused[0]
    managers = sorted({owner.manager for owner in first.drift.owners} if first.drift else ())
    more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
    raise OwnershipError(
        f"target {target}: {first.key}{more} exists and was not created by gitopsd "
        f"(managed by {', '.join(managers) or 'no recorded manager'}); `adopt: false` "
        "refuses to take it over: delete it, or set `adopt: true`"
    )


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
    return _labelled(current, target) and current.annotations.get(PRUNE_ANNOTATION) != "disabled"


def _labelled(current: LiveObject, target: str) -> bool:
    """Whether gitopsd's labels mark `current` as this target's (any target's if '')."""
    labels = current.labels
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE:
        return False
    owner = labels.get(TARGET_LABEL)
    return bool(owner) and (not target or owner == target)
