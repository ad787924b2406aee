"""How an Inventory is laid out over ConfigMaps: the pure half of the inventory store.

A target's inventory is a head ConfigMap, `gitopsd-inventory-<target>`, holding the
compressed document itself when it fits, or else naming the shard ConfigMaps,
`gitopsd-inventory-<target>.<generation>.<index>`, that hold it in pieces, with each
piece's SHA-256. A save never touches a shard the stored head names: it creates the
shards of a new generation, then swaps the head (compare-and-swap on its
resourceVersion), and only then deletes the shards no head names any longer. A pass
killed anywhere in between leaves the old head and its intact shards, or the new
ones: never a head naming a piece that is gone or half written, so no object the
inventory tracked is ever forgotten. Readers use only what the head names.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gitopsd.adapters import inventory_codec
from gitopsd.errors import InventoryError, InventoryTooLarge
from gitopsd.inventory import Inventory, StoredInventory
from gitopsd.model import (
    INVENTORY_LABEL,
    INVENTORY_PREFIX,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    Manifest,
)

# A ConfigMap's data and binaryData together hold at most 1 MiB (counted before base64),
# and etcd refuses an object past 1.5 MiB: 768 KiB a piece leaves room for metadata.
SHARD_BYTES = 768 * 1024
# Past this a target is absurd (some 600,000 objects): refused, not stored.
MAX_SHARDS = 100
# The uncompressed document, which bounds the compressed one, and what a reader expands.
MAX_DOCUMENT = MAX_SHARDS * SHARD_BYTES
FORMAT = "2"
_INLINE = "inventory"  # binaryData key of a head that holds the document itself
_PART = "part"  # binaryData key of a shard
_MIB = 1024 * 1024


def inventory_name(target: str) -> str:
    return f"{INVENTORY_PREFIX}{target}"


def shard_name(target: str, generation: int, index: int) -> str:
    # Target names are DNS labels, without dots: no shard name is another target's head.
    return f"{inventory_name(target)}.{generation}.{index}"


@dataclass(frozen=True)
class Layout:
    """A target's inventory ConfigMaps as last seen: what a save must write around."""

    version: str = ""  # the head's resourceVersion; "" when there is no head
    fields: frozenset[tuple[str, str]] = frozenset()  # (data or binaryData, key) in the head
    shards: frozenset[str] = frozenset()  # every shard of the target, named by the head or not
    generation: int = 0  # the highest generation of the head or of any shard


@dataclass(frozen=True)
class Write:
    """One save, in order: create `shards`, write `head`, then delete `stale`."""

    shards: tuple[Manifest, ...]
    head: Manifest  # a full ConfigMap to create, or a merge patch over `Layout.version`
    stale: tuple[str, ...]
    generation: int
    kept: frozenset[str]  # the shards the new head names


def read_listing(items: Iterable[Manifest]) -> dict[str, tuple[StoredInventory, Layout]]:
    """Every target's inventory and layout from one list of labelled ConfigMaps;
    InventoryError (naming the ConfigMap and the way out) for one that cannot be read."""
    heads, shards = _grouped(items)
    found: dict[str, tuple[StoredInventory, Layout]] = {}
    for owner in heads.keys() | shards.keys():
        head, pieces = heads.get(owner), shards.get(owner, {})
        stored = StoredInventory() if head is None else _stored(owner, head, pieces)
        found[owner] = (stored, _layout(owner, head, pieces))
    return found


def inventories_of(
    items: Iterable[Manifest], target: str
) -> tuple[StoredInventory, dict[str, StoredInventory]]:
    """`target`'s inventory and every other target's that has a head, from labelled
    ConfigMaps of one namespace as one list (or a watch's cache) gives them."""
    found = read_listing(items)
    own = found.pop(target, (StoredInventory(), Layout()))[0]
    return own, {owner: stored for owner, (stored, _) in found.items() if stored.version}


def layout_of(target: str, items: Iterable[Manifest]) -> Layout:
    """`target`'s layout from a list of labelled ConfigMaps, without reading the inventory."""
    heads, shards = _grouped(items)
    return _layout(target, heads.get(target), shards.get(target, {}))


def _grouped(
    items: Iterable[Manifest],
) -> tuple[dict[str, Manifest], dict[str, dict[str, Manifest]]]:
    heads: dict[str, Manifest] = {}
    shards: dict[str, dict[str, Manifest]] = {}
    for item in items:
        metadata = item.get("metadata") or {}
        owner = (metadata.get("labels") or {}).get(INVENTORY_LABEL, "")
        name = metadata.get("name", "")
        if owner and name == inventory_name(owner):
            heads[owner] = item
        elif owner and _shard_generation(owner, name) is not None:
            shards.setdefault(owner, {})[name] = item
        # anything else is a copy made by hand: nobody's inventory
    return heads, shards


def _stored(owner: str, head: Manifest, shards: Mapping[str, Manifest]) -> StoredInventory:
    version = str(head["metadata"].get("resourceVersion", ""))
    try:
        return StoredInventory(_decode_head(head, shards), version)
    except InventoryError as error:
        where = f"{head['metadata'].get('namespace', '')}/{inventory_name(owner)}"
        raise InventoryError(
            f"target {owner}: inventory {where} cannot be read ({error}); nothing is applied "
            "or pruned until it is fixed; deleting it (and its shards, named "
            f"{inventory_name(owner)}.*) starts a new inventory, and objects no longer "
            "declared are then left in place"
        ) from error


def _decode_head(head: Manifest, shards: Mapping[str, Manifest]) -> Inventory:
    data = head.get("data") or {}
    if "format" not in data:
        return inventory_codec.decode_legacy(data) if data else Inventory()
    if data["format"] != FORMAT:
        raise InventoryError(f"inventory format {data['format']!r} is not {FORMAT!r}")
    generation = data.get("generation", "")
    named = _named_shards(data.get("shards", ""))
    if not named:
        payload = _binary(head, _INLINE, "the head")
    else:
        payload = b"".join(_piece(shards, name, digest, generation) for name, digest in named)
    return inventory_codec.decode(payload, MAX_DOCUMENT)


def _named_shards(text: str) -> list[tuple[str, str]]:
    named = []
    for line in text.splitlines():
        name, _, digest = line.partition(" ")
        if not name or len(digest) != 64:
            raise InventoryError(f"shard line {line!r} is not `<name> <sha256>`")
        named.append((name, digest))
    return named


def _piece(shards: Mapping[str, Manifest], name: str, digest: str, generation: str) -> bytes:
    shard = shards.get(name)
    if shard is None:
        raise InventoryError(f"shard {name}, named by the head, is missing")
    found = (shard.get("data") or {}).get("generation")
    if found != generation:
        raise InventoryError(f"shard {name} is of generation {found!r}, the head's {generation!r}")
    piece = _binary(shard, _PART, f"shard {name}")
    if hashlib.sha256(piece).hexdigest() != digest:
        raise InventoryError(f"shard {name} does not match the SHA-256 the head records")
    return piece


def _binary(item: Manifest, key: str, what: str) -> bytes:
    text = (item.get("binaryData") or {}).get(key)
    if not isinstance(text, str):
        raise InventoryError(f"{what} has no binaryData.{key}")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as error:
        raise InventoryError(f"{what}: binaryData.{key} is not base64") from error


def _layout(owner: str, head: Manifest | None, shards: Mapping[str, Manifest]) -> Layout:
    generations = [_shard_generation(owner, name) or 0 for name in shards]
    if head is None:
        return Layout(shards=frozenset(shards), generation=max(generations, default=0))
    fields = frozenset(
        (section, key) for section in ("data", "binaryData") for key in head.get(section) or {}
    )
    own = (head.get("data") or {}).get("generation", "0")
    generations.append(int(own) if own.isdigit() else 0)
    return Layout(
        version=str(head["metadata"].get("resourceVersion", "")),
        fields=fields,
        shards=frozenset(shards),
        generation=max(generations),
    )


def _shard_generation(owner: str, name: str) -> int | None:
    prefix = f"{inventory_name(owner)}."
    if not name.startswith(prefix):
        return None
    generation, _, index = name[len(prefix) :].partition(".")
    return int(generation) if generation.isdigit() and index.isdigit() else None


def plan_write(
    target: str,
    namespace: str,
    inventory: Inventory,
    layout: Layout,
    shard_bytes: int = SHARD_BYTES,
) -> Write:
    """The requests that store `inventory` over `layout`: InventoryTooLarge past MAX_SHARDS."""
    check_fits(target, inventory)
    payload = inventory_codec.encode(inventory)
    generation = layout.generation + 1
    data = {"format": FORMAT, "generation": str(generation), "shards": ""}
    binary: dict[str, str] = {}
    shards: list[Manifest] = []
    if len(payload) <= shard_bytes:
        binary[_INLINE] = base64.b64encode(payload).decode()
    else:
        pieces = [payload[at : at + shard_bytes] for at in range(0, len(payload), shard_bytes)]
        _check_count(target, inventory, len(pieces))
        for index, piece in enumerate(pieces):
            shard = _configmap(target, namespace, shard_name(target, generation, index))
            shard["data"] = {"format": FORMAT, "generation": str(generation), "index": str(index)}
            shard["binaryData"] = {_PART: base64.b64encode(piece).decode()}
            shards.append(shard)
        data["shards"] = "\n".join(
            f"{shard['metadata']['name']} {hashlib.sha256(piece).hexdigest()}"
            for shard, piece in zip(shards, pieces, strict=True)
        )
    kept = frozenset(shard["metadata"]["name"] for shard in shards)
    return Write(
        shards=tuple(shards),
        head=_head(target, namespace, layout, data, binary),
        stale=tuple(sorted(layout.shards - kept)),
        generation=generation,
        kept=kept,
    )


def _head(
    target: str, namespace: str, layout: Layout, data: dict[str, str], binary: dict[str, str]
) -> Manifest:
    head = _configmap(target, namespace, inventory_name(target))
    if not layout.version:
        head["data"], head["binaryData"] = data, binary
        return head
    # A merge patch: only over the version read, and what the old head held is dropped.
    head["metadata"] = {"resourceVersion": layout.version, "labels": head["metadata"]["labels"]}
    patch: dict[str, dict[str, Any]] = {"data": dict(data), "binaryData": dict(binary)}
    for section, key in layout.fields:
        patch[section].setdefault(key, None)
    head.update(patch)
    del head["apiVersion"], head["kind"]
    return head


def _configmap(target: str, namespace: str, name: str) -> Manifest:
    labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, INVENTORY_LABEL: target}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
    }


def after(write: Write, version: str, undeleted: Iterable[str]) -> Layout:
    """The layout once `write` stored the head at `version` and deleted its stale shards
    but `undeleted`, which the next save tries again."""
    fields = frozenset(
        (section, key)
        for section in ("data", "binaryData")
        for key, value in (write.head.get(section) or {}).items()
        if value is not None
    )
    return Layout(version, fields, write.kept | frozenset(undeleted), write.generation)


def check_fits(target: str, inventory: Inventory, limit: int = MAX_DOCUMENT) -> None:
    """InventoryTooLarge when `inventory` could exceed MAX_SHARDS ConfigMaps."""
    size = len(inventory_codec.document(inventory))
    if size > limit:
        _too_large(target, inventory, f"a {size / _MIB:.1f} MiB inventory")


def _check_count(target: str, inventory: Inventory, count: int) -> None:
    if count > MAX_SHARDS:
        _too_large(target, inventory, f"{count} inventory ConfigMaps")


def _too_large(target: str, inventory: Inventory, need: str) -> None:
    raise InventoryTooLarge(
        f"target {target}: {len(inventory.tracked)} objects need {need}, more than gitopsd "
        f"keeps for one target ({MAX_SHARDS} ConfigMaps, {MAX_DOCUMENT // _MIB} MiB before "
        "compression); split the target"
    )
