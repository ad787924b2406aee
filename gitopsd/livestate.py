"""Read the live objects a pass needs: one list call per kind, raw dicts.

Only what the target declares or owns is read (never a whole-cluster cache).
Declared objects missing from the owned lists are looked up individually when
few, or by one unfiltered list per kind when many (a first sync).
"""

from __future__ import annotations

from collections.abc import Sequence

from gitopsd.adapters.base import ClusterAdapter, KindInfo
from gitopsd.model import DesiredObject, LiveObject, ResourceKey

_INDIVIDUAL_LOOKUPS = 16


class LiveReader:
    """Discovery answers and live objects for one pass of one target."""

    def __init__(self, adapter: ClusterAdapter, target: str) -> None:
        self._adapter = adapter
        self._target = target
        self._infos: dict[tuple[str, str], KindInfo | None] = {}
        self._versions: dict[tuple[str, str], str] = {}

    def info_of(self, key: ResourceKey) -> KindInfo | None:
        """Discovery for the kind of `key`, at the version Git declares when it declares one."""
        pair = (key.group, key.kind)
        if self._infos.get(pair) is None:
            version = self._versions.get(pair)
            if version is not None:
                self._infos[pair] = self._adapter.kind_info(version, key.kind)
            else:
                self._infos[pair] = self._adapter.kind_by_group(key.group, key.kind)
        return self._infos[pair]

    def known(self, key: ResourceKey) -> bool:
        """Whether the server serves the kind of `key` (a CRD from this pass may not yet)."""
        return self.info_of(key) is not None

    def forget_unknown(self) -> None:
        """Ask discovery again for kinds that were missing (after CRDs were applied)."""
        self._infos = {pair: info for pair, info in self._infos.items() if info is not None}

    def read(
        self, desired: Sequence[DesiredObject], owned: frozenset[ResourceKey]
    ) -> dict[ResourceKey, LiveObject]:
        """Live objects of every kind the target declares or owns, keyed by ResourceKey."""
        for obj in desired:
            self._versions.setdefault((obj.key.group, obj.key.kind), obj.api_version)
        kinds: dict[tuple[str, str], KindInfo] = {}
        for key in [obj.key for obj in desired] + sorted(owned):
            info = self.info_of(key) if (key.group, key.kind) not in kinds else None
            if info is not None:
                kinds[(key.group, key.kind)] = info
        live: dict[ResourceKey, LiveObject] = {}
        for info in kinds.values():
            for current in self._adapter.list_owned(info, self._target):
                live[current.key] = current
        missing = [obj.key for obj in desired if obj.key not in live and self.known(obj.key)]
        live.update(self._find(missing))
        return live

    def _find(self, keys: Sequence[ResourceKey]) -> dict[ResourceKey, LiveObject]:
        """Declared objects that lack our labels: maybe absent, maybe made by someone else."""
        found: dict[ResourceKey, LiveObject] = {}
        if len(keys) <= _INDIVIDUAL_LOOKUPS:
            for key in keys:
                info = self.info_of(key)
                current = self._adapter.get(info, key) if info is not None else None
                if current is not None:
                    found[key] = current
            return found
        wanted = set(keys)
        by_kind: dict[tuple[str, str], list[ResourceKey]] = {}
        for key in keys:
            by_kind.setdefault((key.group, key.kind), []).append(key)
        for members in by_kind.values():
            info = self.info_of(members[0])
            assert info is not None
            for current in self._adapter.list_all(info, {key.namespace for key in members}):
                if current.key in wanted:
                    found[current.key] = current
        return found
