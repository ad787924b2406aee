"""What the HTTP listener and systemd's watchdog ask the daemon, answered from the StatusBoard.

Apart from the daemon so the answers (readiness, /status, liveness) are tested
on plain data, with a fake schedule and a manual clock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from gitopsd import __version__
from gitopsd.status import StatusBoard

STALL_SECONDS = 3600.0  # a pass running longer than this is taken as hung: stop the watchdog


class Schedule(Protocol):
    """The scheduling side, as the backend sees it."""

    def alive(self) -> bool: ...  # the scheduler thread runs
    def stopping(self) -> bool: ...
    def next_run_at(self, name: str) -> float | None: ...
    def trigger(self, target: str | None) -> list[str]: ...  # KeyError for an unknown target


class Backend:
    """Health, readiness, /status, /metrics and the webhook's trigger and secret."""

    def __init__(
        self, board: StatusBoard, schedule: Schedule, *, config_path: Path, dry_run: bool
    ) -> None:
        self.board = board
        self._schedule = schedule
        self._config_path = config_path
        self._dry_run = dry_run
        self.secret: str | None = None  # replaced whole by a reload

    def healthy(self) -> bool:
        """The scheduler thread is alive and no pass looks hung."""
        return self._schedule.alive() and not self.board.running_longer_than(STALL_SECONDS)

    def readiness(self) -> list[str]:
        """Why the daemon is not ready, one line each; empty when it is."""
        if self._schedule.stopping():
            return ["shutting down"]
        return self.board.failing()

    def status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "config": str(self._config_path),
            "dry_run": self._dry_run,
            "targets": self.board.as_dict(self._next_run_at),
        }

    def metrics(self) -> bytes:
        return self.board.metrics.render()

    def webhook_secret(self) -> str | None:
        return self.secret

    def trigger(self, target: str | None) -> list[str]:
        """Run `target` (every target when None) as soon as possible; KeyError if unknown."""
        return self._schedule.trigger(target)

    def _next_run_at(self, name: str) -> float | None:
        return None if self._schedule.stopping() else self._schedule.next_run_at(name)
