"""`depends_on` in the daemon and in `--once`: a dependent waits, then runs at once when its
dependency becomes ready; `--once` runs targets in dependency order, independent ones
together. Passes are fakes (tests/support/fake_runner.py); the daemon, its scheduler and
workers are real, and the clock is frozen so only the passes the test causes run.
"""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitopsd.clock import ManualClock
from gitopsd.config import ClusterSettings, RefKind, SourceSettings, TargetSettings, load_config
from gitopsd.daemon import Daemon
from gitopsd.errors import ConfigError, NotOwnerError
from gitopsd.journal import Journal
from gitopsd.model import ChangeSet
from gitopsd.ordered import run_in_order
from gitopsd.passresult import PassOutcome, PassResult
from tests.support.fake_runner import Script
from tests.support.git_remotes import free_port
from tests.support.waiting import wait_until

REPO = "repo: https://git.example.com/i.git, branch: main"


def write_config(path: Path, port: int, extra: str = "") -> None:
    path.write_text(
        textwrap.dedent(
            f"""\
            state_dir: state
            interval: 1h
            stop_timeout: 5s
            http: {{port: {port}, ready_requires_healthy: true}}
            targets:
              - {{name: db, {REPO}, wait: true}}
              - {{name: app, {REPO}, depends_on: [db]}}
            """
        )
        + extra
    )


@pytest.fixture
def daemon(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Daemon, Script, Path]]:
    clock = ManualClock(float(int(time.time())))
    script = Script(outcomes={"db": PassOutcome.PROGRESSING}, clock=clock)
    path = tmp_path / "gitopsd.yaml"
    write_config(path, free_port(), getattr(request, "param", ""))
    config = load_config(path)
    journal = Journal.open(config.state_dir)
    running = Daemon(config, runner_factory=script.factory, journal=journal, clock=clock)
    exit_codes: list[int] = []
    thread = threading.Thread(target=lambda: exit_codes.append(running.run()))
    thread.start()
    try:
        yield running, script, path
    finally:
        script.release_all()
        running.request_stop()
        thread.join(10)
        journal.close()
    assert exit_codes == [0]


def status(daemon: Daemon, name: str) -> dict[str, object]:
    entry: dict[str, object] = daemon.backend.status()["targets"].get(name, {})
    return entry  # {} until the daemon tracks the target


def test_app_waits_for_db_then_runs_at_once_when_db_becomes_healthy(
    daemon: tuple[Daemon, Script, Path],
) -> None:
    running, script, _ = daemon
    assert script.wait_calls("db", 1)
    wait_until(lambda: status(running, "app").get("health") == "waiting", "app waiting", 10)
    assert script.calls["app"] == 0  # never run: waiting is not a failed pass
    assert status(running, "app")["consecutive_failures"] == 0
    assert str(status(running, "app")["waiting_for"]).startswith("waiting for target db: ")
    # ready_requires_healthy: the progressing db and the waiting app make /readyz fail.
    assert running.backend.readiness() == [
        "target db: progressing",
        f"target app: waiting: {status(running, 'app')['waiting_for']}",
    ]

    script.outcomes["db"] = PassOutcome.HEALTHY
    running.trigger("db")  # db's next pass (a webhook, or its interval) finds it healthy

    # No interval passes (the clock is frozen an hour before app's next run): app runs
    # because db became ready.
    assert script.wait_calls("app", 1)
    wait_until(lambda: status(running, "app")["health"] == "ok", "app ran", 10)
    assert status(running, "app")["waiting_for"] is None
    assert running.backend.readiness() == []


def test_a_cycle_is_refused_at_reload_and_the_running_configuration_kept(
    daemon: tuple[Daemon, Script, Path],
) -> None:
    running, script, path = daemon
    assert script.wait_calls("db", 1)
    text = path.read_text().replace("wait: true}", "wait: true, depends_on: [app]}")
    path.write_text(text)
    assert not running.reload()
    assert running.config.target("db").depends_on == ()
    with pytest.raises(ConfigError, match="dependency cycle db -> app -> db"):
        load_config(path)


def target(name: str, *needs: str) -> TargetSettings:
    source = SourceSettings(repo="memory", ref_kind=RefKind.BRANCH, ref="main")
    return TargetSettings(name, source, ClusterSettings(), depends_on=needs)


def ended(name: str, outcome: PassOutcome) -> PassResult:
    return PassResult(name, outcome, None, ChangeSet(), None, None, 0.0, 0.0)


def test_once_runs_dependencies_first_and_independent_targets_together() -> None:
    events: list[str] = []
    lock = threading.Lock()
    both_started = threading.Barrier(2, timeout=10)

    def run(settings: TargetSettings) -> PassResult:
        with lock:
            events.append(f"start {settings.name}")
        if settings.name in ("db", "cache"):
            both_started.wait()  # only returns if db and cache run at the same time
        with lock:
            events.append(f"end {settings.name}")
        return ended(settings.name, PassOutcome.HEALTHY)

    targets = [target("app", "db", "cache"), target("db"), target("cache"), target("web", "app")]
    results = run_in_order(targets, run)

    assert [r.target for r in results] == ["app", "db", "cache", "web"]
    assert all(r.outcome is PassOutcome.HEALTHY for r in results)
    assert events.index("start app") > max(events.index("end db"), events.index("end cache"))
    assert events.index("start web") > events.index("end app")


def test_once_leaves_a_dependent_waiting_when_its_dependency_is_not_up() -> None:
    ran: list[str] = []

    def run(settings: TargetSettings) -> PassResult:
        ran.append(settings.name)
        outcome = PassOutcome.DEGRADED if settings.name == "db" else PassOutcome.CONVERGED
        return ended(settings.name, outcome)

    results = run_in_order([target("app", "db"), target("db"), target("web", "app")], run)

    assert ran == ["db"]
    assert [(r.target, r.outcome, r.waiting_for) for r in results] == [
        ("app", PassOutcome.WAITING, "waiting for target db: degraded"),
        ("db", PassOutcome.DEGRADED, ""),
        ("web", PassOutcome.WAITING, "waiting for target app: waiting for target db: degraded"),
    ]
    # A dry run writes nothing: nothing to wait for, every target runs.
    ran.clear()
    run_in_order([target("app", "db"), target("db")], run, gated=False)
    assert sorted(ran) == ["app", "db"]


WORKER = f"  - {{name: worker, {REPO}, depends_on: [db]}}\n"


@pytest.mark.parametrize("daemon", [WORKER], indirect=True)
def test_a_dependent_that_cannot_be_triggered_does_not_stop_the_others(
    daemon: tuple[Daemon, Script, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    running, script, _ = daemon
    for name in ("app", "worker"):
        wait_until(
            lambda n=name: status(running, n).get("health") == "waiting", f"{name} waits", 10
        )
    trigger = running.trigger

    def moved_away(target: str | None) -> list[str]:
        if target == "app":  # with `ha:`, another replica took app over meanwhile
            raise NotOwnerError("target app: held by replica b")
        return trigger(target)

    monkeypatch.setattr(running, "trigger", moved_away)
    script.outcomes["db"] = PassOutcome.HEALTHY
    trigger("db")

    assert script.wait_calls("worker", 1)
    assert script.calls["app"] == 0
