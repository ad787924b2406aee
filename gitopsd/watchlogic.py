"""The rules of event-triggered passes, on plain data with times passed in.

Which watch events are gitopsd's own writes (the resourceVersion its apply returned),
when a target's pass is due (a short debounce that coalesces a burst), and when
correcting an object has become a fight with another writer: corrections back off
exponentially, and the fifth within five minutes is reported once. No clock, no
threads: watching.py feeds these and carries out what they decide.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from gitopsd.model import ResourceKey

FIGHT_WINDOW_SECONDS = 300.0
FIGHT_CORRECTIONS = 5
FIRST_BACKOFF_SECONDS = 1.0


class OwnWrites:
    """What gitopsd itself wrote and the watch has not echoed yet.

    An apply's answer carries the object's new resourceVersion; the watch event with that
    version is ours. A delete or a release has no version to match: the key's next
    DELETED event is ours. Thread-safe: passes record, watch threads consult.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[ResourceKey, set[int]] = {}
        self._deletes: set[ResourceKey] = set()

    def wrote(self, key: ResourceKey, version: int) -> None:
        with self._lock:
            self._versions.setdefault(key, set()).add(version)
            self._deletes.discard(key)

    def deleting(self, key: ResourceKey) -> None:
        with self._lock:
            self._deletes.add(key)

    def is_own(self, kind: str, key: ResourceKey, version: int, terminating: bool) -> bool:
        """Whether the event (`kind` ADDED/MODIFIED/DELETED) echoes one of our writes;
        consumes what it matches, and forgets our older versions of the key."""
        with self._lock:
            versions = self._versions.get(key, set())
            own = version in versions
            if versions:
                versions.difference_update({v for v in versions if v <= version})
                if not versions:
                    del self._versions[key]
            if key in self._deletes:
                if kind == "DELETED":
                    self._deletes.discard(key)
                    return True
                if terminating:  # a finalizer holds the object we deleted
                    return True
                if kind == "ADDED":
                    self._deletes.discard(key)  # someone made it again
            return own

    def caught_up(self, pair: tuple[str, str], seen: int, held: Iterable[ResourceKey]) -> bool:
        """Whether a cache of kind `pair` that reflects versions up to `seen` and holds `held`
        shows every write of ours to that kind (else a pass would read its own past)."""
        with self._lock:
            for key, versions in self._versions.items():
                if (key.group, key.kind) == pair and versions and max(versions) > seen:
                    return False
            deletes = {key for key in self._deletes if (key.group, key.kind) == pair}
        return not deletes or deletes.isdisjoint(held)


@dataclass
class Coalescer:
    """When each target's event-triggered pass is due: the first event of a burst sets it,
    later ones join it (an earlier due time wins)."""

    due: dict[str, float] = field(default_factory=dict)

    def add(self, target: str, at: float) -> bool:
        """Ask for a pass of `target` at `at`; True when that moved its due time."""
        current = self.due.get(target)
        if current is not None and current <= at:
            return False
        self.due[target] = at
        return True

    def pop_due(self, now: float) -> list[str]:
        ready = sorted(t for t, at in self.due.items() if at <= now)
        for target in ready:
            del self.due[target]
        return ready

    def next_due(self) -> float | None:
        return min(self.due.values(), default=None)

    def forget(self, target: str) -> None:
        self.due.pop(target, None)


@dataclass(frozen=True)
class Fight:
    """An object gitopsd keeps correcting and another writer keeps changing back."""

    key: ResourceKey
    corrections: int
    since: float


@dataclass
class FightTracker:
    """Corrections per object within the window: the back-off before the next one, and
    the fight to report, once, when they reach the threshold."""

    window: float = FIGHT_WINDOW_SECONDS
    threshold: int = FIGHT_CORRECTIONS
    first: float = FIRST_BACKOFF_SECONDS
    _times: dict[ResourceKey, list[float]] = field(default_factory=dict)
    _reported: set[ResourceKey] = field(default_factory=set)

    def delay(self, key: ResourceKey, now: float, cap: float) -> float:
        """How long to wait before correcting `key` again: 0, then 1s, 2s, 4s... up to `cap`."""
        count = len(self._recent(key, now))
        if count == 0:
            return 0.0
        return min(self.first * 2.0 ** (count - 1), cap)

    def corrected(self, key: ResourceKey, now: float) -> Fight | None:
        """Count one correction; the Fight when this one makes it a fight first reported."""
        times = self._recent(key, now)
        times.append(now)
        self._times[key] = times
        if len(times) < self.threshold or key in self._reported:
            return None
        self._reported.add(key)
        return Fight(key, len(times), times[0])

    def fighting(self, now: float) -> list[Fight]:
        """Reported fights still going (a correction within the window)."""
        fights = []
        for key in sorted(self._reported):
            times = self._recent(key, now)
            if times:
                fights.append(Fight(key, len(times), times[0]))
        return fights

    def _recent(self, key: ResourceKey, now: float) -> list[float]:
        times = [t for t in self._times.get(key, ()) if now - t < self.window]
        if times:
            self._times[key] = times
        else:  # quiet for a whole window: the fight is over
            self._times.pop(key, None)
            self._reported.discard(key)
        return times
