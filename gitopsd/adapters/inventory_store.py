"""How an Inventory is stored in a ConfigMap's data: the pure half of the inventory store."""

from __future__ import annotations

import json
from collections.abc import Mapping

from gitopsd import inventory as inventory_codec
from gitopsd.adapters.base import Inventory
from gitopsd.model import ResourceKey

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
    keys = inventory_codec.decode(
        {k: v for k, v in data.items() if k not in (_HASHES_KEY, _REVISION_KEY, _CLAIMS_KEY)}
    )
    claims = frozenset(ResourceKey(*key) for key in json.loads(data.get(_CLAIMS_KEY) or "[]"))
    hashes = {
        ResourceKey(group, kind, namespace, name): digest
        for group, kind, namespace, name, digest in json.loads(data.get(_HASHES_KEY) or "[]")
    }
    return Inventory(keys, hashes, data.get(_REVISION_KEY, ""), claims)


def _key_tuple(key: ResourceKey) -> tuple[str, str, str, str]:
    return (key.group, key.kind, key.namespace, key.name)
