"""The inventory survives a round trip through ConfigMap data, and refuses what cannot fit."""

from __future__ import annotations

import pytest

from gitopsd.adapters.inventory_store import (
    check_fits,
    decode_inventory,
    decode_keys,
    encode_inventory,
    encode_keys,
    inventory_name,
)
from gitopsd.errors import InventoryError, InventoryTooLarge
from gitopsd.inventory import Inventory, upper_bound
from gitopsd.model import ResourceKey

WEB = ResourceKey("apps", "Deployment", "shop", "web")
CFG = ResourceKey("", "ConfigMap", "shop", "cfg")
NS = ResourceKey("", "Namespace", "", "shop")
ROLE = ResourceKey("rbac.authorization.k8s.io", "ClusterRole", "", "reader")
SHARED = ResourceKey("", "ConfigMap", "shop", "shared")


def test_encode_is_stable_and_compact() -> None:
    data = encode_keys([WEB, CFG, NS, ROLE, WEB])

    assert data == {
        "version": "1",
        "entries": "\n".join(
            [
                "|ConfigMap|shop|cfg",
                "|Namespace||shop",
                "apps|Deployment|shop|web",
                "rbac.authorization.k8s.io|ClusterRole||reader",
            ]
        ),
    }
    assert encode_keys([ROLE, NS, CFG, WEB]) == data


@pytest.mark.parametrize(
    "keys", [frozenset(), frozenset({WEB}), frozenset({WEB, CFG, NS, ROLE})], ids=len
)
def test_decode_reverses_encode(keys: frozenset[ResourceKey]) -> None:
    assert decode_keys(encode_keys(keys)) == keys


def test_decode_of_a_new_configmap_is_empty() -> None:
    assert decode_keys({}) == frozenset()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"version": "2", "entries": ""}, "inventory format version '2' is not '1'"),
        ({"entries": "|ConfigMap|shop|cfg"}, "inventory format version None is not '1'"),
        (
            {"version": "1", "entries": "|ConfigMap|shop|cfg\nbroken"},
            "inventory entry 2 is malformed",
        ),
        ({"version": "1", "entries": "apps||shop|web"}, "inventory entry 1 is malformed"),
    ],
)
def test_decode_refuses_what_it_cannot_read(data: dict[str, str], message: str) -> None:
    with pytest.raises(InventoryError, match=message):
        decode_keys(data)


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


def test_an_inventory_too_large_for_a_configmap_is_refused() -> None:
    keys = [ResourceKey("", "ConfigMap", "shop", f"config-{n:05}") for n in range(8000)]
    check_fits("shop", upper_bound(Inventory(), keys[:1000]))

    with pytest.raises(InventoryTooLarge, match=r"target shop: 8000 objects need a \d+ KiB"):
        check_fits("shop", upper_bound(Inventory(), keys))
