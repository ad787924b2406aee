"""Event-driven passes: shared watches per cluster, reads from their cache, drift -> pass.

The daemon's targets on one cluster share one watch per kind (adapters/watchcache.py).
A pass reads its live objects and inventories from those caches once they are synced
and have caught up with gitopsd's own writes, so a pass that finds nothing to do makes
no API request. A change by anyone else schedules a pass of the owning target after a
short debounce; an object that keeps being changed back is corrected ever more slowly
and reported once as a `drift_fight` (watchlogic.py holds those rules).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gitopsd.adapters.base import ClusterAdapter
from gitopsd.adapters.watchcache import ClusterWatches, WatchEvent, WatchState, key_of, version_of
from gitopsd.clock import SYSTEM_CLOCK, Clock
from gitopsd.config import TargetSettings
from gitopsd.errors import GitopsdError
from gitopsd.model import FIELD_MANAGER, ChangeSetEntry, ResourceKey
from gitopsd.notifications import Event, fight_event
from gitopsd.passresult import PassResult
from gitopsd.watchlogic import Coalescer, Fight, FightTracker
from gitopsd.watchread import Watched, WatchedCluster, WatchesFactory, owner_of

if TYPE_CHECKING:
    from gitopsd.journal import Journal

log = structlog.get_logger("gitopsd.watch")

_INVENTORY_KIND = ("", "ConfigMap")
_LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300)

Trigger = Callable[[str], object]  # run a target's pass as soon as it may


@dataclass
class _Target:
    settings: TargetSettings
    interval: float
    running: bool = False
    deferred: list[WatchEvent] = field(default_factory=list)  # arrived during its pass
    drifted: dict[ResourceKey, float] = field(default_factory=dict)  # first foreign event
    kinds: set[tuple[str, str]] = field(default_factory=set)  # read by its last pass to read
    reading: set[tuple[str, str]] = field(default_factory=set)  # by the pass in progress
    synced: bool | None = None  # whether the last pass read only from caches


class WatchHub:
    """The daemon's watches and event-triggered passes, for every cluster it reaches."""

    def __init__(
        self,
        clock: Clock = SYSTEM_CLOCK,
        journal: Journal | None = None,
        watches: WatchesFactory = ClusterWatches,  # tests pass a fake without a server
    ) -> None:
        self._clock = clock
        self._make_watches = watches
        self._journal = journal
        self._lock = threading.Lock()
        self._clusters: dict[tuple[Path | None, str | None], WatchedCluster] = {}
        self._targets: dict[str, _Target] = {}
        self._due = Coalescer()
        self._fights = FightTracker()
        self._trigger: Trigger | None = None
        self._publish: Callable[[Event], None] = lambda _event: None
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._timer = threading.Thread(target=self._fire_loop, name="watch-passes", daemon=True)
        self._timer.start()
        self.event_passes = Counter(
            "gitopsd_event_triggered_passes",
            "Passes asked for by a watch event (drift made by someone else)",
            ["target"],
            registry=None,
        )
        self.classified = Counter(
            "gitopsd_watch_object_events",
            "Watch events on a target's objects: echoes of gitopsd's own writes, or drift",
            ["target", "origin"],
            registry=None,
        )
        self.latency = Histogram(
            "gitopsd_drift_correction_seconds",
            "From a drift's watch event arriving to the end of the pass that corrected it",
            ["target"],
            buckets=_LATENCY_BUCKETS,
            registry=None,
        )

    def attach(
        self,
        trigger: Trigger,
        registry: CollectorRegistry | None = None,
        publish: Callable[[Event], None] = lambda _event: None,
    ) -> None:
        """Where due passes go (the daemon's trigger), the registry /metrics serves, and
        where a drift fight is told (the daemon's notification sinks)."""
        self._trigger = trigger
        self._publish = publish
        if registry is not None:
            for metric in (
                self.event_passes,
                self.classified,
                self.latency,
                _StateCollector(self),
            ):
                registry.register(metric)

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        with self._lock:
            clusters = list(self._clusters.values())
            self._clusters.clear()
        for cluster in clusters:
            cluster.watches.close()

    # -- targets and their passes -----------------------------------------

    def adapter(self, target: TargetSettings, inner: ClusterAdapter, interval: float) -> Watched:
        """`inner` reading through the cluster's watches for `target`."""
        identity = (target.cluster.kubeconfig, target.cluster.context)
        with self._lock:
            cluster = self._clusters.get(identity)
            if cluster is None:
                cluster = self._clusters[identity] = WatchedCluster(
                    target.cluster,
                    lambda event: self._on_event(identity, event),
                    self._make_watches,
                )
            self._targets[target.name] = _Target(target, interval)
        return Watched(inner, cluster, target, self.note_kind)

    def release(self, name: str) -> None:
        """`name` left the configuration (or was restarted): its watches may go."""
        with self._lock:
            self._targets.pop(name, None)
            self._due.forget(name)
        self._retire()

    @contextmanager
    def pass_of(self, name: str) -> Iterator[Callable[[PassResult], None]]:
        """Around one pass of `name`: events meanwhile wait for it to end; yields where the
        result goes, which counts corrections and fights."""
        with self._lock:
            state = self._targets.get(name)
            if state is not None:
                state.running, state.reading, state.synced = True, set(), None
        results: list[PassResult] = []
        try:
            yield results.append
        finally:
            self._ended(name, results[0] if results else None)

    def _ended(self, name: str, result: PassResult | None) -> None:
        now = self._clock.monotonic()
        with self._lock:
            state = self._targets.get(name)
            if state is None:
                return
            state.running = False
            if state.reading:  # a pass that failed before reading keeps the kinds watched
                state.kinds = state.reading
            deferred, state.deferred = state.deferred, []
            drifted, state.drifted = state.drifted, {}
        if result is not None:
            self._count_corrections(name, state, result, drifted, now)
        for event in deferred:
            self._on_event(self._identity(state.settings), event, replayed=True)
        self._retire()

    def _count_corrections(
        self,
        name: str,
        state: _Target,
        result: PassResult,
        drifted: Mapping[ResourceKey, float],
        now: float,
    ) -> None:
        for entry in result.changes.entries:
            arrived = drifted.get(entry.key)
            if arrived is None or not entry.action.wrote:
                continue
            self.latency.labels(name).observe(max(time.monotonic() - arrived, 0.0))
            with self._lock:  # the tracker is shared with the watch threads
                fight = self._fights.corrected(entry.key, now)
            if fight is not None:
                self._report_fight(name, entry, fight)

    def _report_fight(self, name: str, entry: ChangeSetEntry, fight: Fight) -> None:
        """Log, journal and notify a fight once, naming the fields and the other writers."""
        drift = entry.drift
        fields = list(drift.field_paths) if drift is not None else []
        managers = sorted(
            {o.manager for o in (drift.owners if drift else ()) if o.manager != FIELD_MANAGER}
            | set(entry.lost_managers)
        )
        detail = {
            "object": str(entry.key),
            **entry.key.as_dict(),
            "fields": fields,
            "managers": managers,
            "corrections": fight.corrections,
            "window_seconds": self._fights.window,
        }
        log.warning("drift_fight", target=name, **detail)
        at = self._clock.time()
        self._publish(fight_event(name, at, entry, fight.corrections, self._fights.window))
        if self._journal is None:
            return
        try:
            self._journal.record_event(target=name, at=at, event="drift_fight", detail=detail)
        except GitopsdError as error:
            log.warning("journal_failed", target=name, error=str(error))

    def fights(self, name: str) -> list[dict[str, Any]]:
        """The objects of `name` in a reported fight, for /status."""
        now = self._clock.monotonic()
        return [
            {"object": str(f.key), "corrections": f.corrections}
            for f in self._fighting(now)
            if self._owner_of(f.key) == name
        ]

    def _fighting(self, now: float) -> list[Fight]:
        with self._lock:
            return self._fights.fighting(now)

    def status(self, name: str) -> dict[str, Any] | None:
        """For /status: whether `name`'s next pass reads live state from synced caches
        (`cache`) or lists (`list`, with the kinds whose watch is not synced), whether its
        last pass did, and the objects it is fighting over."""
        with self._lock:
            state = self._targets.get(name)
            if state is None:
                return None
            kinds, last = sorted(state.kinds), state.synced
            cluster = self._clusters.get(self._identity(state.settings))
        unsynced = []
        for group, kind in kinds:
            watch = cluster.watches.get(group, kind) if cluster is not None else None
            if watch is None or watch.state is not WatchState.SYNCED:
                state_name = watch.state.value if watch is not None else "not started"
                unsynced.append(f"{kind}: {state_name}")
        return {
            "live_state": "list" if unsynced or not kinds else "cache",
            "unsynced": unsynced,
            "last_pass_from_cache": bool(last),
            "fighting": self.fights(name),
        }

    def problems(self) -> list[str]:
        """Watches that cannot reach their API server, for /readyz."""
        lines = []
        with self._lock:
            clusters = list(self._clusters.items())
        for (kubeconfig, context), cluster in clusters:
            lost = [w.info.kind for w in cluster.watches.all() if w.lost_since() is not None]
            if lost:
                where = f"{kubeconfig or 'in-cluster'}{f' ({context})' if context else ''}"
                lines.append(f"watches on {where} reconnecting: {', '.join(sorted(lost))}")
        return lines

    # -- events ------------------------------------------------------------

    def _on_event(
        self, identity: tuple[Path | None, str | None], event: WatchEvent, replayed: bool = False
    ) -> None:
        with self._lock:
            cluster = self._clusters.get(identity)
            name = _owner(event)
            state = self._targets.get(name) if name else None
            if cluster is None or state is None or self._identity(state.settings) != identity:
                return
            if state.running and not replayed:
                state.deferred.append(event)  # our own write may not be recorded yet
                return
        terminating = bool((event.obj.get("metadata") or {}).get("deletionTimestamp"))
        if cluster.own.is_own(event.type, event.key, version_of(event.obj), terminating):
            self.classified.labels(name, "own").inc()
            return
        self.classified.labels(name, "drift").inc()
        if not state.settings.watch.enabled:
            return
        now = self._clock.monotonic()
        with self._lock:
            backoff = self._fights.delay(event.key, now, state.interval)
            delay = max(state.settings.watch.debounce_seconds, backoff)
            state.drifted.setdefault(event.key, event.arrived)
            moved = self._due.add(name, now + delay)
        log.debug("watch_drift", target=name, type=event.type, **event.key.as_dict())
        if moved:
            self._wake.set()

    def _fire_loop(self) -> None:
        while not self._closed.is_set():
            with self._lock:
                now = self._clock.monotonic()
                ready = self._due.pop_due(now)
                upcoming = self._due.next_due()
            for name in ready:
                self._fire(name)
            wait = 0.0 if upcoming is None else max(upcoming - now, 0.0)
            if ready:
                continue
            # Nothing due: sleep until an event (a ManualClock must not run an hour ahead).
            woken = self._wake.wait() if upcoming is None else self._clock.wait(self._wake, wait)
            if woken:
                self._wake.clear()

    def _fire(self, name: str) -> None:
        trigger = self._trigger
        if trigger is None:
            return
        self.event_passes.labels(name).inc()
        with contextlib.suppress(KeyError):  # removed by a reload meanwhile
            trigger(name)

    # -- helpers -----------------------------------------------------------

    def _retire(self) -> None:
        """Stop the watches of kinds no target on their cluster needs any more."""
        with self._lock:
            needed: dict[tuple[Path | None, str | None], set[tuple[str, str]]] = {}
            for state in self._targets.values():
                kinds = needed.setdefault(self._identity(state.settings), {_INVENTORY_KIND})
                kinds |= state.kinds
            clusters = list(self._clusters.items())
        for identity, cluster in clusters:
            stopped = cluster.watches.retain(needed.get(identity, set()) | {_INVENTORY_KIND})
            if stopped:
                log.info("watches_stopped", kinds=stopped)

    def _identity(self, settings: TargetSettings) -> tuple[Path | None, str | None]:
        return (settings.cluster.kubeconfig, settings.cluster.context)

    def _owner_of(self, key: ResourceKey) -> str:
        with self._lock:
            clusters = list(self._clusters.values())
        for cluster in clusters:
            watch = cluster.watches.get(key.group, key.kind)
            if watch is not None:
                for obj in watch.objects():
                    if key_of(obj, key.group) == key:
                        return owner_of(obj)
        return ""

    def note_kind(self, name: str, pair: tuple[str, str], synced: bool) -> None:
        with self._lock:
            state = self._targets.get(name)
            if state is not None:
                state.kinds.add(pair)  # a new kind is watched from its first read
                state.reading.add(pair)
                state.synced = synced if state.synced is None else state.synced and synced


def _owner(event: WatchEvent) -> str:
    return owner_of(event.previous or event.obj) or owner_of(event.obj)


class _StateCollector(Collector):
    """Watch gauges and counters read at scrape time from the watches themselves."""

    def __init__(self, hub: WatchHub) -> None:
        self._hub = hub

    def collect(self) -> Iterator[Any]:
        open_ = GaugeMetricFamily(
            "gitopsd_watches_open", "Watches synced and streaming", labels=["cluster"]
        )
        objects = GaugeMetricFamily(
            "gitopsd_watch_cache_objects", "Objects held by the watch caches", labels=["cluster"]
        )
        events = CounterMetricFamily(
            "gitopsd_watch_events", "Watch events received, by type", labels=["cluster", "type"]
        )
        relists = CounterMetricFamily(
            "gitopsd_watch_relists", "Relists after 410 Gone", labels=["cluster"]
        )
        with self._hub._lock:
            clusters = list(self._hub._clusters.items())
        for (kubeconfig, context), cluster in clusters:
            name = f"{kubeconfig or 'in-cluster'}{f'#{context}' if context else ''}"
            watches = cluster.watches.all()
            open_.add_metric([name], sum(w.state is WatchState.SYNCED for w in watches))
            objects.add_metric([name], sum(len(w.objects()) for w in watches))
            stats = cluster.watches.stats.snapshot()
            for kind in ("added", "modified", "deleted", "bookmark"):
                events.add_metric([name, kind.upper()], stats.get(f"events_{kind}", 0))
            relists.add_metric([name], stats.get("relists", 0))
        yield from (open_, objects, events, relists)
