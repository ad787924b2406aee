"""Claims: who wins an object two targets declare, what a pass stores before writing, and
how claims are kept (issue 10, items 1 and 4)."""

from __future__ import annotations

import zlib

import pytest

from gitopsd.adapters.inventory_codec import decode, decode_legacy, encode
from gitopsd.adapters.inventory_store import MAX_DOCUMENT
from gitopsd.errors import InventoryError
from gitopsd.inventory import (
    Inventory,
    StoredInventory,
    claim,
    contested,
    find_clash,
    next_inventory,
    pinned,
    withdrawn,
)
from gitopsd.model import Action, ChangeSet, ChangeSetEntry, DesiredObject, ResourceKey

SHARED = ResourceKey("", "ConfigMap", "shop", "shared")
OTHER = ResourceKey("", "ConfigMap", "shop", "other")
WEB = ResourceKey("apps", "Deployment", "shop", "web")


def owning(*keys: ResourceKey, version: str = "10") -> StoredInventory:
    return StoredInventory(Inventory(frozenset(keys), claims=frozenset(keys)), version)


def claiming(*keys: ResourceKey, version: str, **pins: int) -> StoredInventory:
    """An inventory whose only claims are pending: stored at `version`, or at a pin."""
    at = {key: pins[key.name] for key in keys if key.name in pins}
    return StoredInventory(Inventory(claims=frozenset(keys), claimed_at=at), version)


@pytest.mark.parametrize(
    ("a", "b", "winner"),
    [
        pytest.param(
            claiming(SHARED, version="7"), claiming(SHARED, version="9"), "a", id="a first"
        ),
        pytest.param(
            claiming(SHARED, version="9"), claiming(SHARED, version="7"), "b", id="b first"
        ),
        pytest.param(
            claiming(SHARED, version="90", shared=5),
            claiming(SHARED, version="9"),
            "a",
            id="an old claim keeps its time when its inventory is rewritten",
        ),
        pytest.param(
            owning(SHARED, version="99"), claiming(SHARED, version="1"), "a", id="owned wins"
        ),
        pytest.param(StoredInventory(), claiming(SHARED, version="1"), "b", id="a not stored yet"),
        pytest.param(
            claiming(SHARED, version="11"),
            claiming(SHARED, version="9"),
            "b",
            id="compared as numbers, not text",
        ),
    ],
)
def test_exactly_one_of_two_targets_wins_and_both_agree(
    a: StoredInventory, b: StoredInventory, winner: str
) -> None:
    a_loses = find_clash("a", [SHARED], a, {"b": b})
    b_loses = find_clash("b", [SHARED], b, {"a": a})

    assert (a_loses is None, b_loses is None) == (winner == "a", winner == "b")
    clash = a_loses or b_loses
    assert clash is not None and clash.other == winner and clash.keys == (SHARED,)


def test_a_claim_stored_at_the_same_version_loses_to_the_lower_target_name() -> None:
    # Cannot happen with etcd (every write has its own version), but the order stays total.
    same = claiming(SHARED, version="7")

    assert find_clash("a", [SHARED], same, {"b": same}) is None
    assert find_clash("b", [SHARED], same, {"a": same}) is not None


def test_the_loser_is_told_who_claimed_first_and_that_its_pass_has_not_finished() -> None:
    clash = find_clash(
        "b",
        [WEB, SHARED],
        claiming(SHARED, WEB, version="9"),
        {"a": claiming(SHARED, WEB, version="7")},
    )

    assert clash is not None
    assert clash.message() == (
        "ConfigMap shop/shared (and 1 more) is declared by both target 'b' and target 'a'; "
        "'a' wins: it claimed it first, in a pass that has not finished"
    )


def test_a_target_owning_what_another_claims_goes_on() -> None:
    assert find_clash("a", [SHARED], owning(SHARED), {"b": claiming(SHARED, version="1")}) is None


def test_a_target_whose_claim_is_not_stored_yet_loses_to_any_stored_claim() -> None:
    # The first check, before the claim is stored: no write when the pass would lose.
    clash = find_clash("b", [SHARED], StoredInventory(), {"a": claiming(SHARED, version="99")})

    assert clash is not None and not clash.owned


def test_a_resource_version_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(InventoryError, match="etcd"):
        find_clash(
            "b", [SHARED], claiming(SHARED, version="9"), {"a": claiming(SHARED, version="x")}
        )


def test_claim_adds_what_is_declared_and_adopted_and_is_a_no_op_when_stored() -> None:
    previous = Inventory(frozenset({WEB}), claims=frozenset({WEB}))

    claimed = claim(previous, [WEB, SHARED], [SHARED])

    assert (claimed.claims, claimed.adopted, claimed.pending) == (
        {WEB, SHARED},
        {SHARED},
        {SHARED},
    )
    assert claim(claimed, [WEB, SHARED], [SHARED]) is claimed
    assert claim(previous, [WEB], []) is previous  # a pass that creates nothing stores nothing


def test_a_killed_pass_leaves_its_pending_claims_tracked_for_pruning() -> None:
    killed = claim(Inventory(frozenset({WEB}), claims=frozenset({WEB})), [WEB, SHARED], [])

    assert killed.tracked == {WEB, SHARED}
    # The next pass declares WEB only; SHARED's deletion failed: it stays tracked.
    failed = ChangeSet((ChangeSetEntry(SHARED, Action.FAILED),))
    web = DesiredObject(WEB, {"kind": "Deployment"}, "web.yaml#1")
    after = next_inventory(killed, [web], failed, "c")
    assert after.keys == {WEB, SHARED} and after.pending == frozenset()
    pruned = ChangeSet((ChangeSetEntry(SHARED, Action.PRUNED),))
    assert next_inventory(killed, [web], pruned, "c").tracked == {WEB}


def test_a_loser_withdraws_only_its_pending_claims_on_contested_keys() -> None:
    mine = Inventory(frozenset({WEB}), claims=frozenset({WEB, SHARED, OTHER}))
    others = {"a": claiming(SHARED, WEB, version="3"), "me": owning(OTHER)}

    keys = contested("me", [WEB, SHARED, OTHER], others)
    left = withdrawn(mine, keys)

    assert keys == {WEB, SHARED}
    assert left.claims == {WEB, OTHER}  # owned WEB stays; pending OTHER is not contested
    assert withdrawn(left, keys) is left


def test_rewriting_an_inventory_pins_the_time_of_claims_still_pending() -> None:
    before = claiming(SHARED, OTHER, version="40", other=12)
    rewritten = Inventory(claims=frozenset({SHARED, OTHER, WEB}))

    result = pinned(before, rewritten)

    assert result.claimed_at == {SHARED: 40, OTHER: 12}  # WEB: the new write's own version


def test_claims_adoptions_and_pins_survive_storage_and_old_inventories_still_read() -> None:
    inventory = Inventory(
        frozenset({WEB}),
        {WEB: "a" * 64},
        "c" * 40,
        frozenset({WEB, SHARED}),
        frozenset({SHARED}),
        {SHARED: 12345678901234567},
    )

    assert decode(encode(inventory), MAX_DOCUMENT) == inventory
    stored_by_an_older_gitopsd = {
        "version": "1",
        "entries": "apps|Deployment|shop|web",
        "claims.json": '[["apps","Deployment","shop","web"],["","ConfigMap","shop","shared"]]',
    }
    old = decode_legacy(stored_by_an_older_gitopsd)
    assert (old.adopted, old.claimed_at, old.claims) == (frozenset(), {}, {WEB, SHARED})


def test_a_damaged_claim_time_is_an_inventory_error() -> None:
    data = {"version": "1", "claims.json": '[["", "ConfigMap", "shop", "shared"]]'}
    data["claimed-at.json"] = '[["", "ConfigMap", "shop", "shared", "soon"]]'
    with pytest.raises(InventoryError, match="damaged"):
        decode_legacy(data)
    with pytest.raises(InventoryError, match="damaged"):
        row = b'["","ConfigMap","shop","shared",2,"","soon"]'
        decode(zlib.compress(b'{"revision":"","objects":[' + row + b"]}", 1, 31), MAX_DOCUMENT)
