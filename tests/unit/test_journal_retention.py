"""Journal retention: old rows pruned in small batches, and the newest entries read cheaply
(issue 11). SQLite files only: no threads here (the pruner's thread: tests/daemon)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitopsd import cli
from gitopsd.clock import ManualClock
from gitopsd.config import load_config
from gitopsd.history import last_entries
from gitopsd.journal import PRUNE_BATCH, Journal
from gitopsd.model import Action, ChangeSetEntry, ResourceKey
from gitopsd.retention import JournalPruner

DAY = 86400.0
KEY = ResourceKey("", "ConfigMap", "ns", "app")


def _record(journal: Journal, at: float, target: str = "web", drift: bool = False) -> None:
    drifts = [(at, ChangeSetEntry(KEY, Action.UPDATED))] if drift else []
    journal.record_pass(
        target=target,
        revision="abc",
        outcome="in_sync",
        started_at=at,
        duration_seconds=0.1,
        writes=0,
        error=None,
        drifts=drifts,
    )


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    opened = Journal.open(tmp_path / "state")
    yield opened
    opened.close()


def test_prune_deletes_every_kind_of_row_older_than_the_cutoff(journal: Journal) -> None:
    old = PRUNE_BATCH * 2 + 7  # several batches
    for index in range(old):
        _record(journal, 1000.0 + index, drift=index % 2 == 0)
    journal.record_event(target="web", at=1000.0, event="health_changed", detail={})
    _record(journal, 10 * DAY, drift=True)
    journal.record_event(target="web", at=10 * DAY, event="health_changed", detail={})
    deleted = journal.prune(before=5 * DAY)
    assert deleted == old + (old + 1) // 2 + 1
    assert [p["started_at"] for p in journal.passes()] == [10 * DAY]
    assert [d["time"] for d in journal.drifts()] == [10 * DAY]
    assert [e["time"] for e in journal.events()] == [10 * DAY]
    assert journal.prune(before=5 * DAY) == 0


def test_the_pruner_keeps_what_is_within_the_retention(journal: Journal) -> None:
    clock = ManualClock(start=40 * DAY)
    _record(journal, 5 * DAY)
    _record(journal, 20 * DAY)
    pruner = JournalPruner(journal, retention_seconds=30 * DAY, clock=clock)
    assert pruner.prune_once() == 1
    assert [p["started_at"] for p in journal.passes()] == [20 * DAY]


def test_last_reads_only_the_newest_rows_oldest_first(journal: Journal) -> None:
    for index in range(120):
        _record(journal, 1000.0 + index, target="web" if index % 2 else "api", drift=True)
    newest = journal.passes(last=3)
    assert [p["started_at"] for p in newest] == [1117.0, 1118.0, 1119.0]
    assert [p["started_at"] for p in journal.passes("api", last=2)] == [1116.0, 1118.0]
    passes, drifts, events = last_entries(
        journal.passes(last=5), journal.drifts(last=5), journal.events(last=5), 5
    )
    assert [p["started_at"] for p in passes] == [1118.0, 1119.0]
    assert [d["time"] for d in drifts] == [1117.0, 1118.0, 1119.0]
    assert events == []


def test_history_shows_the_newest_fifty_unless_all(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = Journal.open(load_config(config_file).state_dir)
    try:
        for index in range(60):
            _record(journal, 1_700_000_000.0 + index)
    finally:
        journal.close()
    assert cli.main(["history", "--config", str(config_file)]) == cli.EXIT_OK
    assert len(capsys.readouterr().out.splitlines()) == 50
    assert cli.main(["history", "--all", "--config", str(config_file)]) == cli.EXIT_OK
    assert len(capsys.readouterr().out.splitlines()) == 60


def test_journal_retention_is_read_with_a_thirty_day_default(tmp_path: Path) -> None:
    path = tmp_path / "gitopsd.yaml"
    base = "state_dir: state\ntargets: [{name: web, repo: 'https://h/r.git', branch: main}]\n"
    path.write_text(base)
    assert load_config(path).journal_retention_seconds == 30 * DAY
    path.write_text(base + "journal_retention: 90d\n")
    assert load_config(path).journal_retention_seconds == 90 * DAY
