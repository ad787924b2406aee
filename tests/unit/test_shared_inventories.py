"""One decoded copy of a namespace's inventories, shared by the targets that read them."""

from __future__ import annotations

from gitopsd.inventory import Inventory, StoredInventory
from gitopsd.watchread import SharedInventories

NS = "gitopsd-system"
A = StoredInventory(Inventory(revision="a1"), "11")
B = StoredInventory(Inventory(revision="b1"), "12")
VERSIONS = frozenset({("gitopsd-inventory-a", "11"), ("gitopsd-inventory-b", "12")})


def test_what_one_target_read_serves_another_at_the_same_versions() -> None:
    shared = SharedInventories()
    assert shared.get(NS, VERSIONS, "b") is None
    shared.put(NS, VERSIONS, "a", (A, {"b": B}))
    assert shared.get(NS, VERSIONS, "b") == (B, {"a": A})
    assert shared.get(NS, VERSIONS, "a") == (A, {"b": B})
    assert shared.get(NS, VERSIONS, "c") == (StoredInventory(), {"a": A, "b": B})


def test_other_versions_or_another_namespace_are_read_again() -> None:
    shared = SharedInventories()
    shared.put(NS, VERSIONS, "a", (A, {"b": B}))
    moved = frozenset({("gitopsd-inventory-a", "11"), ("gitopsd-inventory-b", "13")})
    assert shared.get(NS, moved, "a") is None
    assert shared.get("elsewhere", VERSIONS, "a") is None


def test_a_target_without_an_inventory_is_not_one_of_the_others() -> None:
    shared = SharedInventories()
    only_b = frozenset({("gitopsd-inventory-b", "12")})
    shared.put(NS, only_b, "a", (StoredInventory(), {"b": B}))
    assert shared.get(NS, only_b, "b") == (B, {})
