"""How an Inventory is stored in a ConfigMap's data: the pure half of the inventory store."""

from __future__ import annotations

import json
from collections.abc import Mapping

from gitopsd import inventory as inventory_codec
from gitopsd.adapters.base import Inventory
from gitopsd.errors import InventoryError
from gitopsd.model import ResourceKey

# A ConfigMap holds at most 1 MiB; leave room for metadata and the hashes' growth.
MAX_INVENTORY_BYTES = 900 * 1024

_HASHES_KEY = "applied-hashes.json"
_REVISION_KEY = "revision"
_CLAIMS_KEY = "claims.json"


def inventory_name(target: str) -> str:
    return f"gitopsd-inventory-{target}"


def encode_inventory(inventory: Inventory) -> dict[str, str]:
    data = dict(inventory_codec.encode(inventory.keys))
    hashes = [
        [*_key_tuple(key), digest] for key, digest in sorted(inventory.applied_hashes.items())
    ]
    data[_HASHES_KEY] = json.dumps(hashes, separators=(",", ":"))
    data[_REVISION_KEY] = inventory.revision
    data[_CLAIMS_KEY] = json.dumps(sorted(_key_tuple(key) for key in inventory.claims))
    return data


def decode_inventory(data: Mapping[str, str]) -> Inventory:
    """The Inventory stored in `data`; InventoryError when it is damaged."""
    try:
        keys = inventory_codec.decode(
            {k: v for k, v in data.items() if k not in (_HASHES_KEY, _REVISION_KEY, _CLAIMS_KEY)}
        )
        claims = frozenset(ResourceKey(*key) for key in json.loads(data.get(_CLAIMS_KEY) or "[]"))
        hashes = {
            ResourceKey(group, kind, namespace, name): digest
            for group, kind, namespace, name, digest in json.loads(data.get(_HASHES_KEY) or "[]")
        }
    except (ValueError, TypeError) as error:
        raise InventoryError(f"damaged: {error}") from error
    return Inventory(keys, hashes, data.get(_REVISION_KEY, ""), claims)


def check_size(target: str, keys: frozenset[ResourceKey]) -> None:
    """InventoryError when the inventory of `keys` would not fit in one ConfigMap."""
    sample = Inventory(keys, dict.fromkeys(keys, "0" * 64), "0" * 40, keys)
    size = sum(len(k) + len(v.encode()) for k, v in encode_inventory(sample).items())
    if size > MAX_INVENTORY_BYTES:
        raise InventoryError(
            f"target {target}: {len(keys)} objects need a {size // 1024} KiB inventory, more "
            f"than a ConfigMap holds ({MAX_INVENTORY_BYTES // 1024} KiB); split the target"
        )


def _key_tuple(key: ResourceKey) -> tuple[str, str, str, str]:
    return (key.group, key.kind, key.namespace, key.name)
