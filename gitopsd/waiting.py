"""Wait, after the writes, until what a revision declares is up, not only accepted.

A pass whose target sets `wait: true` polls every declared object through the adapter
until all are Current (healthy), one is Failed (degraded), or `health_timeout` runs out
(progressing). The rules are gitopsd.health's; time goes through the injected Clock so
tests drive it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from gitopsd.adapters.base import ClusterAdapter
from gitopsd.clock import Clock
from gitopsd.health import Health, ObjectHealth, assess
from gitopsd.model import DesiredObject
from gitopsd.passresult import ObjectStatus, PassOutcome

POLL_SECONDS = 1.0  # between two reads of every declared object


def read_health(
    adapter: ClusterAdapter, declared: Sequence[DesiredObject]
) -> tuple[ObjectStatus, ...]:
    """The health of every declared object as the cluster holds it now (one get each)."""
    statuses = []
    for obj in declared:
        info = adapter.kind_info(obj.api_version, obj.key.kind)
        if info is None:
            health = ObjectHealth(Health.NOT_FOUND, f"kind {obj.key.kind} unknown to the cluster")
        else:
            live = adapter.get(info, obj.key)
            health = assess(live.manifest if live is not None else None)
        statuses.append(ObjectStatus(obj.key, health))
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
