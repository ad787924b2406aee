"""Keep the journal from growing forever: rows older than `journal_retention` are deleted
in the background, a small batch per transaction, so a pass recording its row waits for
one batch at most (see Journal.prune)."""

from __future__ import annotations

import threading

import structlog

from gitopsd.clock import SYSTEM_CLOCK, Clock
from gitopsd.errors import GitopsdError
from gitopsd.journal import Journal

log = structlog.get_logger("gitopsd.journal")

PRUNE_EVERY_SECONDS = 3600.0


class JournalPruner:
    """Deletes journal rows older than the retention now, then every `every` seconds."""

    def __init__(
        self,
        journal: Journal,
        retention_seconds: float,
        clock: Clock = SYSTEM_CLOCK,
        every: float = PRUNE_EVERY_SECONDS,
    ) -> None:
        self._journal, self._retention, self._clock = journal, retention_seconds, clock
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="journal-pruner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def prune_once(self) -> int:
        """Delete what is older than the retention; the number of rows deleted."""
        cutoff = self._clock.time() - self._retention
        deleted = self._journal.prune(cutoff)
        if deleted:
            log.info("journal_pruned", rows=deleted, before=cutoff)
        return deleted

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.prune_once()
            except GitopsdError as error:  # a full disk: the next round tries again
                log.warning("journal_prune_failed", error=str(error))
            # Real seconds between rounds: a test's manual clock must not be moved by us.
            if self._stop.wait(self._every):
                return
