"""The pure rules of several replicas: assignment, fencing, Lease transitions."""

from __future__ import annotations

from collections import Counter

import pytest

from gitopsd.clock import ManualClock
from gitopsd.leases import (
    LeaseTimes,
    LeaseView,
    Observer,
    Step,
    assignment,
    fresh_heartbeats,
    heartbeat_name,
    may_write,
    target_step,
)

TIMES = LeaseTimes(lease_duration=15.0, renew_deadline=10.0, retry_period=2.0)
TARGETS = [f"target-{n}" for n in range(300)]


@pytest.mark.parametrize("count", [9, 30, 300])
def test_every_replica_holds_its_share(count: int) -> None:
    owners = Counter(assignment(TARGETS[:count], ["a", "b", "c"]).values())
    assert sorted(owners.values()) == [count // 3] * 3


@pytest.mark.parametrize("count", [9, 30, 300])
def test_a_replica_joining_takes_its_share_and_little_else_moves(count: int) -> None:
    targets = TARGETS[:count]
    before = assignment(targets, ["a", "b", "c"])
    after = assignment(targets, ["a", "b", "c", "d"])
    moved = [t for t in targets if before[t] != after[t]]
    to_new = [t for t in moved if after[t] == "d"]
    assert count // 4 - 1 <= len(to_new) <= -(-count // 4)
    assert len(moved) <= len(to_new) + max(2, count // 20)


def test_a_replica_leaving_moves_its_targets_and_little_else() -> None:
    before = assignment(TARGETS, ["a", "b", "c"])
    after = assignment(TARGETS, ["a", "b"])
    moved = [t for t in TARGETS if before[t] != after[t]]
    assert {t for t in TARGETS if before[t] == "c"} <= set(moved)
    assert len(moved) <= 100 + 15


def test_assignment_does_not_depend_on_the_order_replicas_are_listed() -> None:
    assert assignment(TARGETS, ["c", "a", "b"]) == assignment(TARGETS, ["a", "b", "c"])
    assert assignment(["x"], []) == {"x": None}


@pytest.mark.parametrize(
    ("since_renewal", "allowed"),
    [(0.0, True), (2.0, True), (7.0, True), (7.01, False), (15.0, False)],
)
def test_fence_needs_renew_deadline_minus_retry_period_left(
    since_renewal: float, allowed: bool
) -> None:
    assert may_write(100.0, 100.0 + since_renewal, TIMES) is allowed


def test_fence_refuses_before_any_renewal() -> None:
    assert not may_write(None, 0.0, TIMES)


def test_heartbeat_is_fresh_until_unchanged_for_lease_duration() -> None:
    clock, observer = ManualClock(), Observer()
    beat = LeaseView(heartbeat_name("b"), "b", version="1")
    observer.observe([beat], clock.monotonic())
    clock.advance(14.9)
    observer.observe([beat], clock.monotonic())  # seen again, unchanged
    assert fresh_heartbeats([beat], observer, clock.monotonic(), TIMES) == (beat,)
    clock.advance(0.2)
    assert fresh_heartbeats([beat], observer, clock.monotonic(), TIMES) == ()
    renewed = LeaseView(beat.name, "b", version="2")
    observer.observe([renewed], clock.monotonic())
    assert fresh_heartbeats([renewed], observer, clock.monotonic(), TIMES) == (renewed,)


def test_a_released_heartbeat_is_not_fresh() -> None:
    observer = Observer()
    beat = LeaseView(heartbeat_name("b"), "", version="1")
    observer.observe([beat], 0.0)
    assert fresh_heartbeats([beat], observer, 0.0, TIMES) == ()


def test_heartbeat_names_are_valid_and_distinct() -> None:
    names = {heartbeat_name(i) for i in ("Host.A-1", "host-a-1", "host_a_1", "###")}
    assert len(names) == 4
    assert all(n.replace("-", "").isalnum() and n.islower() and len(n) <= 63 for n in names)


def _lease(holder: str) -> LeaseView:
    return LeaseView("gitopsd-target-x", holder, version="7")


LIVE = frozenset({"me", "b"})


@pytest.mark.parametrize(
    ("desired", "lease", "held", "step"),
    [
        ("me", None, False, Step.ACQUIRE),  # no Lease yet
        ("me", _lease(""), False, Step.ACQUIRE),  # released
        ("me", _lease("gone"), False, Step.ACQUIRE),  # holder's heartbeat expired
        ("me", _lease("b"), False, Step.NONE),  # live holder: it releases, or expires
        ("me", _lease("me"), True, Step.NONE),  # held: nothing to write
        ("me", _lease("me"), False, Step.ACQUIRE),  # ours on record after a lapse: re-take
        ("b", _lease("me"), True, Step.RELEASE),  # moved away
        ("b", _lease("me"), False, Step.RELEASE),  # stale record of ours
        ("b", _lease("b"), False, Step.NONE),
        ("me", _lease("b"), True, Step.LOST),  # taken while this replica was away
        ("b", _lease("b"), True, Step.LOST),
        (None, _lease("me"), True, Step.RELEASE),  # target removed from the configuration
    ],
)
def test_target_step(desired: str | None, lease: LeaseView | None, held: bool, step: Step) -> None:
    assert target_step("me", desired, lease, held, LIVE) is step
