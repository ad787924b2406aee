"""Inventory: what a target owns, its ConfigMap form, and ownership across targets."""

from __future__ import annotations

import pytest

from gitopsd.errors import InventoryError, OwnershipError
from gitopsd.inventory import check_ownership, decode, encode, next_inventory, stale
from gitopsd.model import ResourceKey

WEB = ResourceKey("apps", "Deployment", "shop", "web")
CFG = ResourceKey("", "ConfigMap", "shop", "cfg")
NS = ResourceKey("", "Namespace", "", "shop")
ROLE = ResourceKey("rbac.authorization.k8s.io", "ClusterRole", "", "reader")


def test_encode_is_stable_and_compact() -> None:
    data = encode([WEB, CFG, NS, ROLE, WEB])

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
    assert encode([ROLE, NS, CFG, WEB]) == data


@pytest.mark.parametrize(
    "keys", [frozenset(), frozenset({WEB}), frozenset({WEB, CFG, NS, ROLE})], ids=len
)
def test_decode_reverses_encode(keys: frozenset[ResourceKey]) -> None:
    assert decode(encode(keys)) == keys


def test_decode_of_a_new_configmap_is_empty() -> None:
    assert decode({}) == frozenset()


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
        decode(data)


def test_stale_is_owned_but_no_longer_declared() -> None:
    assert stale(frozenset({WEB, CFG, NS}), iter([WEB, ROLE])) == frozenset({CFG, NS})
    assert stale(frozenset(), [WEB]) == frozenset()


def test_failed_deletions_stay_in_the_inventory() -> None:
    previous = frozenset({WEB, CFG, NS})

    result = next_inventory(previous, [WEB, ROLE], failed_deletions=[CFG])

    assert result == frozenset({WEB, ROLE, CFG})


def test_check_ownership_names_both_targets() -> None:
    others = {"shop": frozenset({WEB}), "billing": frozenset({CFG, NS}), "web": frozenset()}

    with pytest.raises(OwnershipError) as caught:
        check_ownership("shop", [WEB, CFG, NS], others)

    message = str(caught.value)
    assert (
        message
        == "ConfigMap shop/cfg (and 1 more) is declared by both target 'shop' and target 'billing'"
    )
    assert not caught.value.retryable


def test_check_ownership_passes_when_nothing_is_shared() -> None:
    check_ownership("shop", [WEB], {"shop": frozenset({WEB}), "billing": frozenset({CFG})})
