"""A cluster adapter that asks the target's Lease before every write: the fence of `ha:`.

With several replicas a target is written only by the one holding its Lease, and
only while that replica's heartbeat has enough time left (coordinator.fence). The
pass checks before its write phases; wrapping the adapter puts the same check in
front of each single write too (apply, prune, release, inventory save), so a
replica paused or cut off in the middle of a phase stops at its next write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gitopsd.adapters.base import ApplyResult, ClusterAdapter, KindInfo
from gitopsd.inventory import Inventory
from gitopsd.model import Manifest, ResourceKey
from gitopsd.readonly import _READS  # one list of what only reads: every other verb writes


class FencedAdapter:
    """Wraps a ClusterAdapter: reads and dry-runs go through, writes only past `fence`."""

    def __init__(self, inner: ClusterAdapter, fence: Callable[[], None]) -> None:
        self._inner = inner
        self._fence = fence  # raises NotOwnerError when this replica may not write

    def __getattr__(self, name: str) -> Any:
        if name not in _READS:
            raise AttributeError(f"{type(self).__name__} does not offer {name!r}")
        return getattr(self._inner, name)

    def apply(self, manifest: Manifest, *, dry_run: bool, force: bool) -> ApplyResult:
        if not dry_run:
            self._fence()
        return self._inner.apply(manifest, dry_run=dry_run, force=force)

    def delete(self, info: KindInfo, key: ResourceKey, uid: str = "") -> None:
        self._fence()
        self._inner.delete(info, key, uid)

    def release(self, info: KindInfo, key: ResourceKey) -> None:
        self._fence()
        self._inner.release(info, key)

    def save_inventory(self, target: str, inventory: Inventory, version: str) -> str:
        self._fence()
        return self._inner.save_inventory(target, inventory, version)
