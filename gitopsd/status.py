"""What the daemon knows about each target between passes: /status, /readyz, backoff.

Kept apart from the scheduler so the bookkeeping is plain data that tests can
drive without threads or a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitopsd.errors import ClusterError, GitopsdError, SourceError

IN_SYNC_OUTCOMES = ("in_sync", "converged")


def health_of(outcome: str, error: BaseException | None) -> str:
    """A coarse state whose changes are worth one log line: ok, source_down, cluster_down, ..."""
    if outcome != "failed":
        return "ok"
    if isinstance(error, SourceError):
        return "source_down" if error.retryable else "source_error"
    if isinstance(error, ClusterError):
        return "cluster_down" if error.retryable else "cluster_error"
    return "failed"


def backoff_seconds(failures: int, interval: float, cap: float) -> float:
    """Delay before retrying after `failures` consecutive retryable failures: doubling, capped."""
    if failures <= 1:
        return interval
    return min(interval * (1 << min(failures - 1, 30)), max(cap, interval))


@dataclass
class TargetStatus:
    """The last pass of one target and how long it has been failing."""

    name: str
    interval_seconds: float
    revision: str | None = None
    outcome: str | None = None
    started_at: float | None = None
    duration_seconds: float | None = None
    writes: int = 0
    error: str | None = None
    retryable: bool = False
    last_success_at: float | None = None
    failures: int = 0
    health: str = "unknown"
    running_since: float | None = None

    @property
    def failed(self) -> bool:
        return self.outcome == "failed"

    def record(
        self,
        outcome: str,
        *,
        revision: str | None,
        started_at: float,
        duration: float,
        writes: int,
        error: BaseException | None,
    ) -> str | None:
        """Take in one finished pass; the previous health when it changed, else None."""
        self.outcome, self.started_at, self.duration_seconds = outcome, started_at, duration
        self.writes, self.running_since = writes, None
        if revision:
            self.revision = revision
        self.error = _one_line(error) if error is not None else None
        self.retryable = isinstance(error, GitopsdError) and error.retryable
        if outcome == "failed":
            self.failures += 1
        else:
            self.failures = 0
            self.last_success_at = started_at + duration
        previous, self.health = self.health, health_of(outcome, error)
        return previous if previous != self.health else None

    def as_dict(self, next_run_at: float | None) -> dict[str, Any]:
        """The target's entry in /status."""
        last_pass = None
        if self.outcome is not None:
            last_pass = {
                "outcome": self.outcome,
                "started_at": self.started_at,
                "duration_seconds": self.duration_seconds,
                "writes": self.writes,
            }
        return {
            "revision": self.revision,
            "in_sync": self.outcome in IN_SYNC_OUTCOMES if self.outcome else None,
            "last_pass": last_pass,
            "last_error": self.error,
            "last_success_at": self.last_success_at,
            "consecutive_failures": self.failures,
            "health": self.health,
            "running": self.running_since is not None,
            "interval_seconds": self.interval_seconds,
            "next_run_at": next_run_at,
        }


def _one_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return " ".join(text.split())
