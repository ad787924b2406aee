"""What the HTTP listener and systemd's watchdog ask the daemon, answered from the StatusBoard.

Apart from the daemon so the answers (readiness, /status, liveness) are tested
on plain data, with a fake schedule and a manual clock.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gitopsd import __version__
from gitopsd.errors import StateError
from gitopsd.status import StatusBoard
from gitopsd.statuspage import index_page, target_page

if TYPE_CHECKING:
    from gitopsd.coordinator import Coordinator
    from gitopsd.journal import Journal
    from gitopsd.watching import WatchHub

STALL_SECONDS = 3600.0  # a pass running longer than this is taken as hung: stop the watchdog
DRIFT_PAGE_SECONDS = 86400.0  # how far back a target's page reads the drift journal


class Schedule(Protocol):
    """The scheduling side, as the backend sees it."""

    def alive(self) -> bool: ...  # the scheduler thread runs
    def stopping(self) -> bool: ...
    def next_run_at(self, name: str) -> float | None: ...
    def trigger(self, target: str | None) -> list[str]: ...  # KeyError for an unknown target


class Backend:
    """Health, readiness, /status, /metrics and the webhook's trigger and secret."""

    def __init__(
        self,
        board: StatusBoard,
        schedule: Schedule,
        *,
        config_path: Path,
        dry_run: bool,
        journal: Journal | None = None,
    ) -> None:
        self.board = board
        self._schedule = schedule
        self._config_path = config_path
        self._dry_run = dry_run
        self._journal = journal
        self.secret: str | None = None  # replaced whole by a reload
        self.require_healthy = False  # http.ready_requires_healthy
        self.watches: WatchHub | None = None  # the daemon's, when it watches
        self.ha: Coordinator | None = None  # the daemon's, with `ha:`: holders in /status

    def healthy(self) -> bool:
        """The scheduler thread is alive and no pass looks hung."""
        return self._schedule.alive() and not self.board.running_longer_than(STALL_SECONDS)

    def readiness(self) -> list[str]:
        """Why the daemon is not ready, one line each; empty when it is."""
        if self._schedule.stopping():
            return ["shutting down"]
        lost = self.watches.problems() if self.watches is not None else []
        not_up = self.board.not_up() if self.require_healthy else []
        return self.board.failing() + lost + not_up

    def status(self) -> dict[str, Any]:
        targets = self.board.as_dict(self._next_run_at)
        for name, target in targets.items():
            watch = self.watches.status(name) if self.watches is not None else None
            if watch is not None:
                target["watch"] = watch
        return {
            "version": __version__,
            "config": str(self._config_path),
            "dry_run": self._dry_run,
            "targets": targets,
            **({"ha": self.ha.status()} if self.ha is not None else {}),
        }

    def status_page(self) -> str:
        """The HTML status page: every target."""
        return index_page(self.status(), now=self.board.now())

    def target_page(self, name: str) -> str | None:
        """One target's HTML page with its recent drift journal; None for an unknown target."""
        status = self.status()
        if name not in status["targets"]:
            return None
        now = self.board.now()
        drifts: list[dict[str, Any]] = []
        if self._journal is not None:
            try:
                drifts = self._journal.drifts(name, since=now - DRIFT_PAGE_SECONDS)
            except StateError:  # the page still shows the status; passes report the journal
                drifts = []
        return target_page(status, name, drifts, now=now)

    def metrics(self) -> bytes:
        return self.board.metrics.render()

    def webhook_secret(self) -> str | None:
        return self.secret

    def trigger(self, target: str | None) -> list[str]:
        """Run `target` (every target when None) as soon as possible; KeyError if unknown."""
        return self._schedule.trigger(target)

    def _next_run_at(self, name: str) -> float | None:
        return None if self._schedule.stopping() else self._schedule.next_run_at(name)
