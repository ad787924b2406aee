"""How an Inventory is stored in a ConfigMap's data: the pure half of the inventory store."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from gitopsd.errors import InventoryError, InventoryTooLarge
from gitopsd.inventory import Inventory
from gitopsd.model import INVENTORY_PREFIX, ResourceKey

# A ConfigMap holds at most 1 MiB; leave room for metadata and the hashes' growth.
MAX_INVENTORY_BYTES = 900 * 1024

FORMAT_VERSION = "1"
# No part of a key (group, kind, namespace, name) may contain "|" or a line break.
_SEPARATOR = "|"
_HASHES_KEY = "applied-hashes.json"
_REVISION_KEY = "revision"
_CLAIMS_KEY = "claims.json"
# Added later: an inventory stored without them has none adopted and no pinned claims.
_ADOPTED_KEY = "adopted.json"
_CLAIMED_AT_KEY = "claimed-at.json"
_EXTRA_KEYS = (_HASHES_KEY, _REVISION_KEY, _CLAIMS_KEY, _ADOPTED_KEY, _CLAIMED_AT_KEY)


def inventory_name(target: str) -> str:
    return f"{INVENTORY_PREFIX}{target}"


def encode_keys(keys: Iterable[ResourceKey]) -> dict[str, str]:
    """ConfigMap data: a version and one sorted `group|kind|namespace|name` line per object."""
    lines = [_SEPARATOR.join(_key_tuple(k)) for k in sorted(set(keys))]
    return {"version": FORMAT_VERSION, "entries": "\n".join(lines)}


def decode_keys(data: Mapping[str, str]) -> frozenset[ResourceKey]:
    """The keys of ConfigMap data from `encode_keys`; empty data is an empty inventory."""
    if not data:
        return frozenset()
    version = data.get("version")
    if version != FORMAT_VERSION:
        raise InventoryError(f"inventory format version {version!r} is not {FORMAT_VERSION!r}")
    keys = set()
    for number, line in enumerate(data.get("entries", "").splitlines(), start=1):
        parts = line.split(_SEPARATOR)
        if len(parts) != 4 or not parts[1] or not parts[3]:
            raise InventoryError(f"inventory entry {number} is malformed: {line!r}")
        keys.add(ResourceKey(*parts))
    return frozenset(keys)


def encode_inventory(inventory: Inventory) -> dict[str, str]:
    data = encode_keys(inventory.keys)
    hashes = [
        [*_key_tuple(key), digest] for key, digest in sorted(inventory.applied_hashes.items())
    ]
    data[_HASHES_KEY] = json.dumps(hashes, separators=(",", ":"))
    data[_REVISION_KEY] = inventory.revision
    data[_CLAIMS_KEY] = json.dumps(sorted(_key_tuple(key) for key in inventory.claims))
    data[_ADOPTED_KEY] = json.dumps(sorted(_key_tuple(key) for key in inventory.adopted))
    pinned = [[*_key_tuple(key), at] for key, at in sorted(inventory.claimed_at.items())]
    data[_CLAIMED_AT_KEY] = json.dumps(pinned, separators=(",", ":"))
    return data


def decode_inventory(data: Mapping[str, str]) -> Inventory:
    """The Inventory stored in `data`; InventoryError when it is damaged."""
    try:
        keys = decode_keys({k: v for k, v in data.items() if k not in _EXTRA_KEYS})
        claims = _key_set(data.get(_CLAIMS_KEY))
        adopted = _key_set(data.get(_ADOPTED_KEY))
        hashes = {
            ResourceKey(group, kind, namespace, name): digest
            for group, kind, namespace, name, digest in json.loads(data.get(_HASHES_KEY) or "[]")
        }
        claimed_at = {
            ResourceKey(group, kind, namespace, name): int(at)
            for group, kind, namespace, name, at in json.loads(data.get(_CLAIMED_AT_KEY) or "[]")
        }
    except (ValueError, TypeError) as error:
        raise InventoryError(f"damaged: {error}") from error
    return Inventory(keys, hashes, data.get(_REVISION_KEY, ""), claims, adopted, claimed_at)


def _key_set(text: str | None) -> frozenset[ResourceKey]:
    return frozenset(ResourceKey(*key) for key in json.loads(text or "[]"))


def check_fits(target: str, inventory: Inventory) -> None:
    """InventoryTooLarge when `inventory` would not fit in one ConfigMap."""
    size = sum(len(k) + len(v.encode()) for k, v in encode_inventory(inventory).items())
    if size > MAX_INVENTORY_BYTES:
        raise InventoryTooLarge(
            f"target {target}: {len(inventory.keys)} objects need a {size // 1024} KiB "
            f"inventory, more than a ConfigMap holds ({MAX_INVENTORY_BYTES // 1024} KiB); "
            "split the target"
        )


def _key_tuple(key: ResourceKey) -> tuple[str, str, str, str]:
    return (key.group, key.kind, key.namespace, key.name)
