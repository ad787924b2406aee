"""Who owns which target among several replicas: the pure rules behind the Leases.

One Lease per replica is its heartbeat; one per target names its holder. A holder
stays valid while its heartbeat is fresh, so an idle replica spends two requests
per retry period whatever the number of targets (renew its heartbeat, list the
Leases) instead of one per target. Expiry is judged the way client-go does: by how
long a Lease has gone unchanged on this replica's own monotonic clock, never by
comparing another host's timestamps. The I/O is in adapters/lease_store.py, the
loop in coordinator.py; everything here is plain data and a `now` passed in.
"""

from __future__ import annotations

import enum
import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

HEARTBEAT_PREFIX = "gitopsd-replica-"
ONCE_PREFIX = "gitopsd-once-"  # a `--once` run: alive while it holds targets, never a member
TARGET_PREFIX = "gitopsd-target-"
_NOT_NAME = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class LeaseTimes:
    """The `ha:` timings, in seconds."""

    lease_duration: float
    renew_deadline: float
    retry_period: float


@dataclass(frozen=True)
class LeaseView:
    """One Lease as read: `holder` is empty once released; `version` its resourceVersion."""

    name: str
    holder: str
    version: str
    acquired_at: float | None = None  # wall time, for display only
    renewed_at: float | None = None  # wall time: only `--once` reads it (it cannot watch)
    duration: float = 0.0
    transitions: int = 0

    @property
    def heartbeat(self) -> bool:
        return self.name.startswith((HEARTBEAT_PREFIX, ONCE_PREFIX))

    @property
    def member(self) -> bool:
        """A daemon replica's heartbeat: it takes part in the assignment."""
        return self.name.startswith(HEARTBEAT_PREFIX)


def heartbeat_name(identity: str, *, once: bool = False) -> str:
    """The heartbeat Lease of `identity`: a valid object name, unique through a hash."""
    prefix = ONCE_PREFIX if once else HEARTBEAT_PREFIX
    readable = _NOT_NAME.sub("-", identity.lower()).strip("-")[:40]
    digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
    return f"{prefix}{readable}-{digest}" if readable else f"{prefix}{digest}"


def target_lease_name(target: str) -> str:
    return f"{TARGET_PREFIX}{target}"


def target_of(lease_name: str) -> str | None:
    return lease_name.removeprefix(TARGET_PREFIX) if lease_name.startswith(TARGET_PREFIX) else None


def _score(replica: str, target: str) -> bytes:
    return hashlib.sha256(f"{replica}\0{target}".encode()).digest()


def assignment(targets: Iterable[str], replicas: Iterable[str]) -> dict[str, str | None]:
    """Rendezvous hashing with bounded loads: each (target, replica) pair scored by a hash,
    best pairs first, no replica above ceil(targets / replicas). Every replica computing it
    from the same members gets the same answer; a replica joining or leaving moves about
    its share of targets and few more; 3 replicas with 9 targets hold 3 each."""
    names, members = sorted(set(targets)), sorted(set(replicas))
    if not members:
        return dict.fromkeys(names)
    cap = math.ceil(len(names) / len(members))
    pairs = sorted(((_score(r, t), r, t) for r in members for t in names), reverse=True)
    owners: dict[str, str | None] = {}
    load: Counter[str] = Counter()
    for _, replica, target in pairs:
        if target not in owners and load[replica] < cap:
            owners[target] = replica
            load[replica] += 1
    return owners


def may_write(renewed_at: float | None, now: float, times: LeaseTimes) -> bool:
    """The fence: the heartbeat, renewed at `renewed_at` (when that request started), has at
    least renew_deadline - retry_period left; after that another replica may soon take over."""
    if renewed_at is None:
        return False
    left = renewed_at + times.lease_duration - now
    return left >= times.renew_deadline - times.retry_period


class Observer:
    """When each Lease was last seen to change, on this replica's monotonic clock."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, float]] = {}

    def observe(self, leases: Iterable[LeaseView], now: float) -> None:
        current = {lease.name: lease for lease in leases}
        for name, lease in current.items():
            seen = self._seen.get(name)
            if seen is None or seen[0] != lease.version:
                self._seen[name] = (lease.version, now)
        for name in set(self._seen) - set(current):
            del self._seen[name]

    def unchanged_for(self, name: str, now: float) -> float:
        seen = self._seen.get(name)
        return 0.0 if seen is None else now - seen[1]


def fresh_heartbeats(
    leases: Iterable[LeaseView], observer: Observer, now: float, times: LeaseTimes
) -> tuple[LeaseView, ...]:
    """Heartbeats seen to change within the last lease_duration."""
    return tuple(
        lease
        for lease in leases
        if lease.heartbeat
        and lease.holder
        and observer.unchanged_for(lease.name, now) < times.lease_duration
    )


def alive_by_wall_clock(lease: LeaseView, now: float) -> bool:
    """For `--once`, which cannot watch a Lease change: renewed within its duration by the
    wall clock (so clocks of the hosts must agree to within a few seconds)."""
    return bool(lease.holder) and (lease.renewed_at or 0.0) + lease.duration > now


class Step(enum.Enum):
    """What this replica does about one target's Lease this round."""

    NONE = "none"
    ACQUIRE = "acquire"  # free, expired, or ours on record but not held here
    RELEASE = "release"  # ours, and the target now belongs to another replica
    LOST = "lost"  # held here, but the Lease names someone else


def target_step(
    me: str,
    desired: str | None,
    lease: LeaseView | None,
    held: bool,
    live: frozenset[str],
) -> Step:
    """The transition for one target, from the Lease as listed and the local view."""
    holder = lease.holder if lease is not None else ""
    if held and holder != me:
        return Step.LOST
    if desired != me:
        return Step.RELEASE if holder == me else Step.NONE
    if held:
        return Step.NONE
    if holder in ("", me) or holder not in live:
        return Step.ACQUIRE
    return Step.NONE  # another live replica holds it: it releases it, or expires
