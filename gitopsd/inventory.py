"""What a target owns, and how one pass changes it.

Pure. Prune works only from the inventory, never from labels alone: labels get
copied, the inventory does not. An object whose deletion failed or was skipped
stays in it, to be tried again; otherwise it would leak as an untracked orphan.
How it is stored is the adapter's business (adapters/inventory_store.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gitopsd.errors import OwnershipError
from gitopsd.model import Action, ChangeSet, DesiredObject, Manifest, ResourceKey

_NOT_REACHED = frozenset({Action.FAILED, Action.SKIPPED})


@dataclass(frozen=True)
class Inventory:
    """What a target owns, and a hash of the manifest last applied for each object."""

    keys: frozenset[ResourceKey] = frozenset()
    applied_hashes: Mapping[ResourceKey, str] = field(default_factory=dict)
    revision: str = ""
    # What the target declared at its last pass, even a refused one: lets another
    # target see a clash on an object neither owns yet.
    claims: frozenset[ResourceKey] = frozenset()


def manifest_hash(manifest: Manifest) -> str:
    """A stable digest of a manifest, to tell whether Git changed it since the last apply."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def next_inventory(
    previous: Inventory, desired: Sequence[DesiredObject], changes: ChangeSet, revision: str
) -> Inventory:
    """What the target owns after a pass that applied `desired` (as applied) with `changes`.

    Deletions that failed or were skipped stay; an object the pass did not reach keeps
    the hash it had. `previous` itself when only the revision would change.
    """
    unreached = {e.key for e in changes.entries if e.action in _NOT_REACHED}
    declared = frozenset(obj.key for obj in desired)
    keys = declared | (previous.keys & unreached)
    hashes = {
        obj.key: previous.applied_hashes.get(obj.key, "")
        if obj.key in unreached
        else manifest_hash(obj.manifest)
        for obj in desired
    }
    hashes = {key: digest for key, digest in hashes.items() if digest}
    if (keys, hashes, declared) == (previous.keys, dict(previous.applied_hashes), previous.claims):
        return previous  # the revision alone is not worth a write
    return Inventory(keys, hashes, revision, declared)


def upper_bound(previous: Inventory, declared: Iterable[ResourceKey]) -> Inventory:
    """The largest inventory a pass declaring `declared` can leave, to check its size first."""
    keys = previous.keys | frozenset(declared)
    return Inventory(keys, dict.fromkeys(keys, "0" * 64), "0" * 64, keys)


def check_ownership(
    target: str,
    keys: Iterable[ResourceKey],
    other_inventories: Mapping[str, frozenset[ResourceKey]],
) -> None:
    """Raise OwnershipError, naming both targets, if another target owns one of `keys`."""
    wanted = frozenset(keys)
    for other in sorted(other_inventories):
        if other == target:
            continue
        shared = sorted(wanted & other_inventories[other])
        if shared:
            more = f" (and {len(shared) - 1} more)" if len(shared) > 1 else ""
            raise OwnershipError(
                f"{shared[0]}{more} is declared by both target {target!r} and target {other!r}"
            )
