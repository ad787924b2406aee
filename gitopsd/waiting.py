"""Wait, after the writes, until what a revision declares is up, not only accepted.

A pass whose target sets `wait: true` polls every declared object through the adapter
until all are Current (healthy), one is Failed (degraded), or `health_timeout` runs out
(progressing). The rules are gitopsd.health's; time goes through the injected Clock so
tests drive it. With sync waves (gitopsd.waves) the pass also waits between two waves;
one `health_timeout` bounds all the waiting of a pass.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from gitopsd.adapters.base import ClusterAdapter
from gitopsd.clock import Clock
from gitopsd.health import Health, ObjectHealth, assess
from gitopsd.model import ChangeSet, DesiredObject, LiveObject, Manifest, ResourceKey
from gitopsd.passresult import ObjectStatus, PassOutcome
from gitopsd.waves import declared_in, waves_of

POLL_SECONDS = 1.0  # between two reads of every declared object


def read_health(
    adapter: ClusterAdapter, declared: Sequence[DesiredObject]
) -> tuple[ObjectStatus, ...]:
    """The health of every declared object as the cluster holds it now (one get each)."""
    statuses: list[ObjectStatus] = []
    for obj in declared:
        info = adapter.kind_info(obj.api_version, obj.key.kind)
        if info is None:
            health = ObjectHealth(Health.NOT_FOUND, f"kind {obj.key.kind} unknown to the cluster")
        else:
            live = adapter.get(info, obj.key)
            health = assess(live.manifest if live is not None else None)
        statuses.append(ObjectStatus(obj.key, health))
    return tuple(statuses)


def last_known(
    adapter: ClusterAdapter,
    declared: Sequence[DesiredObject],
    live: Mapping[ResourceKey, LiveObject],
    changes: ChangeSet,
    returned: Mapping[ResourceKey, Manifest],
) -> tuple[ObjectStatus, ...]:
    """Each declared object's health once, without waiting (a target without `wait`): from
    what the server returned for the objects the pass wrote, else from the pass's own live
    read; a get only for an object written without an answer kept, or not read at all."""
    written = {e.key for e in changes.entries if e.action.wrote}
    statuses: list[ObjectStatus] = []
    for obj in declared:
        current = returned.get(obj.key)
        if current is None and obj.key not in written and obj.key in live:
            current = live[obj.key].manifest
        if current is None:
            statuses += read_health(adapter, (obj,))
        else:
            statuses.append(ObjectStatus(obj.key, assess(current)))
    return tuple(statuses)


def verdict(statuses: Sequence[ObjectStatus]) -> PassOutcome | None:
    """DEGRADED when one object Failed, HEALTHY when all are Current, None while waiting."""
    if any(s.health.status is Health.FAILED for s in statuses):
        return PassOutcome.DEGRADED
    if all(s.health.status is Health.CURRENT for s in statuses):
        return PassOutcome.HEALTHY
    return None


def await_health(
    adapter: ClusterAdapter,
    declared: Sequence[DesiredObject],
    *,
    timeout: float,
    clock: Clock,
    stop: threading.Event,
) -> tuple[PassOutcome, tuple[ObjectStatus, ...]]:
    """Poll until healthy, degraded, or `timeout` seconds (then PROGRESSING).

    Setting `stop` (shutdown) ends the wait at once, as PROGRESSING with the last reading.
    """
    deadline = clock.monotonic() + timeout
    while True:
        statuses = read_health(adapter, declared)
        outcome = verdict(statuses)
        if outcome is not None:
            return outcome, statuses
        remaining = deadline - clock.monotonic()
        if remaining <= 0 or clock.wait(stop, min(POLL_SECONDS, remaining)):
            return PassOutcome.PROGRESSING, statuses


class WaveWaits:
    """The health waits of one waiting pass: `gate` between waves (for apply_plan), then
    `final` after the writes, all under one deadline that starts at the first wait."""

    def __init__(
        self,
        adapter: ClusterAdapter,
        declared: Sequence[DesiredObject],
        *,
        timeout: float,
        clock: Clock,
        stop: threading.Event,
    ) -> None:
        self._adapter, self._declared, self._clock, self._stop = adapter, declared, clock, stop
        self._timeout = timeout
        self._waves = waves_of(declared)
        self._deadline: float | None = None
        # Set when a wave did not become healthy: the pass's outcome, later waves unwritten.
        self.held: tuple[PassOutcome, tuple[ObjectStatus, ...]] | None = None

    def gate(self, wave: int) -> bool:
        """Wait until `wave`'s objects are healthy; False (and `held` set) if they are not."""
        objects = declared_in(self._declared, self._waves, wave)
        outcome, statuses = self._await(objects)
        if outcome is PassOutcome.HEALTHY:
            return True
        self.held = (outcome, statuses)
        return False

    def final(self) -> tuple[PassOutcome, tuple[ObjectStatus, ...]]:
        """The pass's outcome: the wave that held it back, else every object's health."""
        return self.held if self.held is not None else self._await(self._declared)

    def _await(
        self, objects: Sequence[DesiredObject]
    ) -> tuple[PassOutcome, tuple[ObjectStatus, ...]]:
        if self._deadline is None:
            self._deadline = self._clock.monotonic() + self._timeout
        remaining = max(self._deadline - self._clock.monotonic(), 0.0)
        return await_health(
            self._adapter, objects, timeout=remaining, clock=self._clock, stop=self._stop
        )
