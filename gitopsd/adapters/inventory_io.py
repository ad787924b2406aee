"""Loading and saving inventories through ConfigMap requests, in the order that keeps a
save crash-safe (see adapters/inventory_store.py for the layout and why)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Protocol
from urllib.parse import quote

from gitopsd.adapters.inventory_store import (
    Layout,
    after,
    check_fits,
    inventories_of,
    inventory_name,
    layout_of,
    plan_write,
)
from gitopsd.errors import ClusterError, ConflictError, InventoryError, NotFoundError
from gitopsd.inventory import Inventory, StoredInventory
from gitopsd.model import FIELD_MANAGER, INVENTORY_LABEL, Manifest


class ConfigMaps(Protocol):
    """The requests the store makes, on ConfigMaps of the inventory namespace."""

    def list(self, selector: str) -> list[Manifest]:
        """Every ConfigMap matching the label selector, in one consistent read."""

    def create(self, body: Manifest) -> Manifest:
        """Create `body` (and the namespace if missing); 409 if it exists."""

    def merge_patch(self, name: str, patch: Manifest) -> Manifest:
        """A JSON merge patch; 409 if the patch's resourceVersion is not the current one."""

    def delete(self, name: str) -> None:
        """Delete the ConfigMap; one already gone is no error."""


class Request(Protocol):
    """The adapter's REST call (KubernetesAdapter._request): retries, rate limit, errors."""

    def __call__(
        self,
        verb: str,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        what: str = "",
    ) -> Any: ...


class RestConfigMaps:
    """ConfigMaps through the adapter's REST calls: ConfigMaps are core v1 everywhere."""

    def __init__(self, request: Request, namespace: str) -> None:
        self._request, self._namespace = request, namespace
        self._collection = f"/api/v1/namespaces/{quote(namespace, safe='')}/configmaps"

    def _what(self, name: str) -> str:
        return f"ConfigMap {self._namespace}/{name}"

    def list(self, selector: str) -> list[Manifest]:
        items: list[Manifest] = []
        token = ""
        while True:  # pages of one list share its resourceVersion: still one snapshot
            query = [("labelSelector", selector), ("limit", "500")]
            query += [("continue", token)] if token else []
            page = self._request(
                "list", "GET", self._collection, query=query, what="list ConfigMap"
            )
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return items

    def create(self, body: Manifest) -> Manifest:
        what, query = self._what(body["metadata"]["name"]), [("fieldManager", FIELD_MANAGER)]
        try:
            return dict(
                self._request(
                    "inventory", "POST", self._collection, query=query, body=body, what=what
                )
            )
        except NotFoundError:
            # The namespace is missing: create it only then, so credentials limited to
            # their own namespaces need no access to Namespaces.
            namespace = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": self._namespace},
            }
            with contextlib.suppress(ConflictError):
                self._request(
                    "inventory",
                    "POST",
                    "/api/v1/namespaces",
                    query=query,
                    body=namespace,
                    what=f"Namespace {self._namespace}",
                )
        return dict(
            self._request("inventory", "POST", self._collection, query=query, body=body, what=what)
        )

    def merge_patch(self, name: str, patch: Manifest) -> Manifest:
        path = f"{self._collection}/{quote(name, safe='')}"
        query = [("fieldManager", FIELD_MANAGER)]
        content = "application/merge-patch+json"
        saved = self._request(
            "inventory",
            "PATCH",
            path,
            query=query,
            body=patch,
            content_type=content,
            what=self._what(name),
        )
        return dict(saved)

    def delete(self, name: str) -> None:
        path = f"{self._collection}/{quote(name, safe='')}"
        with contextlib.suppress(NotFoundError):
            self._request("inventory", "DELETE", path, what=self._what(name))


class InventoryStore:
    """Every target's inventory in one namespace: loaded with one list, saved head last."""

    def __init__(self, api: ConfigMaps, namespace: str) -> None:
        self._api = api
        self._namespace = namespace
        # Each target's layout as last listed or written, so a save needs no read first.
        self._layouts: dict[str, Layout] = {}
        self._lock = threading.Lock()

    def describe(self, target: str) -> str:
        return f"ConfigMap {self._namespace}/{inventory_name(target)}"

    def load(self, target: str) -> tuple[StoredInventory, Mapping[str, StoredInventory]]:
        """`target`'s inventory and every other target's, from one list call."""
        items = self._api.list(INVENTORY_LABEL)
        own, others = inventories_of(items, target)
        self._remember(target, layout_of(target, items))
        return own, others

    def check_fits(self, target: str, inventory: Inventory) -> None:
        check_fits(target, inventory)

    def save(self, target: str, inventory: Inventory, version: str) -> str:
        """Store `inventory` over the head at `version`: new shards, then the head, then
        the shards no longer named are deleted. Returns the head's new resourceVersion."""
        layout = self._layout_at(target, version)
        write = plan_write(target, self._namespace, inventory, layout)
        created: set[str] = set()
        try:
            with self._conflicts(target):
                for shard in write.shards:
                    self._api.create(shard)
                    created.add(shard["metadata"]["name"])
                if layout.version:
                    saved = self._api.merge_patch(inventory_name(target), write.head)
                else:
                    saved = self._api.create(write.head)
        except BaseException:
            # What was created is no head's: the next save deletes it and moves past it.
            shards = layout.shards | created
            self._remember(target, replace(layout, shards=shards, generation=write.generation))
            raise
        new_version = str(saved["metadata"]["resourceVersion"])
        self._remember(target, after(write, new_version, write.stale))
        self._remember(target, after(write, new_version, self._delete(write.stale)))
        return new_version

    def _delete(self, names: tuple[str, ...]) -> list[str]:
        """Delete stale shards; those that fail for now stay for the next save (no head
        names them). A refusal (403: no `delete` granted) is raised: they would pile up."""
        undeleted = []
        for name in names:
            try:
                self._api.delete(name)
            except ClusterError as error:
                if not error.retryable:
                    raise
                undeleted.append(name)
        return undeleted

    def _layout_at(self, target: str, version: str) -> Layout:
        with self._lock:
            known = self._layouts.get(target)
        if known is not None and known.version == version:
            return known
        layout = layout_of(target, self._api.list(f"{INVENTORY_LABEL}={target}"))
        if layout.version != version:
            raise self._conflict(target)
        return layout

    def _remember(self, target: str, layout: Layout) -> None:
        with self._lock:
            self._layouts[target] = layout

    @contextmanager
    def _conflicts(self, target: str) -> Iterator[None]:
        try:
            yield
        except ClusterError as error:
            if error.status != 409:
                raise
            raise self._conflict(target) from error

    def _conflict(self, target: str) -> InventoryError:
        return InventoryError(
            f"target {target}: {self.describe(target)} was changed by another writer during "
            "the pass (another gitopsd reconciling this target?); the next pass starts from it",
            retryable=True,
        )
