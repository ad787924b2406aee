"""Scheduling decisions apart from the scheduler: per-target state, backoff, reload diffing.

Plain data behind one lock per target, no APScheduler, so the rules are tested
without threads or time passing; daemon.py carries them out.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

import structlog

from gitopsd.config import Config, TargetSettings
from gitopsd.passresult import PassOutcome, PassResult

if TYPE_CHECKING:
    from gitopsd.journal import Journal

log = structlog.get_logger(__name__)


class PassRunner(Protocol):
    """Runs passes of one target (gitopsd.runner.TargetRunner, or a fake in tests)."""

    def run_pass(
        self,
        *,
        dry_run: bool = False,
        previews: bool = False,
        stop: threading.Event | None = None,
    ) -> PassResult: ...
    def validate(self) -> tuple[int, str]: ...
    def close(self) -> None: ...


RunnerFactory = Callable[[Config, TargetSettings, "Journal"], PassRunner]


def interval_of(target: TargetSettings, config: Config) -> float:
    """The target's own interval, else the configuration's."""
    return target.interval_seconds or config.interval_seconds


def backoff_seconds(failures: int, interval: float, cap: float) -> float:
    """Delay before retrying after `failures` consecutive failures: doubling, capped."""
    if failures <= 1:
        return interval
    return min(interval * (1 << min(failures - 1, 30)), max(cap, interval))


class ReloadPlan(NamedTuple):
    """Target names a reload removes, restarts (settings or interval changed) and adds."""

    removed: tuple[str, ...]
    restarted: tuple[str, ...]
    added: tuple[str, ...]


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """What a reload from `old` to `new` does; unchanged targets keep their schedule."""
    before = {t.name: t for t in old.targets}
    names = {t.name for t in new.targets}
    restarted, added = [], []
    for target in new.targets:
        previous = before.get(target.name)
        if previous is None:
            added.append(target.name)
        elif previous != target or interval_of(previous, old) != interval_of(target, new):
            restarted.append(target.name)
    removed = tuple(name for name in before if name not in names)
    return ReloadPlan(removed, tuple(restarted), tuple(added))


@dataclass
class Slot:
    """One target's runner under one configuration; replaced when a reload changes the target."""

    settings: TargetSettings
    config: Config
    runner: PassRunner | None = None  # built at the first pass, so a bad kubeconfig fails a pass
    _closed: bool = False
    _guard: threading.Lock = field(default_factory=threading.Lock)

    @property
    def interval(self) -> float:
        return interval_of(self.settings, self.config)

    def runner_for(self, factory: RunnerFactory, journal: Journal) -> PassRunner:
        """The slot's runner, built on first use (only by the pass that holds the target)."""
        if self.runner is None:
            self.runner = factory(self.config, self.settings, journal)
        return self.runner

    def close(self) -> None:
        with self._guard:
            if not self._closed and self.runner is not None:
                self.runner.close()
            self._closed = True


@dataclass
class Backoff:
    """A target's consecutive failed passes, and whether the last one may pass on a retry."""

    failures: int = 0
    retryable: bool = False

    def record(self, result: PassResult) -> None:
        failed = result.outcome is PassOutcome.FAILED
        self.failures = self.failures + 1 if failed else 0
        self.retryable = failed and result.error is not None and result.error.retryable

    def delay(self, interval: float, cap: float) -> float | None:
        """How soon to retry, or None to keep the interval.

        Only a retryable failure (remote or API server unreachable) is retried early and
        backs off; any other failure waits for the next interval: a new commit or a fix.
        """
        if not (self.failures and self.retryable):
            return None
        return backoff_seconds(self.failures, interval, cap)


Move = Callable[[float], None]  # run the target's next pass in this many seconds


class TargetEntry:
    """One target's scheduling state: its slot, a pass running, a pass asked for, its backoff.

    Every change happens under the entry's lock, and so does moving its next run
    (`move`), so a webhook and a finishing pass cannot undo each other's decision.
    """

    def __init__(self, name: str, move: Move) -> None:
        self.name = name
        self._move = move
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._slot: Slot | None = None  # None: not in the configuration (removed by a reload)
        self._busy = False
        self._pending = False
        self._stopped = False  # the daemon is shutting down: no pass starts any more
        self._backoff = Backoff()

    @property
    def slot(self) -> Slot | None:
        with self._lock:
            return self._slot

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._busy

    def assign(self, slot: Slot | None) -> Slot | None:
        """Install `slot` (None removes the target); the old slot when it is idle, to close now.

        A pass running on the old slot closes it itself and runs the new one right after.
        """
        with self._lock:
            old, self._slot = self._slot, slot
            if slot is None:
                self._backoff, self._pending = Backoff(), False
            return None if self._busy or old is slot else old

    def begin(self) -> Slot | None:
        """The slot to run a pass on now, or None: removed, or a pass already runs."""
        with self._lock:
            if self._slot is None or self._stopped:
                return None
            if self._busy:
                self._pending = True  # the old runner of a reloaded target is still at it
                return None
            self._busy = True
            return self._slot

    def request(self) -> None:
        """Run a pass as soon as possible: now, or right after the one in progress."""
        with self._lock:
            if self._slot is None:
                return
            if self._busy:
                self._pending = True
            else:
                self._move(0.0)

    def finish(self, slot: Slot, result: PassResult, backoff_cap: float) -> Slot | None:
        """Take in the pass run on `slot` and schedule the next; `slot` when it is to be closed."""
        with self._lock:
            self._busy = False
            self._idle.notify_all()
            retired = slot is not self._slot
            if self._slot is None:
                return slot  # removed by a reload during the pass
            self._backoff.record(result)
            if self._pending or retired:  # a webhook during the pass, or new settings
                self._pending = False
                self._move(0.0)
            else:
                self._back_off(self._slot.interval, backoff_cap)
            return slot if retired else None

    def _back_off(self, interval: float, cap: float) -> None:
        delay = self._backoff.delay(interval, cap)
        if delay is not None:
            failures = self._backoff.failures
            log.debug("target_backoff", target=self.name, seconds=delay, failures=failures)
            self._move(delay)

    def stop(self, timeout: float) -> bool:
        """Start no pass from now on; whether the one in progress ended within `timeout`."""
        with self._idle:
            self._stopped = True
            return self._idle.wait_for(lambda: not self._busy, max(timeout, 0.0))
