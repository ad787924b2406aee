"""A cluster adapter that only reads and dry-runs: what `gitopsd diff` compares through.

A preview is a dry-run pass, which writes nothing by itself; behind this adapter it
cannot, whatever the pass becomes: every write raises. It also lets a preview run with
credentials that may get, list and patch but not create. The API server authorises the
dry-run of an apply that would create an object as a create, so it refuses one from such
credentials; that object is then previewed as Git declares it, marked as not validated
by the server, instead of failing the whole preview.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from gitopsd.adapters.base import ApplyResult, ClusterAdapter, KindInfo
from gitopsd.errors import ForbiddenError, ReconcileError
from gitopsd.inventory import Inventory
from gitopsd.model import Manifest, ResourceKey, group_of
from gitopsd.passresult import one_line

# Passed through as they are. Anything else the adapter grows is refused until it is
# listed here (AttributeError), so a new write can never slip through unnoticed.
_READS = frozenset(
    {
        "kind_info",
        "kind_by_group",
        "capabilities",  # discovery, for Helm's --kube-version and --api-versions
        "list_owned",
        "list_all",
        "get",
        "crd_established",
        "load_inventories",
        "check_inventory_fits",
        "describe_inventory",
        "request_counts",
    }
)


class ReadOnlyAdapter:
    """Wraps a ClusterAdapter: reads and server-side dry-runs go through, writes raise."""

    def __init__(self, inner: ClusterAdapter, target: str) -> None:
        self._inner = inner
        self._target = target
        self._unvalidated: dict[ResourceKey, str] = {}
        self._lock = threading.Lock()  # dry-runs run on the apply stage's pool

    def __getattr__(self, name: str) -> Any:
        if name not in _READS:
            raise AttributeError(f"{type(self).__name__} does not offer {name!r}")
        return getattr(self._inner, name)

    def apply(self, manifest: Manifest, *, dry_run: bool, force: bool) -> ApplyResult:
        if not dry_run:
            raise self._refused("apply", _key(manifest))
        try:
            return self._inner.apply(manifest, dry_run=True, force=force)
        except ForbiddenError as refused:
            key = _key(manifest)
            if not self._absent(manifest, key):
                raise
            with self._lock:
                self._unvalidated[key] = (
                    "not validated by the API server, which refuses these credentials a "
                    f"dry-run of its creation: {one_line(refused)}"
                )
            return ApplyResult(manifest)

    def delete(self, info: KindInfo, key: ResourceKey, uid: str = "") -> None:
        raise self._refused("delete", key)

    def release(self, info: KindInfo, key: ResourceKey) -> None:
        raise self._refused("release", key)

    def save_inventory(self, target: str, inventory: Inventory, version: str) -> str:
        raise self._refused("save the inventory of", self._inner.describe_inventory(target))

    def unvalidated(self) -> Mapping[ResourceKey, str]:
        """Objects previewed without the server's dry-run, with why."""
        with self._lock:
            return dict(self._unvalidated)

    def _absent(self, manifest: Manifest, key: ResourceKey) -> bool:
        info = self._inner.kind_info(str(manifest["apiVersion"]), key.kind)
        return info is not None and self._inner.get(info, key) is None

    def _refused(self, verb: str, what: object) -> ReconcileError:
        return ReconcileError(
            f"target {self._target}: a preview writes nothing; refused to {verb} {what}"
        )


def _key(manifest: Manifest) -> ResourceKey:
    metadata = manifest.get("metadata") or {}
    return ResourceKey(
        group_of(str(manifest.get("apiVersion", ""))),
        str(manifest.get("kind", "")),
        str(metadata.get("namespace") or ""),
        str(metadata.get("name", "")),
    )
