"""What a target owns, what it is about to write, and who wins an object two targets want.

Pure. Prune works only from the inventory, never from labels alone: labels get
copied, the inventory does not. An object whose deletion failed or was skipped
stays in it, to be tried again; otherwise it would leak as an untracked orphan.
A pass saves its claim (the keys it declares, adoptions included) before its first
write, so a pass killed mid-way leaves nothing untracked, and two targets starting
at once cannot both take one object (see `find_clash`).
How it is stored is the adapter's business (adapters/inventory_store.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from gitopsd.errors import InventoryError
from gitopsd.model import Action, ChangeSet, DesiredObject, Manifest, ResourceKey

_NOT_REACHED = frozenset({Action.FAILED, Action.SKIPPED})
_MADE = frozenset({Action.CREATED, Action.RECREATED})
# Sorts after every stored claim: a claim not yet stored is the latest there can be.
_NOT_STORED = (1, 0)


@dataclass(frozen=True)
class Inventory:
    """What a target owns, and a hash of the manifest last applied for each object."""

    keys: frozenset[ResourceKey] = frozenset()
    applied_hashes: Mapping[ResourceKey, str] = field(default_factory=dict)
    revision: str = ""
    # What the target declared at its last pass, plus what a pass in progress is about
    # to write (stored before its first write). A claim not in `keys` is pending.
    claims: frozenset[ResourceKey] = frozenset()
    # Objects that existed before the target took them over: released, not pruned.
    adopted: frozenset[ResourceKey] = frozenset()
    # When a pending claim was stored (a resourceVersion), once a later write of the
    # inventory moved on; a pending claim missing here was stored by its latest write.
    claimed_at: Mapping[ResourceKey, int] = field(default_factory=dict)

    @property
    def pending(self) -> frozenset[ResourceKey]:
        """Claims not yet owned: a pass wrote them, or was about to, when it ended."""
        return self.claims - self.keys

    @property
    def tracked(self) -> frozenset[ResourceKey]:
        """Everything the target may have written, so everything it may have to prune."""
        return self.keys | self.claims


@dataclass(frozen=True)
class StoredInventory:
    """An inventory as read, with the version (resourceVersion) it was stored at."""

    inventory: Inventory = field(default_factory=Inventory)
    version: str = ""  # "" when the target has none stored yet

    def claimed_at(self, key: ResourceKey) -> tuple[int, int]:
        """When `key` was claimed, for ordering claims: (0, resourceVersion) once stored."""
        if key not in self.inventory.claims:
            return _NOT_STORED
        pinned = self.inventory.claimed_at.get(key)
        return (0, pinned if pinned is not None else version_number(self.version))


def version_number(version: str) -> int:
    """A resourceVersion as a number. Kubernetes calls it opaque, but etcd, the only
    storage the API server has, gives every write the next number of one sequence."""
    try:
        return int(version)
    except ValueError as error:
        raise InventoryError(
            f"resourceVersion {version!r} is not a number; the order of claims between "
            "targets relies on etcd's numbering"
        ) from error


@dataclass(frozen=True)
class Clash:
    """Another target that holds objects this target declares: it owns or claimed them first."""

    target: str
    other: str
    keys: tuple[ResourceKey, ...]
    owned: bool

    def message(self) -> str:
        more = f" (and {len(self.keys) - 1} more)" if len(self.keys) > 1 else ""
        why = "it owns it" if self.owned else "it claimed it first, in a pass that has not finished"
        return (
            f"{self.keys[0]}{more} is declared by both target {self.target!r} and target "
            f"{self.other!r}; {self.other!r} wins: {why}"
        )


def find_clash(
    target: str,
    declared: Iterable[ResourceKey],
    mine: StoredInventory,
    others: Mapping[str, StoredInventory],
) -> Clash | None:
    """The first other target that wins an object of `declared`, or None if none does.

    An owned object always wins; between two pending claims the one stored first wins
    (the lower resourceVersion), then the lower target name. Every target reaches the
    same verdict from any snapshot that holds both claims, and a snapshot taken after a
    target stored its claim holds every claim stored before it: of two targets that
    store, then read, exactly one goes on.
    """
    wanted = sorted(frozenset(declared))
    for other in sorted(others):
        if other == target:
            continue
        theirs = others[other]
        owned = tuple(key for key in wanted if key in theirs.inventory.keys)
        if owned:
            return Clash(target, other, owned, owned=True)
        first = tuple(
            key
            for key in wanted
            if key in theirs.inventory.pending
            and key not in mine.inventory.keys
            and (theirs.claimed_at(key), other) < (mine.claimed_at(key), target)
        )
        if first:
            return Clash(target, other, first, owned=False)
    return None


def contested(
    target: str, declared: Iterable[ResourceKey], others: Mapping[str, StoredInventory]
) -> frozenset[ResourceKey]:
    """The objects of `declared` that another target owns or claims."""
    held: set[ResourceKey] = set()
    for other, theirs in others.items():
        if other != target:
            held |= theirs.inventory.tracked
    return frozenset(declared) & held


def claim(
    inventory: Inventory, declared: Iterable[ResourceKey], adoptions: Iterable[ResourceKey]
) -> Inventory:
    """`inventory` with the claims a pass stores before writing: what it declares, and
    which of those it adopts. `inventory` itself when nothing new is claimed (no write)."""
    claims = inventory.claims | frozenset(declared)
    adopted = inventory.adopted | frozenset(adoptions)
    if (claims, adopted) == (inventory.claims, inventory.adopted):
        return inventory
    return replace(inventory, claims=claims, adopted=adopted)


def withdrawn(inventory: Inventory, keys: Iterable[ResourceKey]) -> Inventory:
    """`inventory` without its pending claims on `keys`: a target that lost them must
    not block the winner. `inventory` itself when it has none of them pending."""
    dropped = inventory.pending & frozenset(keys)
    if not dropped:
        return inventory
    return replace(inventory, claims=inventory.claims - dropped)


def pinned(stored: StoredInventory, new: Inventory) -> Inventory:
    """`new`, about to overwrite `stored`, with the time of each claim pending in both
    kept: the overwrite must not make an old claim look new."""
    kept = stored.inventory.pending
    return replace(
        new, claimed_at={key: stored.claimed_at(key)[1] for key in sorted(new.pending & kept)}
    )


def manifest_hash(manifest: Manifest) -> str:
    """A stable digest of a manifest, to tell whether Git changed it since the last apply."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def next_inventory(
    previous: Inventory, desired: Sequence[DesiredObject], changes: ChangeSet, revision: str
) -> Inventory:
    """What the target owns after a pass that applied `desired` (as applied) with `changes`.

    Deletions that failed or were skipped stay, claims pending from a killed pass
    included; an object the pass did not reach keeps the hash it had; an object gitopsd
    created is no longer adopted. `previous` itself when only the revision would change.
    """
    unreached = {e.key for e in changes.entries if e.action in _NOT_REACHED}
    made = {e.key for e in changes.entries if e.action in _MADE}
    declared = frozenset(obj.key for obj in desired)
    keys = declared | (previous.tracked & unreached)
    adopted = (previous.adopted - made) & keys
    hashes = {
        obj.key: previous.applied_hashes.get(obj.key, "")
        if obj.key in unreached
        else manifest_hash(obj.manifest)
        for obj in desired
    }
    hashes = {key: digest for key, digest in hashes.items() if digest}
    unchanged = (previous.keys, dict(previous.applied_hashes), previous.claims, previous.adopted)
    if (keys, hashes, declared, adopted) == unchanged:
        return previous  # the revision alone is not worth a write
    return Inventory(keys, hashes, revision, declared, adopted)


def holds(inventory: Inventory, desired: Sequence[DesiredObject]) -> bool:
    """Whether `inventory` records exactly `desired` as applied, whatever revision it names:
    a commit that changes nothing of a target leaves the inventory's revision behind."""
    if inventory.keys != frozenset(obj.key for obj in desired) or inventory.pending:
        return False
    return all(
        inventory.applied_hashes.get(obj.key) == manifest_hash(obj.manifest) for obj in desired
    )


def upper_bound(previous: Inventory, declared: Iterable[ResourceKey]) -> Inventory:
    """The largest inventory a pass declaring `declared` can leave, to check its size first."""
    keys = previous.tracked | frozenset(declared)
    return Inventory(
        keys, dict.fromkeys(keys, "0" * 64), "0" * 64, keys, keys, dict.fromkeys(keys, 10**19)
    )
