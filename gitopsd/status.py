"""What the daemon knows about each target between passes: /status, /readyz, health.

Kept apart from the scheduler so the bookkeeping is plain data that tests can
drive without a scheduler.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import structlog

from gitopsd.clock import SYSTEM_CLOCK, Clock
from gitopsd.errors import ClusterError, SourceError
from gitopsd.metrics import Metrics
from gitopsd.notifications import HealthChange
from gitopsd.passresult import PassOutcome, PassResult, failure_line, one_line

log = structlog.get_logger(__name__)


def health_of(outcome: PassOutcome, error: BaseException | None) -> str:
    """A coarse state whose changes are worth one log line: ok, source_down, cluster_down, ..."""
    if outcome.unhealthy or outcome is PassOutcome.WAITING:  # the workload is not up
        return outcome.value
    if outcome is not PassOutcome.FAILED:
        return "ok"
    if isinstance(error, SourceError):
        return "source_down" if error.retryable else "source_error"
    if isinstance(error, ClusterError):
        return "cluster_down" if error.retryable else "cluster_error"
    return "failed"


@dataclass
class TargetStatus:
    """The last pass of one target and how long it has been failing."""

    name: str
    interval_seconds: float
    revision: str | None = None
    revision_message: str = ""
    revision_author: str = ""
    chart: str | None = None  # "web 0.2.0": a chart from a chart repository, next to the commit
    outcome: PassOutcome | None = None
    started_at: float | None = None
    duration_seconds: float | None = None
    writes: int = 0
    error: str | None = None
    last_success_at: float | None = None
    failures: int = 0
    health: str = "unknown"
    running_since: float | None = None
    last_failure: dict[str, Any] | None = None  # kept after recovery: at, revision, error in full
    unhealthy: list[dict[str, str]] | None = None  # declared objects not Current, last known
    waiting_for: str | None = None  # outcome WAITING: the dependency not ready, and why

    @property
    def failed(self) -> bool:
        return self.outcome is PassOutcome.FAILED

    def record(self, result: PassResult) -> str | None:
        """Take in one finished pass; the previous health when it changed, else None."""
        self.waiting_for = result.waiting_for or None
        if result.outcome is PassOutcome.WAITING:  # not run: all else stays as it was
            self.outcome, self.running_since = result.outcome, None
            previous, self.health = self.health, "waiting"
            return previous if previous != self.health else None
        self.outcome, self.started_at = result.outcome, result.started_at
        self.duration_seconds, self.writes = result.duration_seconds, result.changes.writes
        self.running_since = None
        if result.revision is not None:
            self.revision = result.revision.commit
            self.revision_message = result.revision.message
            self.revision_author = result.revision.author
            self.chart = result.revision.chart or None
        self.error = one_line(result.error) if result.error is not None else None
        if result.health or result.outcome is not PassOutcome.FAILED:
            self.unhealthy = [o.as_dict() for o in result.unhealthy] if result.health else None
        if result.outcome is PassOutcome.FAILED:
            self.failures += 1
            self.last_failure = {
                "at": result.started_at + result.duration_seconds,
                "revision": result.commit,
                "error": str(result.error) if result.error is not None else "failed",
            }
        else:
            self.failures = 0
            self.last_success_at = result.started_at + result.duration_seconds
        previous, self.health = self.health, health_of(result.outcome, result.error)
        return previous if previous != self.health else None

    def as_dict(self, next_run_at: float | None) -> dict[str, Any]:
        """The target's entry in /status."""
        last_pass = None
        if self.outcome is not None:
            last_pass = {
                "outcome": self.outcome.value,
                "started_at": self.started_at,
                "duration_seconds": self.duration_seconds,
                "writes": self.writes,
            }
        return {
            "revision": self.revision,
            "revision_message": self.revision_message,
            "revision_author": self.revision_author,
            "chart": self.chart,
            "in_sync": self.outcome.in_sync if self.outcome is not None else None,
            "last_pass": last_pass,
            "last_error": self.error,
            "last_success_at": self.last_success_at,
            "consecutive_failures": self.failures,
            "health": self.health,
            "running": self.running_since is not None,
            "interval_seconds": self.interval_seconds,
            "next_run_at": next_run_at,
            "last_failure": self.last_failure,
            "unhealthy_objects": self.unhealthy,
            "waiting_for": self.waiting_for,
        }


class StatusBoard:
    """Every target's TargetStatus behind one lock, feeding the metrics and the log."""

    def __init__(self, metrics: Metrics, clock: Clock = SYSTEM_CLOCK) -> None:
        self.metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._targets: dict[str, TargetStatus] = {}

    def now(self) -> float:
        """The board's clock, for views that say how long ago a pass ran."""
        return self._clock.time()

    def track(self, name: str, interval: float) -> None:
        with self._lock:
            self._targets.setdefault(name, TargetStatus(name, interval)).interval_seconds = interval

    def forget(self, name: str) -> None:
        with self._lock:
            self._targets.pop(name, None)
        self.metrics.forget(name)

    def started(self, name: str) -> None:
        with self._lock:
            status = self._targets.get(name)
            if status is not None:
                status.running_since = self._clock.time()

    def get(self, name: str) -> TargetStatus | None:
        """A copy of the target's status; None once a reload has removed the target."""
        with self._lock:
            status = self._targets.get(name)
            return replace(status) if status is not None else None

    def record(self, result: PassResult) -> HealthChange | None:
        """Take in one finished pass: status, metrics, and a log line when health changes.

        The change of health, if any (notifications follow it). A target removed by a
        reload while its pass ran is not brought back.
        """
        name, outcome = result.target, result.outcome.value
        with self._lock:
            status = self._targets.get(name)
            if status is None:
                log.debug("pass_of_removed_target", target=name, outcome=outcome)
                return None
            changed_from = status.record(result)
            status = replace(status)
        self.metrics.observe_pass(result)
        fields = {"target": name, "outcome": outcome, "revision": status.revision}
        # Waiting for a dependency is no failure (ordered.py logs pass_waiting).
        if changed_from is not None and status.health not in ("ok", "waiting"):
            log.error("target_failing", health=status.health, error=status.error, **fields)
        elif changed_from not in (None, "unknown") and status.health == "ok":
            log.info("target_recovered", was=changed_from, **fields)
        else:  # the runner logs each pass itself
            log.debug("pass_recorded", error=status.error, **fields)
        return HealthChange(changed_from, status.health) if changed_from is not None else None

    def failing(self) -> list[str]:
        """Why the daemon is not ready: one line per target whose last pass failed."""
        with self._lock:
            return [
                failure_line(s.name, s.error or "failed")
                for s in self._targets.values()
                if s.failed
            ]

    def not_up(self) -> list[str]:
        """Why workloads are not up (`http.ready_requires_healthy`): one line per target
        whose objects are degraded or progressing, or that waits for a dependency."""
        with self._lock:
            statuses = [replace(s) for s in self._targets.values()]
        lines = []
        for s in statuses:
            if s.health not in ("progressing", "degraded", "waiting"):
                continue
            worst = (s.unhealthy or [{}])[0]
            why = s.waiting_for or (
                f"{worst['kind']} {worst['name']}: {worst['reason']}" if worst else ""
            )
            lines.append(failure_line(s.name, f"{s.health}: {why}" if why else s.health))
        return lines

    def running_longer_than(self, seconds: float) -> bool:
        now = self._clock.time()
        with self._lock:
            return any(
                s.running_since is not None and now - s.running_since > seconds
                for s in self._targets.values()
            )

    def as_dict(self, next_run: Callable[[str], float | None]) -> dict[str, Any]:
        with self._lock:
            statuses = [replace(s) for s in self._targets.values()]
        return {s.name: s.as_dict(next_run(s.name)) for s in statuses}

    def summary(self) -> str:
        """systemd's STATUS= line."""
        with self._lock:
            failing = sorted(s.name for s in self._targets.values() if s.failed)
            total = len(self._targets)
        return f"{total} targets, {len(failing)} failing" + (
            f": {', '.join(failing)}" if failing else ""
        )
