"""The rules of event-triggered passes: own writes, coalescing, fight back-off (issue 13)."""

from __future__ import annotations

import pytest

from gitopsd.clock import ManualClock
from gitopsd.model import ResourceKey
from gitopsd.watchlogic import Coalescer, FightTracker, OwnWrites

CM = ResourceKey("", "ConfigMap", "ns", "settings")
SVC = ResourceKey("", "Service", "ns", "web")


def test_the_event_with_the_version_our_apply_returned_is_ours_once() -> None:
    own = OwnWrites()
    own.wrote(CM, 120)
    assert own.is_own("MODIFIED", CM, 120, terminating=False)
    assert not own.is_own("MODIFIED", CM, 120, terminating=False)  # consumed
    assert not own.is_own("MODIFIED", CM, 121, terminating=False)


def test_a_later_version_by_someone_else_is_not_ours_and_forgets_older_ones() -> None:
    own = OwnWrites()
    own.wrote(CM, 120)
    assert not own.is_own("MODIFIED", CM, 125, terminating=False)
    assert not own.is_own("MODIFIED", CM, 120, terminating=False)


def test_our_delete_is_recognised_by_the_next_deleted_event_of_the_key() -> None:
    own = OwnWrites()
    own.deleting(SVC)
    assert own.is_own("MODIFIED", SVC, 7, terminating=True)  # a finalizer holds it
    assert own.is_own("DELETED", SVC, 8, terminating=False)
    assert not own.is_own("DELETED", SVC, 9, terminating=False)


def test_an_object_made_again_by_someone_else_ends_our_pending_delete() -> None:
    own = OwnWrites()
    own.deleting(SVC)
    assert not own.is_own("ADDED", SVC, 10, terminating=False)
    assert not own.is_own("DELETED", SVC, 11, terminating=False)


@pytest.mark.parametrize(
    ("writes", "deletes", "seen", "held", "expected"),
    [
        ([(CM, 10)], [], 9, [], False),  # the watch has not shown our write yet
        ([(CM, 10)], [], 10, [CM], True),
        ([(SVC, 10)], [], 9, [CM], True),  # a write to another kind does not hold it up
        ([], [CM], 50, [CM], False),  # our delete not seen yet
        ([], [CM], 50, [], True),
    ],
)
def test_a_cache_is_caught_up_once_it_shows_every_write_of_ours_to_its_kind(
    writes: list[tuple[ResourceKey, int]],
    deletes: list[ResourceKey],
    seen: int,
    held: list[ResourceKey],
    expected: bool,
) -> None:
    own = OwnWrites()
    for key, version in writes:
        own.wrote(key, version)
    for key in deletes:
        own.deleting(key)
    assert own.caught_up(("", "ConfigMap"), seen, held) is expected


def test_a_burst_of_events_makes_one_pass_at_the_first_events_due_time() -> None:
    due = Coalescer()
    assert due.add("web", 10.1)
    assert not due.add("web", 10.15)
    assert not due.add("web", 10.3)
    assert due.pop_due(10.05) == []
    assert due.next_due() == 10.1
    assert due.pop_due(10.1) == ["web"]
    assert due.pop_due(11.0) == []
    assert due.next_due() is None


def test_an_earlier_due_time_wins_over_a_backed_off_one() -> None:
    due = Coalescer()
    due.add("web", 18.0)
    assert due.add("web", 10.1)
    assert due.pop_due(10.1) == ["web"]


def test_corrections_of_one_object_back_off_exponentially_up_to_the_interval() -> None:
    clock, fights = ManualClock(0.0), FightTracker()
    delays = []
    for _ in range(8):
        delay = fights.delay(CM, clock.monotonic(), cap=30.0)
        delays.append(delay)
        clock.advance(delay + 0.2)
        fights.corrected(CM, clock.monotonic())
    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert fights.delay(SVC, clock.monotonic(), cap=30.0) == 0.0  # other objects unaffected


def test_the_fifth_correction_in_five_minutes_reports_one_fight() -> None:
    clock, fights = ManualClock(0.0), FightTracker()
    reported = []
    for _ in range(9):
        clock.advance(10.0)
        fight = fights.corrected(CM, clock.monotonic())
        if fight is not None:
            reported.append(fight)
    assert len(reported) == 1
    assert reported[0].key == CM and reported[0].corrections == 5
    assert [f.key for f in fights.fighting(clock.monotonic())] == [CM]


def test_corrections_spread_over_more_than_five_minutes_are_no_fight() -> None:
    clock, fights = ManualClock(0.0), FightTracker()
    for _ in range(10):
        clock.advance(80.0)  # five corrections span 320s: never five within 300s
        assert fights.corrected(CM, clock.monotonic()) is None
    assert fights.fighting(clock.monotonic()) == []


def test_a_fight_that_went_quiet_for_the_window_ends_and_may_be_reported_again() -> None:
    clock, fights = ManualClock(0.0), FightTracker()
    first = [fights.corrected(CM, clock.monotonic() + i) for i in range(5)]
    assert first[-1] is not None
    clock.advance(400.0)
    assert fights.fighting(clock.monotonic()) == []
    assert fights.delay(CM, clock.monotonic(), cap=60.0) == 0.0
    again = [fights.corrected(CM, clock.monotonic() + i) for i in range(5)]
    assert again[-1] is not None
