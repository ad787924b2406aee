"""Several replicas sharing the targets: the loop that keeps this replica's Leases.

Every retry_period: list the Leases, renew the heartbeat, then for each target take
the step leases.target_step gives (acquire, release, lost). Passes ask `fence`
before every write; it answers from memory (the heartbeat's last renewal and the
targets held), so a paused or cut-off replica stops at its next write without a
request. The Lease I/O is a LeaseStore (adapters/lease_store.py in production, an
in-memory one in the unit tests); the time comes from the injected clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from gitopsd.clock import SYSTEM_CLOCK, Clock
from gitopsd.errors import ConflictError, GitopsdError, NotOwnerError
from gitopsd.haconfig import HaSettings
from gitopsd.journal import Journal
from gitopsd.leases import (
    HEARTBEAT_PREFIX,
    LeaseTimes,
    LeaseView,
    Observer,
    Step,
    alive_by_wall_clock,
    assignment,
    fresh_heartbeats,
    heartbeat_name,
    may_write,
    target_lease_name,
    target_of,
    target_step,
)

log = structlog.get_logger(__name__)


class LeaseStore(Protocol):
    """The Leases of one namespace; `update` is a compare-and-swap on `lease.version`."""

    def list(self) -> list[LeaseView]: ...
    def create(self, name: str, holder: str, duration: float, now: float) -> LeaseView: ...
    def update(self, lease: LeaseView, holder: str, duration: float, now: float) -> LeaseView: ...
    def delete(self, lease: LeaseView) -> None: ...


class _HaMetrics:
    """Per-target holder gauges and the Lease request count, in the daemon's registry."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        registry = registry or CollectorRegistry()
        self.held = Gauge(
            "gitopsd_lease_held", "1 while this replica holds the target", ["target"],
            registry=registry,
        )  # fmt: skip
        self.since = Gauge(
            "gitopsd_lease_held_since_timestamp_seconds",
            "When the target's current holder acquired its Lease",
            ["target", "holder"],
            registry=registry,
        )
        self.replicas = Gauge(
            "gitopsd_ha_live_replicas", "Replicas whose heartbeat is fresh", registry=registry
        )
        self.requests = Counter(
            "gitopsd_lease_requests", "Lease API requests, by verb", ["verb"], registry=registry
        )
        self._holders: dict[str, str] = {}  # target -> the holder label its `since` carries

    def show(self, target: str, held: bool, lease: LeaseView | None) -> None:
        """One `since` series per target, labelled with its current holder."""
        self.held.labels(target).set(1 if held else 0)
        holder = lease.holder if lease is not None else ""
        shown = self._holders.pop(target, None)
        if shown is not None and shown != holder:
            self.since.remove(target, shown)
        if holder and lease is not None and lease.acquired_at is not None:
            self.since.labels(target, holder).set(lease.acquired_at)
            self._holders[target] = holder


class Coordinator:
    """This replica's heartbeat and target Leases; thread-safe."""

    def __init__(
        self,
        settings: HaSettings,
        store: LeaseStore,
        targets: Iterable[str],
        *,
        clock: Clock = SYSTEM_CLOCK,
        journal: Journal | None = None,
        registry: CollectorRegistry | None = None,
        on_acquired: Callable[[str], None] = lambda _name: None,
        busy: Callable[[str], bool] = lambda _name: False,
        on_lost: Callable[[str, str], None] = lambda _name, _reason: None,
        once: bool = False,
    ) -> None:
        self.identity = settings.identity
        self._times = LeaseTimes(
            settings.lease_duration_seconds,
            settings.renew_deadline_seconds,
            settings.retry_period_seconds,
        )
        self._store = store
        self._clock = clock
        self._journal = journal
        self._metrics = _HaMetrics(registry)
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self._busy = busy
        self._heartbeat_name = heartbeat_name(self.identity, once=once)
        self._lock = threading.Lock()  # guards everything below
        self._targets = frozenset(targets)
        self._held: dict[str, float] = {}  # target -> wall time acquired
        self._renewed_at: float | None = None  # monotonic start of the last renewal that worked
        self._leases: dict[str, LeaseView] = {}
        self._members: frozenset[str] = frozenset()
        self._observer = Observer()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what passes ask ------------------------------------------------------

    def owns(self, target: str) -> bool:
        with self._lock:
            return target in self._held and self._fresh(self._clock.monotonic())

    def fence(self, target: str) -> None:
        """Raise NotOwnerError unless this replica may write to `target` now."""
        if self.owns(target):
            return
        holder = self.holder(target)
        why = (
            "is handing its Lease over (the target moved)"
            if holder == self.identity
            else f"does not hold its Lease (holder: {holder or 'none'})"
        )
        raise NotOwnerError(
            f"target {target}: this replica ({self.identity}) {why}; nothing written, the "
            "holder reconciles it"
        )

    def owned(self, names: list[str], *, single: bool) -> list[str]:
        """Those of `names` this replica holds; for one name held elsewhere, NotOwnerError."""
        mine = [name for name in names if self.owns(name)]
        if single and not mine:
            holder = self.holder(names[0]) or "no replica yet"
            raise NotOwnerError(f"not owner, owned by {holder}")
        return mine

    def holder(self, target: str) -> str:
        with self._lock:
            lease = self._leases.get(target_lease_name(target))
        return lease.holder if lease is not None else ""

    def status(self) -> dict[str, Any]:
        """For /status: this replica, the live members, each target's holder and since."""
        with self._lock:
            leases = {t: self._leases.get(target_lease_name(t)) for t in sorted(self._targets)}
            fresh = self._fresh(self._clock.monotonic())
            return {
                "identity": self.identity,
                "replicas": sorted(self._members),
                "targets": {
                    t: {
                        "holder": lease.holder if lease is not None else "",
                        "since": lease.acquired_at if lease is not None else None,
                        "owned": fresh and t in self._held,  # as the fence answers
                    }
                    for t, lease in leases.items()
                },
            }

    # -- the loop -------------------------------------------------------------

    def start(self, *, targets: bool = True) -> None:
        """Run rounds every retry_period on a thread; `targets=False` (--once) only beats."""
        self._thread = threading.Thread(
            target=self._loop, args=(targets,), name="gitopsd-leases", daemon=True
        )
        self._thread.start()

    def _loop(self, targets: bool) -> None:
        while not self._halt.is_set():
            began = self._clock.monotonic()
            try:
                self.tick(targets=targets)
            except Exception:  # a bug must not end the heartbeat: fencing stops writes anyway
                log.exception("lease_round_crashed")
            # A round every retry_period, however long this one took.
            spent = self._clock.monotonic() - began
            self._clock.wait(self._halt, max(self._times.retry_period - spent, 0.0))

    def set_targets(self, targets: Iterable[str]) -> None:
        """After a reload: targets no longer configured are released at the next round."""
        with self._lock:
            self._targets = frozenset(targets)

    def tick(self, *, targets: bool = True) -> None:
        """One round: renew the heartbeat, then acquire, release or give up target Leases."""
        start = self._clock.monotonic()
        self._check_lapse(start)
        leases = self._list()
        if leases is None:
            return
        self._renew_heartbeat(leases, start)
        now = self._clock.monotonic()
        self._observer.observe(leases, now)
        fresh = fresh_heartbeats(leases, self._observer, now, self._times)
        live = frozenset(lease.holder for lease in fresh)
        members = {lease.holder for lease in fresh if lease.member}
        with self._lock:
            if self._fresh(now) and self._heartbeat_name.startswith(HEARTBEAT_PREFIX):
                members.add(self.identity)
            self._members = frozenset(members)
            self._leases = {lease.name: lease for lease in leases}
            wanted = self._targets
        self._metrics.replicas.set(len(members))
        if targets:
            # Acquiring stops after retry_period: the next round must renew the heartbeat
            # before what this one acquired is fenced (a loaded API server is slow to write).
            until = start + self._times.retry_period
            self._step_targets(wanted, live | {self.identity}, frozenset(members), until)

    def _check_lapse(self, start: float) -> None:
        """Held targets are given up once the heartbeat went unrenewed too long: another
        replica may have taken them while this one was paused or cut off."""
        with self._lock:
            if not self._held or self._fresh(start):
                return
            lost, self._held = list(self._held), {}
        waited = start - (self._renewed_at or start)
        for target in lost:
            self._lost(target, reason=f"heartbeat not renewed for {waited:.1f}s")

    def _fresh(self, now: float) -> bool:
        return may_write(self._renewed_at, now, self._times)

    def _list(self) -> list[LeaseView] | None:
        self._metrics.requests.labels("list").inc()
        try:
            return self._store.list()
        except GitopsdError as error:
            log.warning("lease_list_failed", error=str(error), identity=self.identity)
            return None

    def _renew_heartbeat(self, leases: list[LeaseView], start: float) -> None:
        mine = next((lease for lease in leases if lease.name == self._heartbeat_name), None)
        duration, wall = self._times.lease_duration, self._clock.time()
        try:
            if mine is None:
                self._metrics.requests.labels("create").inc()
                self._store.create(self._heartbeat_name, self.identity, duration, wall)
            else:
                self._metrics.requests.labels("update").inc()
                self._store.update(mine, self.identity, duration, wall)
        except GitopsdError as error:
            log.warning("heartbeat_renew_failed", error=str(error), identity=self.identity)
            return
        with self._lock:
            self._renewed_at = start  # when the request started: the conservative end

    def _step_targets(
        self, wanted: frozenset[str], live: frozenset[str], members: frozenset[str], until: float
    ) -> None:
        listed = {t for name in self._leases if (t := target_of(name)) is not None}
        owners = assignment(wanted, members)
        for target in sorted(wanted | listed):
            lease = self._leases.get(target_lease_name(target))
            desired = owners.get(target)
            with self._lock:
                held = target in self._held
            step = target_step(self.identity, desired, lease, held, live)
            if step is Step.ACQUIRE and self._clock.monotonic() < until:
                self._acquire(target, lease)
            elif step is Step.RELEASE:
                self._release(target, lease, to=desired)
            elif step is Step.LOST:
                with self._lock:
                    self._held.pop(target, None)
                self._lost(target, reason=f"held by {lease.holder if lease else 'nobody'}")
            self._show(target)

    def _show(self, target: str) -> None:
        with self._lock:
            held = target in self._held
            lease = self._leases.get(target_lease_name(target))
        self._metrics.show(target, held, lease)

    # -- transitions ----------------------------------------------------------

    def acquire(self, target: str) -> bool:
        """Take `target`'s Lease now if it is free or its holder is gone (used by --once)."""
        lease = self._leases.get(target_lease_name(target))
        if lease is not None and lease.holder not in ("", self.identity):
            beats = [x for x in self._leases.values() if x.heartbeat and x.holder == lease.holder]
            if any(alive_by_wall_clock(x, self._clock.time()) for x in beats):
                return False
        return self._acquire(target, lease)

    def _acquire(self, target: str, lease: LeaseView | None) -> bool:
        if self._halt.is_set() or not self.owns_heartbeat():
            return False
        name, wall = target_lease_name(target), self._clock.time()
        try:
            if lease is None:
                self._metrics.requests.labels("create").inc()
                taken = self._store.create(name, self.identity, self._times.lease_duration, wall)
            else:
                self._metrics.requests.labels("update").inc()
                taken = self._store.update(lease, self.identity, self._times.lease_duration, wall)
        except ConflictError:
            return False  # another replica was faster: its Lease is seen next round
        except GitopsdError as error:
            log.warning("lease_acquire_failed", target=target, error=str(error))
            return False
        with self._lock:
            self._held[target] = wall
            self._leases[name] = taken
        previous = lease.holder if lease is not None else ""
        log.info("lease_acquired", target=target, identity=self.identity, previous=previous)
        self._record(target, "lease_acquired", previous=previous)
        try:
            self._on_acquired(target)
        except GitopsdError as error:  # the pass is not started now; its interval starts it
            log.warning("lease_acquired_pass_not_started", target=target, error=str(error))
        return True

    def owns_heartbeat(self) -> bool:
        with self._lock:
            return self._fresh(self._clock.monotonic())

    def _release(self, target: str, lease: LeaseView | None, *, to: str | None) -> None:
        with self._lock:
            self._held.pop(target, None)  # fenced from here on, even while the release waits
        if lease is None or self._busy(target):
            return  # a pass is still ending its writes: released next round
        try:
            self._metrics.requests.labels("update").inc()
            released = self._store.update(lease, "", self._times.lease_duration, self._clock.time())
        except GitopsdError as error:
            log.warning("lease_release_failed", target=target, error=str(error))
            return
        with self._lock:
            self._leases[released.name] = released
        log.info("lease_released", target=target, identity=self.identity, to=to or "")
        self._record(target, "lease_released", to=to or "")

    def _lost(self, target: str, *, reason: str) -> None:
        log.warning("lease_lost", target=target, identity=self.identity, reason=reason)
        self._record(target, "lease_lost", reason=reason)
        self._on_lost(target, reason)

    def _record(self, target: str, event: str, **detail: str) -> None:
        if self._journal is None:
            return
        try:
            self._journal.record_event(
                target=target,
                at=self._clock.time(),
                event=event,
                detail={"identity": self.identity, **detail},
            )
        except GitopsdError as error:  # the Lease is the truth; the journal only tells
            log.warning("lease_journal_failed", target=target, error=str(error))

    # -- shutdown -------------------------------------------------------------

    def stop(self) -> None:
        """Stop the loop; then `release_all` hands the targets over at once."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=self._times.retry_period + 30.0)

    def release_all(self) -> None:
        """Release every target held and drop the heartbeat (SIGTERM, end of --once)."""
        with self._lock:
            held = list(self._held)
        for target in held:
            self._release(target, self._leases.get(target_lease_name(target)), to=None)
        leases = self._list() or []
        mine = next((lease for lease in leases if lease.name == self._heartbeat_name), None)
        if mine is not None:
            try:
                self._metrics.requests.labels("delete").inc()
                self._store.delete(mine)
            except GitopsdError as error:
                log.warning("heartbeat_delete_failed", error=str(error))
