"""Inventory: what a target owns after a pass, and ownership across targets."""

from __future__ import annotations

import pytest

from gitopsd.inventory import (
    Inventory,
    StoredInventory,
    find_clash,
    holds,
    manifest_hash,
    next_inventory,
    upper_bound,
)
from gitopsd.model import Action, ChangeSet, ChangeSetEntry, DesiredObject, ResourceKey

WEB_KEY = ResourceKey("apps", "Deployment", "shop", "web")
CFG = ResourceKey("", "ConfigMap", "shop", "cfg")
NS = ResourceKey("", "Namespace", "", "shop")
WEB = DesiredObject(WEB_KEY, {"kind": "Deployment", "spec": {"replicas": 2}}, "web.yaml#1")
NEW_HASH = manifest_hash(WEB.manifest)


def inv(*keys: ResourceKey, **hashes: str) -> Inventory:
    applied = {WEB_KEY: hashes["web"]} if "web" in hashes else {}
    return Inventory(frozenset(keys), applied, "b" * 40, frozenset(keys))


def stored(inventory: Inventory, version: str = "100") -> StoredInventory:
    return StoredInventory(inventory, version)


def changes(*entries: tuple[ResourceKey, Action]) -> ChangeSet:
    return ChangeSet(tuple(ChangeSetEntry(key, action) for key, action in entries))


def test_failed_deletion_stays_in_the_inventory() -> None:
    result = next_inventory(inv(CFG), [WEB], ChangeSet((ChangeSetEntry(CFG, Action.FAILED),)), "c")

    assert CFG in result.keys
    assert result.keys == {WEB_KEY, CFG}
    assert result.claims == {WEB_KEY}
    assert result.revision == "c"


@pytest.mark.parametrize(
    ("action", "kept"),
    [
        (Action.PRUNED, False),
        (Action.FAILED, True),
        (Action.SKIPPED, True),  # interrupted by shutdown: tried again next pass
    ],
)
def test_undeclared_objects_stay_only_while_their_deletion_did_not_happen(
    action: Action, kept: bool
) -> None:
    result = next_inventory(inv(WEB_KEY, CFG), [WEB], changes((CFG, action)), "c")

    assert (CFG in result.keys) is kept


def test_undeclared_object_without_a_deletion_is_dropped() -> None:
    # Already gone, left alone by prune (kept), or prune disabled: no longer tracked.
    result = next_inventory(inv(WEB_KEY, CFG, NS), [WEB], changes((NS, Action.KEPT)), "c")

    assert result.keys == {WEB_KEY}


@pytest.mark.parametrize(
    ("entries", "digest"),
    [
        pytest.param((), NEW_HASH, id="in sync"),
        pytest.param(((WEB_KEY, Action.CORRECTED),), NEW_HASH, id="written"),
        pytest.param(((WEB_KEY, Action.UNCHANGED),), NEW_HASH, id="dry-run equal to live"),
        pytest.param(((WEB_KEY, Action.FAILED),), "old", id="failed"),
        pytest.param(((WEB_KEY, Action.SKIPPED),), "old", id="skipped"),
    ],
)
def test_objects_not_reached_keep_their_old_hash(
    entries: tuple[tuple[ResourceKey, Action], ...], digest: str
) -> None:
    result = next_inventory(inv(WEB_KEY, web="old"), [WEB], changes(*entries), "c")

    assert result.applied_hashes == {WEB_KEY: digest}


def test_new_object_not_reached_has_no_hash() -> None:
    result = next_inventory(inv(), [WEB], changes((WEB_KEY, Action.FAILED)), "c")

    assert result.keys == {WEB_KEY}
    assert result.applied_hashes == {}


def test_only_a_new_revision_leaves_the_inventory_as_it_was() -> None:
    previous = inv(WEB_KEY, web=NEW_HASH)

    assert next_inventory(previous, [WEB], ChangeSet(), "c") is previous


def test_upper_bound_holds_every_key_with_a_hash() -> None:
    bound = upper_bound(inv(CFG), [WEB_KEY])

    assert bound.keys == bound.claims == {CFG, WEB_KEY}
    assert set(bound.applied_hashes) == {CFG, WEB_KEY}


def test_another_target_owning_an_object_names_both_targets() -> None:
    others = {
        "shop": stored(inv(WEB_KEY)),
        "billing": stored(inv(CFG, NS)),
        "web": stored(inv()),
    }

    clash = find_clash("shop", [WEB_KEY, CFG, NS], stored(inv()), others)

    assert clash is not None
    assert clash.message() == (
        "ConfigMap shop/cfg (and 1 more) is declared by both target 'shop' and target "
        "'billing'; 'billing' wins: it owns it"
    )


def test_no_clash_when_nothing_is_shared() -> None:
    others = {"shop": stored(inv(WEB_KEY)), "billing": stored(inv(CFG))}

    assert find_clash("shop", [WEB_KEY], stored(inv(WEB_KEY)), others) is None


def test_an_inventory_holds_a_revision_whose_objects_it_records_whatever_commit_it_names() -> None:
    applied = inv(WEB_KEY, web=NEW_HASH)  # names commit b*40
    assert holds(applied, [WEB])
    assert not holds(inv(WEB_KEY, web="old"), [WEB])  # Git changed the object since
    assert not holds(applied, [WEB, DesiredObject(CFG, {"kind": "ConfigMap"}, "c.yaml#1")])
    assert not holds(applied, [])  # an object to prune is still there
    pending = Inventory(
        frozenset({WEB_KEY}), {WEB_KEY: NEW_HASH}, "b" * 40, frozenset({WEB_KEY, CFG})
    )
    assert not holds(pending, [WEB])  # a pass was writing CFG when it ended
