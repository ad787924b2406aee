"""Read a target's live state through the cluster's watches; remember its own writes.

`Watched` wraps the ClusterAdapter a pass uses: reads of owned objects and inventories
come from the watch caches once they are synced and show gitopsd's own last writes
(else it lists as before), and every write is recorded so the watch can tell its echo
from drift. The hub in watching.py decides what an event means.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gitopsd.adapters.base import ApplyResult, ClusterAdapter, KindInfo
from gitopsd.adapters.inventory_store import inventory_name
from gitopsd.adapters.watchcache import ClusterWatches, KindWatch, WatchEvent, key_of, version_of
from gitopsd.config import ClusterSettings, TargetSettings
from gitopsd.inventory import StoredInventory
from gitopsd.model import (
    INVENTORY_LABEL,
    TARGET_LABEL,
    LiveObject,
    Manifest,
    ResourceKey,
    group_of,
)
from gitopsd.watchlogic import OwnWrites

# How long a pass waits for the watch to show a write it just made before it lists instead.
CATCH_UP_SECONDS = 1.0

WatchesFactory = Callable[[ClusterSettings, Callable[[WatchEvent], None]], ClusterWatches]
_Inventories = tuple[StoredInventory, Mapping[str, StoredInventory]]


class WatchedCluster:
    """One cluster's watches, the writes gitopsd made there that they have not echoed, and
    the inventories its targets last read."""

    def __init__(
        self,
        settings: ClusterSettings,
        sink: Callable[[WatchEvent], None],
        factory: WatchesFactory,
    ) -> None:
        self.watches = factory(settings, sink)
        self.own = OwnWrites()
        self.inventories = SharedInventories()


class SharedInventories:
    """Every target's decoded inventory in a namespace, as one pass read them, for the
    passes of the other targets there while the ConfigMaps keep those versions.

    One copy per namespace: each target's pass reads every inventory (ownership), and a
    copy per target made the memory grow with the square of the number of targets.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read: dict[str, tuple[frozenset[tuple[str, str]], dict[str, StoredInventory]]] = {}

    def get(
        self, namespace: str, versions: frozenset[tuple[str, str]], target: str
    ) -> _Inventories | None:
        """`target`'s inventory and the others', if they were read at exactly `versions`."""
        with self._lock:
            found = self._read.get(namespace)
        if found is None or found[0] != versions:
            return None
        by_owner = found[1]
        others = {owner: stored for owner, stored in by_owner.items() if owner != target}
        return by_owner.get(target, StoredInventory()), others

    def put(
        self,
        namespace: str,
        versions: frozenset[tuple[str, str]],
        target: str,
        loaded: _Inventories,
    ) -> None:
        own, others = loaded
        by_owner = {**others, **({target: own} if own.version else {})}
        with self._lock:
            self._read[namespace] = (versions, by_owner)


def owner_of(manifest: Manifest | None) -> str:
    """The target an object is labelled for; '' when none."""
    labels = ((manifest or {}).get("metadata") or {}).get("labels") or {}
    return str(labels.get(TARGET_LABEL, ""))


class Watched:
    """A ClusterAdapter for one target that reads from the watches when they are synced and
    records its own writes, so the watches can tell them from drift."""

    def __init__(
        self,
        inner: ClusterAdapter,
        cluster: WatchedCluster,
        target: TargetSettings,
        note: Callable[[str, tuple[str, str], bool], None],
    ) -> None:
        self._inner, self._cluster, self._target, self._note = inner, cluster, target, note

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def list_owned(
        self, info: KindInfo, target: str, *args: Any, **kwargs: Any
    ) -> list[LiveObject]:
        watch = self._fresh(info)
        if watch is None:
            return self._inner.list_owned(info, target, *args, **kwargs)
        return [
            LiveObject(key_of(obj, info.group), obj)
            for obj in watch.objects()
            if owner_of(obj) == target
        ]

    def load_inventories(
        self, target: str
    ) -> tuple[StoredInventory, Mapping[str, StoredInventory]]:
        """As the inner adapter read them, again without a request while the watched
        inventory ConfigMaps keep the versions they had then."""
        info = self._inner.kind_info("v1", "ConfigMap")
        watch = self._fresh(info) if info is not None else None
        if watch is None:
            return self._inner.load_inventories(target)
        namespace = self._target.inventory_namespace
        before = _inventory_versions(watch.objects(), namespace)
        shared = self._cluster.inventories.get(namespace, before, target)
        if shared is not None:
            return shared
        loaded = self._inner.load_inventories(target)
        after = _inventory_versions(watch.objects(), namespace)
        if after == before and _matches(loaded, target, after):
            self._cluster.inventories.put(namespace, after, target, loaded)
        return loaded

    def apply(self, manifest: Manifest, *, dry_run: bool, force: bool) -> ApplyResult:
        result = self._inner.apply(manifest, dry_run=dry_run, force=force)
        if not dry_run:
            key = key_of(result.manifest, group_of(str(manifest["apiVersion"])))
            self._cluster.own.wrote(key, version_of(result.manifest))
        return result

    def delete(self, info: KindInfo, key: ResourceKey, uid: str = "") -> None:
        self._cluster.own.deleting(key)
        self._inner.delete(info, key, uid)

    def release(self, info: KindInfo, key: ResourceKey) -> None:
        self._cluster.own.deleting(key)  # without our labels it leaves the watch: DELETED
        self._inner.release(info, key)

    def save_inventory(self, target: str, inventory: Any, version: str) -> str:
        saved = self._inner.save_inventory(target, inventory, version)
        key = ResourceKey("", "ConfigMap", self._target.inventory_namespace, inventory_name(target))
        self._cluster.own.wrote(key, int(saved) if saved.isdigit() else 0)
        return saved

    def _fresh(self, info: KindInfo) -> KindWatch | None:
        """The kind's watch when its cache can answer now (synced, our writes seen)."""
        pair = (info.group, info.kind)
        watch = self._cluster.watches.watch(info)
        own = self._cluster.own
        fresh = watch.wait_fresh(
            lambda w: own.caught_up(pair, w.seen, w.held_unlocked()), CATCH_UP_SECONDS
        )
        self._note(self._target.name, pair, fresh)
        return watch if fresh else None


def _inventory_versions(objects: Iterable[Manifest], namespace: str) -> frozenset[tuple[str, str]]:
    """(name, resourceVersion) of every labelled inventory ConfigMap in `namespace`."""
    found = set()
    for obj in objects:
        metadata = obj.get("metadata") or {}
        if metadata.get("namespace") == namespace and INVENTORY_LABEL in (
            metadata.get("labels") or {}
        ):
            found.add((str(metadata.get("name")), str(metadata.get("resourceVersion"))))
    return frozenset(found)


def _matches(loaded: _Inventories, target: str, versions: frozenset[tuple[str, str]]) -> bool:
    """Whether what a list returned is what the cache holds (no write came between)."""
    cached = dict(versions)
    own, others = loaded
    if own.version != cached.get(inventory_name(target), ""):
        return False
    return all(s.version == cached.get(inventory_name(o), "") for o, s in others.items())
