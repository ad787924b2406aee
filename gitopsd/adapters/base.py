"""The interface the core calls to reach a target system.

Small on purpose: another target (a different orchestrator, a fake for
experiments) implements these methods and nothing in the core changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gitopsd.inventory import Inventory, StoredInventory
from gitopsd.model import LiveObject, Manifest, ResourceKey


@dataclass(frozen=True)
class KindInfo:
    """What discovery says about one kind."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


@dataclass(frozen=True)
class ApplyResult:
    """The object as the server returned it."""

    manifest: Manifest


class ClusterAdapter(Protocol):
    """Reads and writes one cluster on behalf of the reconcile pass."""

    def kind_info(self, api_version: str, kind: str) -> KindInfo | None:
        """Discovery for one kind; refreshes once when the kind is unknown; None if absent."""

    def kind_by_group(self, group: str, kind: str) -> KindInfo | None:
        """Discovery by group and kind, at the server's preferred version."""

    def list_owned(
        self, info: KindInfo, target: str, namespaces: Iterable[str] | None = None
    ) -> list[LiveObject]:
        """Every object of one kind labelled as owned by `target`: in `namespaces` (when given
        and the kind is namespaced) at least, in the whole cluster when that is cheaper."""

    def list_all(self, info: KindInfo, namespaces: Iterable[str]) -> list[LiveObject]:
        """Every object of one kind in the namespaces (all of them if cluster-scoped)."""

    def get(self, info: KindInfo, key: ResourceKey) -> LiveObject | None:
        """One object, or None when it does not exist."""

    def apply(self, manifest: Manifest, *, dry_run: bool, force: bool) -> ApplyResult:
        """Server-side apply as gitopsd; `force` takes fields from other managers."""

    def delete(self, info: KindInfo, key: ResourceKey, uid: str = "") -> None:
        """Delete one object; an object already gone is success. With `uid`, only that
        object: one recreated under the same name since it was read is left alone."""

    def release(self, info: KindInfo, key: ResourceKey) -> None:
        """Remove gitopsd's labels and field ownership from one object, keeping it."""

    def crd_established(self, crd_name: str) -> bool:
        """Whether a CustomResourceDefinition is Established; if so, discovery is refreshed."""

    def load_inventories(
        self, target: str
    ) -> tuple[StoredInventory, Mapping[str, StoredInventory]]:
        """`target`'s inventory and every other target's, in one consistent read."""

    def check_inventory_fits(self, target: str, inventory: Inventory) -> None:
        """Raise InventoryTooLarge if `inventory` could not be stored (asked before writing)."""

    def save_inventory(self, target: str, inventory: Inventory, version: str) -> str:
        """Store the inventory for `target` over `version` (as read; "" for none) and return
        the new version; InventoryError (retryable) when another writer came between,
        InventoryTooLarge when it cannot be stored."""

    def describe_inventory(self, target: str) -> str:
        """Where `target`'s inventory is stored, for messages: `ConfigMap ns/name`."""

    def request_counts(self) -> Mapping[str, int]:
        """Requests made so far, by verb, for reports and benchmarks."""
