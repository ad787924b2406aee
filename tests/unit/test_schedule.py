"""Scheduling rules on plain data: backoff, reload diffing, one target's entry."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gitopsd.config import ClusterSettings, Config, RefKind, SourceSettings, TargetSettings
from gitopsd.errors import GitopsdError, RemoteUnreachableError, RenderError
from gitopsd.model import ChangeSet
from gitopsd.passresult import PassOutcome, PassResult
from gitopsd.schedule import ReloadPlan, Slot, TargetEntry, backoff_seconds, plan_reload


def target(name: str, **changes: object) -> TargetSettings:
    source = SourceSettings(repo="https://h/i.git", ref_kind=RefKind.BRANCH, ref="main")
    return replace(TargetSettings(name=name, source=source, cluster=ClusterSettings()), **changes)


def config(*targets: TargetSettings, interval: float = 60.0) -> Config:
    return Config(Path("gitopsd.yaml"), Path("state"), interval_seconds=interval, targets=targets)


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_seconds(n, 60, 300) for n in (1, 2, 3, 4, 10)] == [60, 120, 240, 300, 300]
    assert backoff_seconds(3, 600, 300) == 600  # never faster than the interval


WEB, API, DB = target("web"), target("api"), target("db")


@pytest.mark.parametrize(
    ("old", "new", "plan"),
    [
        (config(WEB, API), config(WEB, API), ((), (), ())),
        (config(WEB, API), config(API, DB), (("web",), (), ("db",))),
        (config(WEB), config(replace(WEB, namespace="other")), ((), ("web",), ())),
        (config(WEB), config(replace(WEB, interval_seconds=30.0)), ((), ("web",), ())),
        # The global interval changes the schedule of targets without one of their own...
        (config(WEB, interval=60), config(WEB, interval=30), ((), ("web",), ())),
        # ...and not of a target with its own.
        (
            config(replace(WEB, interval_seconds=10.0), interval=60),
            config(replace(WEB, interval_seconds=10.0), interval=30),
            ((), (), ()),
        ),
        (config(WEB, API), config(), (("web", "api"), (), ())),
    ],
)
def test_plan_reload(old: Config, new: Config, plan: tuple[tuple[str, ...], ...]) -> None:
    assert plan_reload(old, new) == ReloadPlan(*plan)


def result(
    outcome: PassOutcome = PassOutcome.IN_SYNC, error: GitopsdError | None = None
) -> PassResult:
    if error is not None:
        return PassResult.failed("web", error, 0.0)
    return PassResult("web", outcome, None, ChangeSet(), None, None, 0.0, 0.1)


UNREACHABLE = RemoteUnreachableError("target web, remote r: did not answer")


class Entry:
    """A TargetEntry on one slot, with the moves of its next run recorded."""

    def __init__(self, interval: float = 60.0) -> None:
        self.moves: list[float] = []
        self.entry = TargetEntry("web", self.moves.append)
        self.slot = Slot(target("web"), config(interval=interval))
        assert self.entry.assign(self.slot) is None

    def run(
        self,
        outcome: PassOutcome = PassOutcome.IN_SYNC,
        error: GitopsdError | None = None,
        cap: float = 300.0,
    ) -> Slot | None:
        slot = self.entry.begin()
        assert slot is not None
        return self.entry.finish(slot, result(outcome, error), cap)


def test_retryable_failures_move_the_next_run_by_the_backoff() -> None:
    e = Entry()
    for _ in range(5):
        e.run(PassOutcome.FAILED, UNREACHABLE)
    assert e.moves == [60, 120, 240, 300, 300]
    e.run()
    e.run(PassOutcome.FAILED, UNREACHABLE)
    assert e.moves[-1] == 60  # a success starts the count again


def test_other_failures_and_successes_keep_the_interval() -> None:
    e = Entry()
    e.run(PassOutcome.FAILED, RenderError("bad.yaml#0: kind is missing"))
    e.run(PassOutcome.FAILED, RenderError("bad.yaml#0: kind is missing"))
    assert e.moves == []
    e.run(PassOutcome.FAILED, UNREACHABLE)  # the third failure in a row, whatever the others
    e.run(PassOutcome.CONVERGED)
    assert e.moves == [240]


def test_request_runs_now_when_idle_and_once_after_a_pass_in_progress() -> None:
    e = Entry()
    e.entry.request()
    assert e.moves == [0.0]
    slot = e.entry.begin()
    assert slot is e.slot and e.entry.busy
    e.entry.request()
    e.entry.request()
    assert e.entry.begin() is None  # one pass at a time; this one is remembered too
    assert e.moves == [0.0]
    assert e.entry.finish(slot, result(), 300.0) is None
    assert e.moves == [0.0, 0.0]  # one more pass, right after
    e.run()
    assert e.moves == [0.0, 0.0]


def test_new_slot_while_idle_closes_the_old_at_once() -> None:
    e = Entry()
    new = Slot(target("web", namespace="other"), config())
    assert e.entry.assign(new) is e.slot
    assert e.entry.begin() is new


def test_new_slot_during_a_pass_runs_right_after_it_and_retires_the_old() -> None:
    e = Entry()
    slot = e.entry.begin()
    assert slot is not None
    new = Slot(target("web", namespace="other"), config())
    assert e.entry.assign(new) is None  # in use: the pass closes it
    assert e.entry.finish(slot, result(PassOutcome.FAILED, UNREACHABLE), 300.0) is slot
    assert e.moves == [0.0]  # new settings run now, whatever the old pass's outcome
    assert e.entry.begin() is new


def test_removed_during_a_pass_is_closed_and_not_scheduled() -> None:
    e = Entry()
    slot = e.entry.begin()
    assert slot is not None
    e.entry.request()
    assert e.entry.assign(None) is None
    assert e.entry.finish(slot, result(PassOutcome.FAILED, UNREACHABLE), 300.0) is slot
    assert e.moves == []
    assert e.entry.begin() is None
    e.entry.request()
    assert e.moves == []


def test_removed_and_added_again_starts_its_backoff_afresh() -> None:
    e = Entry()
    e.run(PassOutcome.FAILED, UNREACHABLE)
    e.run(PassOutcome.FAILED, UNREACHABLE)
    assert e.entry.assign(None) is e.slot
    assert e.entry.assign(e.slot) is None
    e.run(PassOutcome.FAILED, UNREACHABLE)
    assert e.moves == [60, 120, 60]


def test_stop_waits_for_the_pass_in_progress_and_starts_no_other() -> None:
    e = Entry()
    slot = e.entry.begin()
    assert slot is not None
    assert not e.entry.stop(0.0)
    e.entry.finish(slot, result(), 300.0)
    assert e.entry.stop(0.0)
    assert e.entry.begin() is None
