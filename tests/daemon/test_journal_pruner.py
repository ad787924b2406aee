"""The journal pruner's thread: old rows go in the background, passes still record (issue 11)."""

from __future__ import annotations

import time
from pathlib import Path

from gitopsd.journal import Journal
from gitopsd.retention import JournalPruner
from tests.support.waiting import eventually

DAY = 86400.0


def _record(journal: Journal, at: float) -> None:
    journal.record_pass(
        target="web",
        revision="abc",
        outcome="in_sync",
        started_at=at,
        duration_seconds=0.1,
        writes=0,
        error=None,
        drifts=[],
    )


def test_old_rows_are_pruned_in_the_background_while_passes_record(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "state")
    now = time.time()
    for index in range(500):
        _record(journal, now - 60 * DAY + index)
    pruner = JournalPruner(journal, retention_seconds=30 * DAY)
    pruner.start()
    try:
        _record(journal, now)  # a pass recording while the pruner works is not refused
        assert eventually(lambda: len(journal.passes()) == 1, timeout=30)
        assert [p["started_at"] for p in journal.passes()] == [now]
    finally:
        pruner.stop()
        journal.close()
