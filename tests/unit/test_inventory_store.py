"""The inventory's encoding and its layout over ConfigMaps: compact, sharded when one
ConfigMap is not enough, every damaged piece refused, format 1 still read."""

from __future__ import annotations

import base64
import copy
import hashlib
import zlib

import pytest

from gitopsd.adapters import inventory_codec
from gitopsd.adapters.inventory_store import (
    MAX_DOCUMENT,
    SHARD_BYTES,
    Layout,
    Write,
    after,
    check_fits,
    inventories_of,
    inventory_name,
    layout_of,
    plan_write,
    read_listing,
)
from gitopsd.errors import InventoryError, InventoryTooLarge
from gitopsd.inventory import Inventory, upper_bound
from gitopsd.model import Manifest, ResourceKey

WEB = ResourceKey("apps", "Deployment", "shop", "web")
CFG = ResourceKey("", "ConfigMap", "shop", "cfg")
NS = ResourceKey("", "Namespace", "", "shop")
ROLE = ResourceKey("rbac.authorization.k8s.io", "ClusterRole", "", "reader")
SHARED = ResourceKey("", "ConfigMap", "shop", "shared")
LABEL = "gitopsd.io/inventory-of"
# 2,000 objects (some 90 KB) in 32 KiB shards: three shards, as 50,000 in real ones.
SMALL_SHARDS = 32 * 1024
MANY = 2_000

# What gitopsd stored before sharding (format 1), as the API server returns it.
LEGACY_DATA = {
    "version": "1",
    "entries": "|ConfigMap|shop|cfg\napps|Deployment|shop|web",
    "applied-hashes.json": '[["","ConfigMap","shop","cfg","' + "b" * 64 + '"]]',
    "revision": "c" * 40,
    "claims.json": '[["","ConfigMap","shop","cfg"],["","ConfigMap","shop","shared"]]',
    "adopted.json": '[["","ConfigMap","shop","shared"]]',
    "claimed-at.json": '[["","ConfigMap","shop","shared",41]]',
}
LEGACY = Inventory(
    frozenset({CFG, WEB}),
    {CFG: "b" * 64},
    "c" * 40,
    frozenset({CFG, SHARED}),
    frozenset({SHARED}),
    {SHARED: 41},
)
FULL = Inventory(
    frozenset({WEB, ROLE, NS}),
    {WEB: "a" * 64, ROLE: "b" * 64},
    "c" * 40,
    frozenset({WEB, ROLE, SHARED}),
    frozenset({SHARED, ROLE}),
    {SHARED: 12345678901234567},
)


def big(count: int, revision: str = "d" * 40) -> Inventory:
    """`count` owned ConfigMaps over ten namespaces, each with its own (random) hash."""
    keys = [ResourceKey("", "ConfigMap", f"ns-{n % 10}", f"config-{n:06}") for n in range(count)]
    hashes = {key: hashlib.sha256(key.name.encode()).hexdigest() for key in keys}
    return Inventory(frozenset(keys), hashes, revision, frozenset(keys))


class Cluster:
    """ConfigMaps in one namespace, as a list call returns them, changed by Write plans."""

    def __init__(self) -> None:
        self.items: dict[str, Manifest] = {}
        self.version = 100

    def store(self, target: str, write: Write) -> str:
        for shard in write.shards:
            self._put(copy.deepcopy(shard))
        name = inventory_name(target)
        if "resourceVersion" in write.head["metadata"]:
            head = self.items[name]
            assert head["metadata"]["resourceVersion"] == write.head["metadata"]["resourceVersion"]
            for section in ("data", "binaryData"):
                merged = {**head.get(section, {}), **write.head.get(section, {})}
                head[section] = {k: v for k, v in merged.items() if v is not None}
        else:
            head = copy.deepcopy(write.head)
        self._put(head)
        for stale in write.stale:
            del self.items[stale]
        return str(head["metadata"]["resourceVersion"])

    def _put(self, item: Manifest) -> None:
        self.version += 1
        item["metadata"]["resourceVersion"] = str(self.version)
        self.items[item["metadata"]["name"]] = item

    def listing(self) -> list[Manifest]:
        return copy.deepcopy(list(self.items.values()))

    def save(self, target: str, inventory: Inventory) -> Write:
        layout = layout_of(target, self.listing())
        write = plan_write(target, "ops", inventory, layout, shard_bytes=SMALL_SHARDS)
        self.store(target, write)
        return write

    def load(self, target: str) -> Inventory:
        return inventories_of(self.listing(), target)[0].inventory


def test_the_encoding_keeps_every_part_of_an_inventory() -> None:
    for inventory in (Inventory(), FULL, LEGACY):
        assert inventory_codec.decode(inventory_codec.encode(inventory), MAX_DOCUMENT) == inventory


def test_the_encoding_is_compact() -> None:
    payload = inventory_codec.encode(big(10_000))

    # Format 1 needed about 196 bytes an object; the hashes alone are 32 random bytes.
    assert len(payload) / 10_000 < 50
    assert len(payload) < SHARD_BYTES  # 10,000 objects: the head alone holds them


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not gzip at all", "not a gzip stream"),
        (inventory_codec.encode(FULL)[:-12], "cut short"),
        (zlib.compress(b"[1, 2]", 1, 31), "damaged document"),
        (zlib.compress(b'{"revision":"","objects":[["","","","x",1,""]]}', 1, 31), "malformed"),
        (zlib.compress(b'{"revision":7,"objects":[]}', 1, 31), "is not a string"),
        (zlib.compress(b" " * 5000, 9, 31), "expands past"),
    ],
    ids=["not-gzip", "cut-short", "not-a-document", "no-kind", "revision-type", "bomb"],
)
def test_a_damaged_document_is_refused(payload: bytes, message: str) -> None:
    with pytest.raises(InventoryError, match=message):
        inventory_codec.decode(payload, 4096)


def test_format_1_is_still_read() -> None:
    assert inventory_codec.decode_legacy(LEGACY_DATA) == LEGACY
    older = {k: v for k, v in LEGACY_DATA.items() if k not in ("adopted.json", "claimed-at.json")}
    assert inventory_codec.decode_legacy(older).adopted == frozenset()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": "7"}, "format version '7' is unknown"),
        ({"entries": "|ConfigMap|shop|cfg\nbroken"}, "inventory entry 2 is malformed"),
        ({"claimed-at.json": '[["", "ConfigMap", "shop", "shared", "soon"]]'}, "damaged"),
    ],
)
def test_damaged_format_1_is_refused(change: dict[str, str], message: str) -> None:
    with pytest.raises(InventoryError, match=message):
        inventory_codec.decode_legacy({**LEGACY_DATA, **change})


def test_a_small_inventory_is_one_configmap_written_in_one_request() -> None:
    cluster = Cluster()
    write = cluster.save("web", FULL)

    assert (write.shards, write.stale) == ((), ())
    assert list(cluster.items) == [inventory_name("web")]
    assert cluster.load("web") == FULL


def test_a_large_inventory_is_sharded_new_shards_first_stale_ones_last() -> None:
    cluster = Cluster()
    first = cluster.save("web", big(MANY))
    head = cluster.items[inventory_name("web")]

    assert len(first.shards) == 3
    assert [s["metadata"]["name"] for s in first.shards] == [
        f"gitopsd-inventory-web.1.{index}" for index in range(3)
    ]
    assert head["data"]["shards"].count("\n") == 2 and "inventory" not in head["binaryData"]
    assert cluster.load("web") == big(MANY)

    # The next save writes a new generation and only then drops the old one.
    second = cluster.save("web", big(MANY, revision="e" * 40))
    assert second.generation == 2 and set(second.stale) == set(first.kept)
    assert cluster.load("web").revision == "e" * 40

    # Shrinking: back to the head alone, every shard deleted.
    third = cluster.save("web", big(100))
    assert (third.shards, set(third.stale)) == ((), set(second.kept))
    assert list(cluster.items) == [inventory_name("web")]
    assert cluster.load("web") == big(100)


def test_a_save_interrupted_between_shards_leaves_the_old_inventory_readable() -> None:
    cluster = Cluster()
    cluster.save("web", big(MANY))
    layout = layout_of("web", cluster.listing())
    write = plan_write("web", "ops", big(2_400), layout, shard_bytes=SMALL_SHARDS)
    cluster.items[write.shards[0]["metadata"]["name"]] = copy.deepcopy(write.shards[0])

    assert cluster.load("web") == big(MANY)  # the orphan shard is nobody's
    retried = cluster.save("web", big(2_400))
    assert write.shards[0]["metadata"]["name"] in retried.stale
    assert retried.generation == 3  # past the orphan's generation: no name is reused
    assert cluster.load("web") == big(2_400)
    assert len(cluster.items) == 1 + len(retried.shards)


def _damage(cluster: Cluster, how: str) -> None:
    head = cluster.items[inventory_name("web")]
    name = head["data"]["shards"].splitlines()[1].split()[0]
    shard = cluster.items[name]
    if how == "missing":
        del cluster.items[name]
    elif how == "generation":
        shard["data"]["generation"] = "7"
    elif how == "digest":
        piece = base64.b64decode(shard["binaryData"]["part"])
        shard["binaryData"]["part"] = base64.b64encode(piece[:-1] + b"x").decode()
    elif how == "base64":
        shard["binaryData"]["part"] = "not base64!"


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("missing", r"shard gitopsd-inventory-web\.1\.1, named by the head, is missing"),
        ("generation", r"shard gitopsd-inventory-web\.1\.1 is of generation '7', the head's '1'"),
        ("digest", "does not match the SHA-256 the head records"),
        ("base64", "is not base64"),
    ],
)
def test_a_damaged_shard_is_refused_naming_the_way_out(how: str, message: str) -> None:
    cluster = Cluster()
    cluster.save("web", big(MANY))
    _damage(cluster, how)

    with pytest.raises(InventoryError, match=message) as caught:
        read_listing(cluster.listing())
    text = str(caught.value)
    assert text.startswith("target web: inventory ops/gitopsd-inventory-web cannot be read")
    assert "nothing is applied or pruned until it is fixed" in text


def test_a_bad_gzip_in_the_head_is_refused() -> None:
    cluster = Cluster()
    cluster.save("web", FULL)
    cluster.items[inventory_name("web")]["binaryData"]["inventory"] = base64.b64encode(
        b"garbage"
    ).decode()

    with pytest.raises(InventoryError, match=r"cannot be read \(not a gzip stream"):
        read_listing(cluster.listing())


def test_format_1_is_migrated_by_the_next_save_its_keys_dropped() -> None:
    cluster = Cluster()
    legacy = {
        "metadata": {"name": inventory_name("web"), "labels": {LABEL: "web"}},
        "data": dict(LEGACY_DATA),
    }
    cluster._put(legacy)

    assert cluster.load("web") == LEGACY
    write = cluster.save("web", LEGACY)
    assert all(write.head["data"][key] is None for key in inventory_codec.legacy_keys())
    assert set(cluster.items[inventory_name("web")]["data"]) == {"format", "generation", "shards"}
    assert cluster.load("web") == LEGACY


def test_copies_made_by_hand_and_headless_shards_are_nobodys_inventory() -> None:
    cluster = Cluster()
    cluster.save("web", FULL)
    cluster.save("api", Inventory(frozenset({CFG}), claims=frozenset({CFG})))
    copied = copy.deepcopy(cluster.items[inventory_name("web")])
    copied["metadata"]["name"] = "innocent"
    cluster._put(copied)
    orphan = plan_write("new", "ops", big(MANY), Layout(), SMALL_SHARDS).shards[0]
    cluster._put(copy.deepcopy(orphan))

    own, others = inventories_of(cluster.listing(), "web")
    assert own.inventory == FULL and set(others) == {"api"}
    assert inventories_of(cluster.listing(), "new")[0].version == ""
    assert layout_of("new", cluster.listing()).shards == {orphan["metadata"]["name"]}


def test_after_a_save_the_layout_knows_the_head_and_the_shards_left() -> None:
    layout = Layout("9", frozenset(), frozenset({"x"}), 4)
    write = plan_write("web", "ops", big(MANY), layout, shard_bytes=SMALL_SHARDS)
    layout = after(write, "12", ["x"])

    assert (layout.version, layout.generation) == ("12", 5)
    assert layout.shards == write.kept | {"x"}
    assert ("binaryData", "inventory") not in layout.fields


def test_only_an_absurd_inventory_is_too_large() -> None:
    keys = [ResourceKey("", "ConfigMap", "shop", f"config-{n:06}") for n in range(50_000)]
    check_fits("shop", upper_bound(Inventory(), keys))

    with pytest.raises(InventoryTooLarge) as caught:
        check_fits("shop", big(MANY), limit=64 * 1024)
    assert str(caught.value).startswith("target shop: 2000 objects need a 0.2 MiB inventory")
    assert "(100 ConfigMaps, 75 MiB before compression); split the target" in str(caught.value)
