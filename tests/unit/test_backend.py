"""What probes, /status and the watchdog are told, from a StatusBoard and a fake schedule."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gitopsd.backend import STALL_SECONDS, Backend
from gitopsd.clock import ManualClock
from gitopsd.errors import GitopsdError, RemoteUnreachableError
from gitopsd.journal import Journal
from gitopsd.metrics import Metrics
from gitopsd.model import (
    Action,
    ChangeSet,
    ChangeSetEntry,
    DriftReport,
    FieldChange,
    ResourceKey,
    Revision,
)
from gitopsd.notifications import HealthChange
from gitopsd.passresult import PassOutcome, PassResult, failure_line
from gitopsd.status import StatusBoard

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class FakeSchedule:
    running: bool = True
    shutting_down: bool = False
    triggered: list[str | None] = field(default_factory=list)

    def alive(self) -> bool:
        return self.running

    def stopping(self) -> bool:
        return self.shutting_down

    def next_run_at(self, name: str) -> float | None:
        return 2_000_000.0

    def trigger(self, target: str | None) -> list[str]:
        self.triggered.append(target)
        return [target or "web"]


def passed(target: str, at: float) -> PassResult:
    revision = Revision(COMMIT, "refs/heads/main", "Deploy web", "Ada")
    return PassResult(target, PassOutcome.IN_SYNC, revision, ChangeSet(), None, None, at, 0.5)


def rig() -> tuple[Backend, StatusBoard, FakeSchedule, ManualClock]:
    clock, schedule = ManualClock(), FakeSchedule()
    board = StatusBoard(Metrics(), clock)
    board.track("web", 60.0)
    backend = Backend(board, schedule, config_path=Path("/etc/g.yaml"), dry_run=False)
    return backend, board, schedule, clock


def test_status_of_a_pass() -> None:
    backend, board, _, clock = rig()
    board.record(passed("web", clock.time()))
    status = backend.status()
    assert status["config"] == "/etc/g.yaml" and status["dry_run"] is False
    assert status["targets"]["web"] == {
        "revision": COMMIT,
        "in_sync": True,
        "last_pass": {
            "outcome": "in_sync",
            "started_at": clock.time(),
            "duration_seconds": 0.5,
            "writes": 0,
        },
        "last_error": None,
        "last_success_at": clock.time() + 0.5,
        "consecutive_failures": 0,
        "health": "ok",
        "running": False,
        "interval_seconds": 60.0,
        "next_run_at": 2_000_000.0,
        "revision_message": "Deploy web",
        "revision_author": "Ada",
        "chart": None,  # no chart from a chart repository
        "last_failure": None,
        "unhealthy_objects": None,  # the target does not wait for health
        "waiting_for": None,  # no depends_on holding it back
    }


def test_a_failed_pass_makes_the_daemon_unready_until_one_passes() -> None:
    backend, board, _, clock = rig()
    error = RemoteUnreachableError("target web, remote r:\n  did not answer")
    board.record(PassResult.failed("web", error, clock.time()))
    assert backend.readiness() == ["target web, remote r: did not answer"]
    entry = backend.status()["targets"]["web"]
    assert (entry["health"], entry["in_sync"], entry["consecutive_failures"]) == (
        "source_down",
        False,
        1,
    )
    assert entry["last_pass"]["outcome"] == "failed" and entry["revision"] is None
    assert board.record(passed("web", clock.time())) == HealthChange("source_down", "ok")
    assert backend.readiness() == []
    # The failure in full stays for the status page after the target recovered.
    assert backend.status()["targets"]["web"]["last_failure"] == {
        "at": clock.time(),
        "revision": None,
        "error": "target web, remote r:\n  did not answer",
    }


def test_status_pages_from_the_board_and_the_journal(tmp_path: Path) -> None:
    _, board, schedule, clock = rig()
    journal = Journal.open(tmp_path)
    backend = Backend(
        board, schedule, config_path=Path("/etc/g.yaml"), dry_run=False, journal=journal
    )
    key = ResourceKey("", "ConfigMap", "prod", "app")
    drift = DriftReport(key, False, (FieldChange("/data/v", "1", "2"),))
    journal.record_pass(
        target="web",
        revision=COMMIT,
        outcome="converged",
        started_at=clock.time() - 30,
        duration_seconds=1.0,
        writes=1,
        error=None,
        drifts=[(clock.time() - 30, ChangeSetEntry(key, Action.CORRECTED, drift))],
    )
    board.record(passed("web", clock.time()))
    assert "Deploy web" in backend.status_page() and 'href="targets/web"' in backend.status_page()
    page = backend.target_page("web")
    assert page is not None and "ConfigMap prod/app" in page and "/data/v" in page
    assert backend.target_page("nope") is None
    journal.close()


def test_shutting_down_is_unready_and_has_no_next_run() -> None:
    backend, _, schedule, _ = rig()
    schedule.shutting_down = True
    assert backend.readiness() == ["shutting down"]
    assert backend.status()["targets"]["web"]["next_run_at"] is None


def test_unhealthy_when_the_scheduler_died_or_a_pass_runs_for_an_hour() -> None:
    backend, board, schedule, clock = rig()
    board.started("web")
    clock.advance(STALL_SECONDS)
    assert backend.healthy()
    clock.advance(1.0)
    assert not backend.healthy()
    board.record(passed("web", clock.time()))
    assert backend.healthy()
    schedule.running = False
    assert not backend.healthy()


def test_trigger_and_secret_pass_through() -> None:
    backend, _, schedule, _ = rig()
    assert backend.webhook_secret() is None
    backend.secret = "s"
    assert backend.webhook_secret() == "s"
    assert backend.trigger(None) == ["web"] and schedule.triggered == [None]


def test_board_ignores_a_pass_of_a_forgotten_target() -> None:
    board = StatusBoard(Metrics(), ManualClock())
    board.track("web", 60.0)
    board.started("web")
    board.forget("web")
    board.started("web")
    board.record(passed("web", 0.0))
    assert board.as_dict(lambda _name: None) == {}
    assert b'target="web"' not in board.metrics.render()  # no pass counted, no gauge set


def test_failed_result_and_its_line() -> None:
    error = GitopsdError("bad.yaml document 1:\n kind is missing")
    result = PassResult.failed("web", error, 5.0)
    assert (result.outcome, result.revision, result.changes, result.plan) == (
        PassOutcome.FAILED,
        None,
        ChangeSet(),
        None,
    )
    assert (result.started_at, result.duration_seconds, result.error) == (5.0, 0.0, error)
    assert failure_line("web", error) == "target web: bad.yaml document 1: kind is missing"
    assert failure_line("web", "target web, remote r: down") == "target web, remote r: down"
