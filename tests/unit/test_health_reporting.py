"""Health beyond one pass: health_changed notifications, /readyz with
`http.ready_requires_healthy`, a waiting target's status, and last known health."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gitopsd.clock import ManualClock
from gitopsd.config import load_config
from gitopsd.health import Health, ObjectHealth
from gitopsd.metrics import Metrics
from gitopsd.model import ChangeSet, ResourceKey, Revision
from gitopsd.notifications import (
    EventType,
    HealthChange,
    dedupe_key,
    describe,
    pass_events,
    slack_text,
    webhook_body,
)
from gitopsd.notifyconfig import SinkSettings
from gitopsd.passresult import ObjectStatus, PassOutcome, PassResult
from gitopsd.status import StatusBoard
from gitopsd.statuspage import index_page
from tests.unit.test_statuspage import NOW, status, target, text

WEB = ResourceKey("apps", "Deployment", "prod", "web")
REVISION = Revision("0123456789abcdef0123456789abcdef01234567", "refs/heads/main", "m", "a")


def passed(outcome: PassOutcome, *health: ObjectStatus, target: str = "web") -> PassResult:
    return PassResult(
        target, outcome, REVISION, ChangeSet(), None, None, 1_000_000.0, 2.0, health=health
    )


def slow(reason: str = "1/3 replicas available") -> ObjectStatus:
    return ObjectStatus(WEB, ObjectHealth(Health.IN_PROGRESS, reason))


def up() -> ObjectStatus:
    return ObjectStatus(WEB, ObjectHealth(Health.CURRENT, "3/3 replicas available"))


def test_a_workload_going_progressing_is_a_health_changed_event() -> None:
    result = passed(PassOutcome.PROGRESSING, slow())
    [event] = pass_events(result, HealthChange("ok", "progressing"), dry_run=False)
    assert event.type is EventType.HEALTH_CHANGED
    assert (event.previous_health, event.health) == ("ok", "progressing")
    assert describe(event) == (
        "web: health ok -> progressing at 0123456789ab: "
        "Deployment.apps prod/web: InProgress, 1/3 replicas available"
    )
    body = json.loads(webhook_body(event, {}))
    assert (body["event"], body["previous_health"], body["health"]) == (
        "health_changed",
        "ok",
        "progressing",
    )
    assert "1/3 replicas available" in body["summary"]
    assert ":hourglass:" in slack_text(event, {})


def test_recovery_from_progressing_is_both_recovered_and_health_changed() -> None:
    events = pass_events(
        passed(PassOutcome.HEALTHY, up()), HealthChange("progressing", "ok"), dry_run=False
    )
    assert [e.type for e in events] == [EventType.TARGET_RECOVERED, EventType.HEALTH_CHANGED]
    assert describe(events[1]) == "web: health progressing -> ok at 0123456789ab"


def test_waiting_for_a_dependency_and_running_after_it_is_no_news() -> None:
    # Each daemon start has app wait for db's first pass: no health_changed, no recovery.
    result = PassResult.waiting("app", "waiting for target db: pass in progress", 1_000_000.0)
    assert pass_events(result, HealthChange("unknown", "waiting"), dry_run=False) == ()
    ran = passed(PassOutcome.CONVERGED, target="app")
    assert pass_events(ran, HealthChange("waiting", "ok"), dry_run=False) == ()


def test_no_health_changed_without_a_workload_change() -> None:
    assert (
        pass_events(passed(PassOutcome.IN_SYNC), HealthChange("unknown", "ok"), dry_run=False) == ()
    )
    assert pass_events(passed(PassOutcome.HEALTHY, up()), None, dry_run=False) == ()


def test_two_moves_of_one_commit_are_not_collapsed_as_repeats() -> None:
    [one] = pass_events(
        passed(PassOutcome.PROGRESSING, slow()), HealthChange("ok", "progressing"), dry_run=False
    )
    [two] = pass_events(
        passed(PassOutcome.DEGRADED, slow()), HealthChange("ok", "degraded"), dry_run=False
    )
    assert dedupe_key(one) != dedupe_key(two)


def test_health_changed_is_an_event_a_sink_can_choose(tmp_path: Path) -> None:
    path = tmp_path / "gitopsd.yaml"
    path.write_text(
        "state_dir: state\n"
        "http: {port: 9100, ready_requires_healthy: true}\n"
        "targets: [{name: web, repo: https://git.example.com/i.git, branch: main}]\n"
        "notify: [{type: slack, url_env: U, events: [health_changed]}]\n"
    )
    config = load_config(path)
    [sink] = config.notify
    assert isinstance(sink, SinkSettings) and sink.events == {EventType.HEALTH_CHANGED}
    assert config.http is not None and config.http.ready_requires_healthy
    path.write_text(path.read_text().replace(", ready_requires_healthy: true", ""))
    http = load_config(path).http
    assert http is not None and not http.ready_requires_healthy


def board(*names: str) -> StatusBoard:
    result = StatusBoard(Metrics(), ManualClock())
    for name in names:
        result.track(name, 60.0)
    return result


def test_not_up_names_progressing_degraded_and_waiting_targets() -> None:
    statuses = board("web", "db", "app", "api")
    statuses.record(passed(PassOutcome.PROGRESSING, slow(), target="web"))
    statuses.record(passed(PassOutcome.HEALTHY, up(), target="db"))
    statuses.record(PassResult.waiting("app", "waiting for target web: progressing", 0.0))
    statuses.record(passed(PassOutcome.CONVERGED, slow(), target="api"))  # does not wait
    assert statuses.not_up() == [
        "target web: progressing: Deployment web: 1/3 replicas available",
        "target app: waiting: waiting for target web: progressing",
    ]
    assert statuses.failing() == []


def test_a_waiting_target_keeps_its_last_pass_and_is_not_failing() -> None:
    statuses = board("app")
    statuses.record(passed(PassOutcome.CONVERGED, up(), target="app"))
    change = statuses.record(PassResult.waiting("app", "waiting for target db: no pass yet", 5.0))
    assert change == HealthChange("ok", "waiting")
    status = statuses.as_dict(lambda name: None)["app"]
    assert status["waiting_for"] == "waiting for target db: no pass yet"
    assert status["last_pass"]["outcome"] == "waiting"
    assert status["revision"] == REVISION.commit and status["consecutive_failures"] == 0
    assert status["last_success_at"] == 1_000_002.0


def test_last_known_health_of_a_target_without_wait_in_status_and_metrics() -> None:
    statuses = board("api")
    statuses.record(passed(PassOutcome.CONVERGED, slow(), target="api"))
    status = statuses.as_dict(lambda name: None)["api"]
    assert status["health"] == "ok"  # the pass is fine; its objects are not all up yet
    assert status["unhealthy_objects"] == [
        {
            "group": "apps",
            "kind": "Deployment",
            "namespace": "prod",
            "name": "web",
            "status": "InProgress",
            "reason": "1/3 replicas available",
        }
    ]
    metrics = statuses.metrics.render().decode()
    assert 'gitopsd_target_health{status="progressing",target="api"} 1.0' in metrics
    assert 'gitopsd_object_health{kind="Deployment",name="web",namespace="prod",' in metrics
    statuses.record(passed(PassOutcome.IN_SYNC, up(), target="api"))
    metrics = statuses.metrics.render().decode()
    assert 'gitopsd_target_health{status="healthy",target="api"} 1.0' in metrics
    assert "gitopsd_object_health{" not in metrics


@pytest.mark.parametrize(
    ("outcome", "health", "expected"),
    [
        (PassOutcome.CONVERGED, (), None),
        (PassOutcome.CONVERGED, ("Current",), PassOutcome.HEALTHY),
        (PassOutcome.IN_SYNC, ("Current", "InProgress"), PassOutcome.PROGRESSING),
        (PassOutcome.IN_SYNC, ("Failed", "InProgress"), PassOutcome.DEGRADED),
        (PassOutcome.PROGRESSING, ("Current",), PassOutcome.PROGRESSING),
    ],
)
def test_workload_health(
    outcome: PassOutcome, health: tuple[str, ...], expected: PassOutcome | None
) -> None:
    objects = [ObjectStatus(WEB, ObjectHealth(Health(h), "")) for h in health]
    assert passed(outcome, *objects).workload_health is expected


def test_the_status_page_says_what_a_waiting_target_waits_for() -> None:
    why = "waiting for target db: progressing, 1/3 <replicas> available"
    page = index_page(status(app=target(health="waiting", waiting_for=why), db=target()), now=NOW)
    assert "waiting waiting for target db: progressing, 1/3 &lt;replicas&gt; available" in text(
        page
    )
    assert text(index_page(status(db=target()), now=NOW)).count("waiting") == 0


def test_waiting_is_not_logged_as_a_failing_target() -> None:
    statuses = board("app", "db")
    with capture_logs() as logs:
        statuses.record(PassResult.waiting("app", "waiting for target db: no pass yet", 0.0))
        statuses.record(passed(PassOutcome.DEGRADED, slow(), target="db"))
    assert [e["target"] for e in logs if e["event"] == "target_failing"] == ["db"]
