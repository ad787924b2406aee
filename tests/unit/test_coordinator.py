"""The Lease rounds of several replicas on one in-memory Lease store, driven by a ManualClock."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from gitopsd.clock import ManualClock
from gitopsd.coordinator import Coordinator
from gitopsd.errors import ClusterUnreachableError, ConflictError, NotOwnerError
from gitopsd.haconfig import HaSettings
from gitopsd.journal import Journal
from gitopsd.leases import LeaseView

TARGETS = [f"t{n}" for n in range(9)]


class MemoryLeases:
    """Leases with resourceVersions and compare-and-swap, as the API server keeps them."""

    def __init__(self) -> None:
        self.leases: dict[str, LeaseView] = {}
        self._versions = itertools.count(1)
        self.writes: list[tuple[str, str]] = []  # (lease, holder) in order

    def list(self) -> list[LeaseView]:
        return list(self.leases.values())

    def create(self, name: str, holder: str, duration: float, now: float) -> LeaseView:
        if name in self.leases:
            raise ConflictError(f"{name} exists")
        return self._put(LeaseView(name, holder, "", now, now, duration))

    def update(self, lease: LeaseView, holder: str, duration: float, now: float) -> LeaseView:
        current = self.leases.get(lease.name)
        if current is None or current.version != lease.version:
            raise ConflictError(f"{lease.name} changed")
        acquired = current.acquired_at if holder == current.holder else now
        return self._put(LeaseView(lease.name, holder, "", acquired, now, duration))

    def delete(self, lease: LeaseView) -> None:
        self.leases.pop(lease.name, None)

    def _put(self, lease: LeaseView) -> LeaseView:
        stored = LeaseView(
            lease.name, lease.holder, str(next(self._versions)), lease.acquired_at,
            lease.renewed_at, lease.duration,
        )  # fmt: skip
        self.leases[lease.name] = stored
        self.writes.append((lease.name, lease.holder))
        return stored


class Link:
    """One replica's connection to the store, which a test can cut."""

    def __init__(self, store: MemoryLeases) -> None:
        self.store, self.cut = store, False

    def __getattr__(self, verb: str) -> object:
        if self.cut:
            raise ClusterUnreachableError("cut off")
        return getattr(self.store, verb)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store() -> MemoryLeases:
    return MemoryLeases()


def _replica(
    name: str,
    store: MemoryLeases,
    clock: ManualClock,
    journal: Journal | None = None,
    on_lost: Callable[[str, str], None] = lambda _name, _reason: None,
) -> tuple[Coordinator, Link]:
    link = Link(store)
    settings = HaSettings(identity=name)
    coordinator = Coordinator(
        settings, link, TARGETS, clock=clock, journal=journal, on_lost=on_lost
    )
    return coordinator, link


def _rounds(replicas: list[Coordinator], clock: ManualClock, n: int = 3) -> None:
    for _ in range(n):
        for replica in replicas:
            replica.tick()
        clock.advance(2.0)


def _owners(replicas: list[Coordinator]) -> dict[str, list[str]]:
    return {t: [r.identity for r in replicas if r.owns(t)] for t in TARGETS}


def test_three_replicas_share_nine_targets_each_owned_once(
    store: MemoryLeases, clock: ManualClock
) -> None:
    replicas = [_replica(n, store, clock)[0] for n in ("a", "b", "c")]
    _rounds(replicas, clock)
    owners = _owners(replicas)
    assert all(len(held) == 1 for held in owners.values()), owners
    counts = Counter(held[0] for held in owners.values())
    assert set(counts) == {"a", "b", "c"}
    for target, (owner,) in owners.items():
        for replica in replicas:
            if replica.identity != owner:
                with pytest.raises(NotOwnerError, match=f"holder: {owner}"):
                    replica.fence(target)


def test_a_silent_replicas_targets_are_taken_over_after_lease_duration(
    store: MemoryLeases, clock: ManualClock
) -> None:
    replicas = [_replica(n, store, clock)[0] for n in ("a", "b", "c")]
    _rounds(replicas, clock)
    held_by_c = [t for t in TARGETS if replicas[2].owns(t)]
    survivors = replicas[:2]
    _rounds(survivors, clock, n=3)  # 6s: c's heartbeat still looks fresh
    assert not any(r.owns(t) for r in survivors for t in held_by_c)
    _rounds(survivors, clock, n=6)  # past 15s unchanged
    owners = _owners(survivors)
    assert all(len(owners[t]) == 1 for t in TARGETS), owners


def test_a_replica_that_cannot_renew_is_fenced_and_loses_once(
    store: MemoryLeases, clock: ManualClock, tmp_path: Path
) -> None:
    journal = Journal.open(tmp_path)
    told: list[tuple[str, str]] = []  # what the daemon's notification sinks are given
    a, link = _replica("a", store, clock, journal, on_lost=lambda t, why: told.append((t, why)))
    a.tick()
    clock.advance(1.0)
    assert all(a.owns(t) for t in TARGETS)
    link.cut = True
    clock.advance(6.0)  # 7s since the renewal started: still allowed
    a.tick()
    a.fence("t0")
    clock.advance(0.5)
    with pytest.raises(NotOwnerError):
        a.fence("t0")  # fenced from memory, before any round notices
    for _ in range(3):
        a.tick()
        clock.advance(2.0)
    lost = [e for e in journal.events() if e["event"] == "lease_lost"]
    assert sorted(e["target"] for e in lost) == TARGETS  # once each
    assert sorted(t for t, _ in told) == TARGETS
    assert all(why.startswith("heartbeat not renewed for") for _, why in told), told
    link.cut = False
    a.tick()  # renewed: the Leases, still naming a, are taken back through a write
    assert all(a.owns(t) for t in TARGETS)
    journal.close()


def test_a_paused_replica_does_not_write_after_the_others_took_over(
    store: MemoryLeases, clock: ManualClock
) -> None:
    a, _ = _replica("a", store, clock)
    b, _ = _replica("b", store, clock)
    _rounds([a, b], clock)
    mine = [t for t in TARGETS if a.owns(t)]
    assert mine
    _rounds([b], clock, n=9)  # a is paused for 18s
    assert all(b.owns(t) for t in TARGETS)
    for target in mine:  # a resumes: its worker reaches a write before its next round
        with pytest.raises(NotOwnerError):
            a.fence(target)
    a.tick()  # renews its heartbeat, but the targets it held are gone
    assert not any(a.owns(t) for t in mine)


def test_release_all_hands_targets_over_at_the_next_round(
    store: MemoryLeases, clock: ManualClock
) -> None:
    replicas = [_replica(n, store, clock)[0] for n in ("a", "b", "c")]
    _rounds(replicas, clock)
    leaving = replicas[2]
    held = [t for t in TARGETS if leaving.owns(t)]
    leaving.stop()
    leaving.release_all()
    for replica in replicas[:2]:
        replica.tick()
    owners = _owners(replicas[:2])
    assert all(len(owners[t]) == 1 for t in held), owners


def test_a_joining_replica_takes_only_the_targets_it_wins(
    store: MemoryLeases, clock: ManualClock
) -> None:
    replicas = [_replica(n, store, clock)[0] for n in ("a", "b")]
    _rounds(replicas, clock)
    before = {t: _owners(replicas)[t][0] for t in TARGETS}
    replicas.append(_replica("c", store, clock)[0])
    _rounds(replicas, clock, n=4)
    after = {t: _owners(replicas)[t] for t in TARGETS}
    assert all(len(held) == 1 for held in after.values())
    moved = [t for t in TARGETS if after[t][0] != before[t]]
    assert moved and all(after[t] == ["c"] for t in moved)
    handed = [w for w in store.writes if w[0].startswith("gitopsd-target-") and w[1] == "c"]
    assert len(handed) == len(moved)  # each moved once


def test_a_busy_target_is_fenced_at_once_but_released_after_its_pass(
    store: MemoryLeases, clock: ManualClock
) -> None:
    busy: set[str] = set()
    a = Coordinator(HaSettings(identity="a"), store, TARGETS, clock=clock, busy=busy.__contains__)
    _rounds([a], clock, n=1)
    busy.update(TARGETS)  # every pass of a still running
    b, _ = _replica("b", store, clock)
    _rounds([a, b], clock, n=3)
    moving = [t for t in TARGETS if not a.owns(t)]
    assert moving  # fenced at a at once...
    assert not any(b.owns(t) for t in moving)  # ...but not handed over mid-pass
    with pytest.raises(NotOwnerError, match=r"\(a\) is handing its Lease over"):
        a.fence(moving[0])
    busy.clear()
    _rounds([a, b], clock, n=2)
    assert all(b.owns(t) for t in moving)


def test_once_skips_a_target_held_by_a_live_replica(
    store: MemoryLeases, clock: ManualClock
) -> None:
    a, _ = _replica("a", store, clock)
    _rounds([a], clock, n=1)
    once = Coordinator(HaSettings(identity="cron"), store, TARGETS, clock=clock, once=True)
    once.tick(targets=False)
    assert not once.acquire("t0")
    assert once.holder("t0") == "a"
    a.stop()
    a.release_all()
    once.tick(targets=False)
    assert once.acquire("t0")
    once.fence("t0")


class SlowLeases(MemoryLeases):
    """Every write takes `latency` seconds of the clock, as on a loaded API server."""

    def __init__(self, clock: ManualClock, latency: float) -> None:
        super().__init__()
        self._clock, self._latency = clock, latency

    def create(self, name: str, holder: str, duration: float, now: float) -> LeaseView:
        self._clock.advance(self._latency)
        return super().create(name, holder, duration, now)

    def update(self, lease: LeaseView, holder: str, duration: float, now: float) -> LeaseView:
        self._clock.advance(self._latency)
        return super().update(lease, holder, duration, now)


def test_a_slow_round_acquires_no_more_than_its_heartbeat_covers(
    clock: ManualClock, tmp_path: Path
) -> None:
    journal = Journal.open(tmp_path)
    store = SlowLeases(clock, latency=1.0)
    a = Coordinator(HaSettings(identity="a"), store, TARGETS, clock=clock, journal=journal)
    for _ in range(12):  # a write a second: about one target a round
        a.tick()
        held = [t for t in TARGETS if store.leases.get(f"gitopsd-target-{t}")]
        assert all(a.owns(t) for t in held), held  # nothing acquired past the fence
        clock.advance(2.0)
    assert all(a.owns(t) for t in TARGETS)
    assert [e for e in journal.events() if e["event"] == "lease_lost"] == []
    journal.close()


def test_metrics_show_each_target_once_with_its_current_holder(
    store: MemoryLeases, clock: ManualClock
) -> None:
    registry = CollectorRegistry()
    a = Coordinator(HaSettings(identity="a"), store, TARGETS, clock=clock, registry=registry)
    _rounds([a], clock, n=2)
    b, _ = _replica("b", store, clock)
    _rounds([a, b], clock, n=4)  # about half move to b
    name = "gitopsd_lease_held_since_timestamp_seconds"
    (since,) = [f for f in registry.collect() if f.name == name]
    series = [(s.labels["target"], s.labels["holder"]) for s in since.samples]
    assert sorted(t for t, _ in series) == TARGETS  # one series per target
    assert all(store.leases[f"gitopsd-target-{t}"].holder == h for t, h in series)
    (family,) = [f for f in registry.collect() if f.name == "gitopsd_lease_held"]
    held = {sample.labels["target"]: sample.value for sample in family.samples}
    assert held == {t: 1.0 if a.owns(t) else 0.0 for t in TARGETS}
    assert registry.get_sample_value("gitopsd_ha_live_replicas") == 2.0
