"""Read the live objects a pass needs: one list call per kind, raw dicts.

Only what the target declares or owns is read (never a whole-cluster cache).
Declared objects missing from the owned lists are looked up individually when
few, or by one unfiltered list per kind when many (a first sync). Discovery
answers are the adapter's to cache; nothing here remembers them.
"""

from __future__ import annotations

from collections.abc import Sequence

from gitopsd.adapters.base import ClusterAdapter, KindInfo
from gitopsd.model import DesiredObject, LiveObject, ResourceKey

_INDIVIDUAL_LOOKUPS = 16


def kind_of(adapter: ClusterAdapter, key: ResourceKey, api_version: str = "") -> KindInfo | None:
    """Discovery for the kind of `key`: at `api_version` when Git declares one, else the
    server's preferred version; None when the server does not serve the kind (yet)."""
    if api_version:
        return adapter.kind_info(api_version, key.kind)
    return adapter.kind_by_group(key.group, key.kind)


def read_live(
    adapter: ClusterAdapter,
    target: str,
    desired: Sequence[DesiredObject],
    owned: frozenset[ResourceKey],
) -> dict[ResourceKey, LiveObject]:
    """Live objects of every kind the target declares or owns, keyed by ResourceKey."""
    versions: dict[tuple[str, str], str] = {}
    for obj in desired:
        versions.setdefault((obj.key.group, obj.key.kind), obj.api_version)
    kinds: dict[tuple[str, str], KindInfo | None] = {}
    namespaces: dict[tuple[str, str], set[str]] = {}
    for key in [obj.key for obj in desired] + sorted(owned):
        pair = (key.group, key.kind)
        if pair not in kinds:
            kinds[pair] = kind_of(adapter, key, versions.get(pair, ""))
        namespaces.setdefault(pair, set()).add(key.namespace)
    live: dict[ResourceKey, LiveObject] = {}
    for pair, info in kinds.items():
        # Only the namespaces the target declares or owns objects in need reading.
        for current in adapter.list_owned(info, target, namespaces[pair]) if info else ():
            live[current.key] = current
    missing = [
        obj.key for obj in desired if obj.key not in live and kinds[(obj.key.group, obj.key.kind)]
    ]
    live.update(_find(adapter, kinds, missing))
    return live


def _find(
    adapter: ClusterAdapter,
    kinds: dict[tuple[str, str], KindInfo | None],
    keys: Sequence[ResourceKey],
) -> dict[ResourceKey, LiveObject]:
    """Declared objects that lack our labels: maybe absent, maybe made by someone else."""
    found: dict[ResourceKey, LiveObject] = {}
    if len(keys) <= _INDIVIDUAL_LOOKUPS:
        for key in keys:
            info = kinds[(key.group, key.kind)]
            current = adapter.get(info, key) if info is not None else None
            if current is not None:
                found[key] = current
        return found
    wanted = set(keys)
    by_kind: dict[tuple[str, str], list[ResourceKey]] = {}
    for key in keys:
        by_kind.setdefault((key.group, key.kind), []).append(key)
    for pair, members in by_kind.items():
        info = kinds[pair]
        assert info is not None
        for current in adapter.list_all(info, {key.namespace for key in members}):
            if current.key in wanted:
                found[current.key] = current
    return found
