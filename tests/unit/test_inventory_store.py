"""The inventory survives a round trip through ConfigMap data."""

from __future__ import annotations

from gitopsd.adapters.base import Inventory
from gitopsd.adapters.inventory_store import decode_inventory, encode_inventory, inventory_name
from gitopsd.model import ResourceKey

WEB = ResourceKey("apps", "Deployment", "shop", "web")
ROLE = ResourceKey("rbac.authorization.k8s.io", "ClusterRole", "", "reader")
SHARED = ResourceKey("", "ConfigMap", "shop", "shared")


def test_round_trip_keeps_keys_hashes_revision_and_claims() -> None:
    inventory = Inventory(
        keys=frozenset({WEB, ROLE}),
        applied_hashes={WEB: "a" * 64, ROLE: "b" * 64},
        revision="c" * 40,
        claims=frozenset({WEB, ROLE, SHARED}),
    )
    data = encode_inventory(inventory)
    assert all(isinstance(value, str) for value in data.values())
    assert decode_inventory(data) == inventory


def test_empty_data_is_an_empty_inventory() -> None:
    assert decode_inventory(encode_inventory(Inventory())) == Inventory()


def test_configmap_name_carries_the_target() -> None:
    assert inventory_name("web-prod") == "gitopsd-inventory-web-prod"
