"""An Inventory as bytes: one gzip'd JSON document, about 45 bytes an object.

Pure. Format 1 (plain text in ConfigMap data, about 196 bytes an object, so one
ConfigMap held at most some 4,700 objects) is still read, so an inventory stored by
an older gitopsd is taken over as it is; it is never written.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any

from gitopsd.errors import InventoryError
from gitopsd.inventory import Inventory
from gitopsd.model import ResourceKey

# Level 1 compresses 50,000 objects in a quarter of the time of level 6 and is 4% larger:
# the SHA-256 hashes, 32 random bytes each, are most of what is left either way.
_LEVEL = 1
# gzip framing (wbits 16+): `file` and `zcat` recognise a shard taken out by hand.
_GZIP = 31
_OWNED, _CLAIMED, _ADOPTED = 1, 2, 4

# Format 1, as stored in a ConfigMap's data by gitopsd before sharding.
LEGACY_VERSION = "1"
_HASHES_KEY = "applied-hashes.json"
_CLAIMS_KEY = "claims.json"
_ADOPTED_KEY = "adopted.json"
_CLAIMED_AT_KEY = "claimed-at.json"
_LEGACY_EXTRA = (_HASHES_KEY, "revision", _CLAIMS_KEY, _ADOPTED_KEY, _CLAIMED_AT_KEY)


def encode(inventory: Inventory) -> bytes:
    """The compressed document: the revision, and one row per tracked object in key order."""
    return zlib.compress(document(inventory), _LEVEL, _GZIP)


def document(inventory: Inventory) -> bytes:
    """The document before compression; its length bounds the compressed size."""
    every = inventory.tracked | inventory.adopted | set(inventory.applied_hashes)
    rows = [_row(inventory, key) for key in every | set(inventory.claimed_at)]
    rows.sort()  # lists of strings compare in C; ResourceKeys a hundred times slower
    text = json.dumps({"revision": inventory.revision, "objects": rows}, separators=(",", ":"))
    return text.encode()


def _row(inventory: Inventory, key: ResourceKey) -> list[Any]:
    flags = (
        (_OWNED if key in inventory.keys else 0)
        | (_CLAIMED if key in inventory.claims else 0)
        | (_ADOPTED if key in inventory.adopted else 0)
    )
    row: list[Any] = [key.group, key.kind, key.namespace, key.name, flags]
    row.append(inventory.applied_hashes.get(key, ""))
    if key in inventory.claimed_at:
        row.append(inventory.claimed_at[key])
    return row


def decode(payload: bytes, limit: int) -> Inventory:
    """The Inventory in `payload` from `encode`; InventoryError when it is damaged or
    would expand past `limit` bytes (a bomb, not an inventory)."""
    inflate = zlib.decompressobj(_GZIP)
    try:
        text = inflate.decompress(payload, limit + 1)
    except zlib.error as error:
        raise InventoryError(f"not a gzip stream ({error})") from error
    if len(text) > limit or inflate.unconsumed_tail:
        raise InventoryError(f"expands past {limit // 1024 // 1024} MiB")
    if not inflate.eof:
        raise InventoryError("the gzip stream is cut short")
    try:
        return _inventory(json.loads(text))
    except (ValueError, TypeError, KeyError) as error:
        raise InventoryError(f"damaged document: {error!r}") from error


def _inventory(doc: dict[str, Any]) -> Inventory:
    keys: set[ResourceKey] = set()
    claims: set[ResourceKey] = set()
    adopted: set[ResourceKey] = set()
    hashes: dict[ResourceKey, str] = {}
    claimed_at: dict[ResourceKey, int] = {}
    for row in doc["objects"]:
        group, kind, namespace, name, flags, digest, *at = row
        key = ResourceKey(_text(group), _text(kind), _text(namespace), _text(name))
        if not (kind and name) or not isinstance(flags, int) or len(at) > 1:
            raise ValueError(f"malformed row {row!r}")
        for flag, found in ((_OWNED, keys), (_CLAIMED, claims), (_ADOPTED, adopted)):
            if flags & flag:
                found.add(key)
        if digest:
            hashes[key] = _text(digest)
        if at:
            claimed_at[key] = int(at[0])
    revision = _text(doc["revision"])
    return Inventory(
        frozenset(keys), hashes, revision, frozenset(claims), frozenset(adopted), claimed_at
    )


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    return value


def decode_legacy(data: Mapping[str, str]) -> Inventory:
    """The Inventory in ConfigMap data of format 1; InventoryError when it is damaged."""
    if data.get("version") != LEGACY_VERSION:
        raise InventoryError(f"inventory format version {data.get('version')!r} is unknown")
    try:
        keys = _legacy_keys(data.get("entries", ""))
        hashes = {
            ResourceKey(group, kind, namespace, name): digest
            for group, kind, namespace, name, digest in json.loads(data.get(_HASHES_KEY) or "[]")
        }
        claimed_at = {
            ResourceKey(group, kind, namespace, name): int(at)
            for group, kind, namespace, name, at in json.loads(data.get(_CLAIMED_AT_KEY) or "[]")
        }
        claims = _legacy_key_set(data.get(_CLAIMS_KEY))
        adopted = _legacy_key_set(data.get(_ADOPTED_KEY))
    except (ValueError, TypeError) as error:
        raise InventoryError(f"damaged: {error}") from error
    return Inventory(keys, hashes, data.get("revision", ""), claims, adopted, claimed_at)


def _legacy_keys(entries: str) -> frozenset[ResourceKey]:
    keys = set()
    for number, line in enumerate(entries.splitlines(), start=1):
        parts = line.split("|")
        if len(parts) != 4 or not parts[1] or not parts[3]:
            raise InventoryError(f"inventory entry {number} is malformed: {line!r}")
        keys.add(ResourceKey(*parts))
    return frozenset(keys)


def _legacy_key_set(text: str | None) -> frozenset[ResourceKey]:
    return frozenset(ResourceKey(*key) for key in json.loads(text or "[]"))


def legacy_keys() -> tuple[str, ...]:
    """Every data key format 1 may have used: a migrated inventory drops them."""
    return ("version", "entries", *_LEGACY_EXTRA)
