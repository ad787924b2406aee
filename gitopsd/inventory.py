"""What a target owns, as a set of ResourceKeys, and its ConfigMap form.

Pure. Prune works only from this set, never from labels alone: labels get copied,
the inventory does not. Keys whose deletion failed stay in it, to be tried again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gitopsd.errors import InventoryError, OwnershipError
from gitopsd.model import ResourceKey

FORMAT_VERSION = "1"
# No part of a key (group, kind, namespace, name) may contain "|" or a line break.
_SEPARATOR = "|"


def encode(keys: Iterable[ResourceKey]) -> dict[str, str]:
    """ConfigMap data: a version and one sorted `group|kind|namespace|name` line per object."""
    lines = [_SEPARATOR.join((k.group, k.kind, k.namespace, k.name)) for k in sorted(set(keys))]
    return {"version": FORMAT_VERSION, "entries": "\n".join(lines)}


def decode(data: Mapping[str, str]) -> frozenset[ResourceKey]:
    """The keys of ConfigMap data from `encode`; empty data is an empty inventory."""
    if not data:
        return frozenset()
    version = data.get("version")
    if version != FORMAT_VERSION:
        raise InventoryError(f"inventory format version {version!r} is not {FORMAT_VERSION!r}")
    keys = set()
    for number, line in enumerate(data.get("entries", "").splitlines(), start=1):
        parts = line.split(_SEPARATOR)
        if len(parts) != 4 or not parts[1] or not parts[3]:
            raise InventoryError(f"inventory entry {number} is malformed: {line!r}")
        keys.add(ResourceKey(*parts))
    return frozenset(keys)


def stale(
    previous: frozenset[ResourceKey], desired: Iterable[ResourceKey]
) -> frozenset[ResourceKey]:
    """Objects the target owned that Git no longer declares."""
    return previous - frozenset(desired)


def next_inventory(
    previous: frozenset[ResourceKey],
    desired_keys: Iterable[ResourceKey],
    failed_deletions: Iterable[ResourceKey],
) -> frozenset[ResourceKey]:
    """What the target owns after a pass: the declared objects plus those it failed to delete."""
    return frozenset(desired_keys) | frozenset(failed_deletions)


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
