"""Waiting for health: the verdict, the poll loop on a manual clock, exit code 5, config keys."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gitopsd import cli
from gitopsd.adapters.base import KindInfo
from gitopsd.clock import ManualClock
from gitopsd.config import load_config
from gitopsd.errors import ConfigError
from gitopsd.health import Health, ObjectHealth
from gitopsd.metrics import Metrics
from gitopsd.model import ChangeSet, DesiredObject, LiveObject, ResourceKey, Revision
from gitopsd.notifications import CommitState, commit_state
from gitopsd.passresult import ObjectStatus, PassOutcome, PassResult
from gitopsd.status import TargetStatus
from gitopsd.waiting import POLL_SECONDS, await_health, verdict

JOB = ResourceKey("batch", "Job", "apps", "migrate")
CM = ResourceKey("", "ConfigMap", "apps", "settings")


def _declared(key: ResourceKey, api_version: str) -> DesiredObject:
    manifest = {"apiVersion": api_version, "kind": key.kind, "metadata": {"name": key.name}}
    return DesiredObject(key, manifest, "x.yaml#0")


class Cluster:
    """Just enough of a ClusterAdapter: objects by key, and a status that changes on a schedule."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.objects: dict[ResourceKey, dict[str, Any]] = {}
        self.later: list[tuple[float, ResourceKey, dict[str, Any]]] = []
        self.gets = 0

    def kind_info(self, api_version: str, kind: str) -> KindInfo | None:
        group, _, version = api_version.rpartition("/")
        return KindInfo(group, version, kind, kind.lower() + "s", True)

    def get(self, info: KindInfo, key: ResourceKey) -> LiveObject | None:
        self.gets += key == JOB
        for at, changed, status in self.later:
            if changed == key and self.clock.monotonic() >= at:
                self.objects[key]["status"] = status
        found = self.objects.get(key)
        return LiveObject(key, found) if found is not None else None


def _job(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate"},
        "status": status,
    }


def _wait(cluster: Cluster, clock: ManualClock, timeout: float) -> tuple[PassOutcome, Any]:
    declared = [_declared(JOB, "batch/v1"), _declared(CM, "v1")]
    cluster.objects[CM] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings"},
    }
    return await_health(
        cluster,  # type: ignore[arg-type]  # the methods a wait calls
        declared,
        timeout=timeout,
        clock=clock,
        stop=threading.Event(),
    )


def test_wait_ends_healthy_when_the_job_completes_before_the_timeout() -> None:
    clock = ManualClock()
    cluster = Cluster(clock)
    cluster.objects[JOB] = _job({"startTime": "t", "active": 1})
    done = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
    cluster.later.append((clock.monotonic() + 5 * POLL_SECONDS, JOB, done))

    outcome, statuses = _wait(cluster, clock, timeout=60)

    assert outcome is PassOutcome.HEALTHY
    assert {s.health.status for s in statuses} == {Health.CURRENT}
    assert cluster.gets == 6  # one read of the Job at start, then one per poll until it is done


def test_wait_ends_progressing_at_the_timeout_with_the_last_reading() -> None:
    clock = ManualClock()
    cluster = Cluster(clock)
    cluster.objects[JOB] = _job({"startTime": "t", "active": 1})
    start = clock.monotonic()

    outcome, statuses = _wait(cluster, clock, timeout=3.5)

    assert outcome is PassOutcome.PROGRESSING
    assert clock.monotonic() - start == pytest.approx(3.5)
    [job] = [s for s in statuses if s.key == JOB]
    assert job.health == ObjectHealth(Health.IN_PROGRESS, "Job running: 0/1 succeeded")


def test_wait_stops_at_the_first_failure() -> None:
    clock = ManualClock()
    cluster = Cluster(clock)
    failed = {
        "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]
    }
    cluster.objects[JOB] = _job(failed)

    outcome, _ = _wait(cluster, clock, timeout=60)

    assert outcome is PassOutcome.DEGRADED
    assert cluster.gets == 1


def test_a_missing_object_is_waited_for() -> None:
    statuses = [ObjectStatus(JOB, ObjectHealth(Health.NOT_FOUND, "not found"))]
    assert verdict(statuses) is None
    assert verdict([]) is PassOutcome.HEALTHY


def _result(outcome: PassOutcome, *health: ObjectStatus) -> PassResult:
    return PassResult("web", outcome, None, ChangeSet(), None, None, 0.0, 0.0, health=health)


@pytest.mark.parametrize(
    ("outcomes", "code"),
    [
        ([PassOutcome.HEALTHY, PassOutcome.CONVERGED], cli.EXIT_OK),
        ([PassOutcome.HEALTHY, PassOutcome.PROGRESSING], cli.EXIT_UNHEALTHY),
        ([PassOutcome.DEGRADED], cli.EXIT_UNHEALTHY),
        ([PassOutcome.DEGRADED, PassOutcome.FAILED], cli.EXIT_FAILED),
    ],
)
def test_once_exit_code_5_for_an_unhealthy_waiting_target(
    outcomes: list[PassOutcome], code: int
) -> None:
    assert cli.EXIT_UNHEALTHY == 5
    assert cli.exit_code([_result(o) for o in outcomes]) == code


def test_health_reason_names_the_worst_object_first() -> None:
    result = _result(
        PassOutcome.DEGRADED,
        ObjectStatus(CM, ObjectHealth(Health.CURRENT, "no status")),
        ObjectStatus(CM, ObjectHealth(Health.IN_PROGRESS, "1/3 replicas available")),
        ObjectStatus(JOB, ObjectHealth(Health.FAILED, "Job failed: BackoffLimitExceeded")),
    )
    assert result.health_reason == (
        "Job.batch apps/migrate: Failed, Job failed: BackoffLimitExceeded (and 1 more)"
    )
    assert result.outcome.in_sync and result.outcome.applied and result.outcome.unhealthy


def test_wait_and_health_timeout_config(tmp_path: Path) -> None:
    path = tmp_path / "gitopsd.yaml"
    target = "  - {name: web, repo: https://git.example/r.git, branch: main"
    path.write_text(
        f"targets:\n{target}}}\n{target.replace('web', 'api')}, wait: true, health_timeout: 90s}}\n"
    )
    config = load_config(path)
    web, api = config.target("web"), config.target("api")
    assert (web.wait, web.health_timeout_seconds) == (False, 300.0)
    assert (api.wait, api.health_timeout_seconds) == (True, 90.0)
    path.write_text(f"targets:\n{target}, health_timeout: 2h}}\n")
    with pytest.raises(ConfigError, match=r"targets\[0\]\.health_timeout"):
        load_config(path)


def test_status_reports_a_waiting_targets_health_and_unhealthy_objects() -> None:
    status = TargetStatus("web", 60.0)
    slow = ObjectStatus(JOB, ObjectHealth(Health.IN_PROGRESS, "Job running: 0/1 succeeded"))
    assert status.record(_result(PassOutcome.PROGRESSING, slow)) == "unknown"
    shown = status.as_dict(None)
    assert (shown["health"], shown["in_sync"]) == ("progressing", True)
    assert shown["unhealthy_objects"] == [
        {**JOB.as_dict(), "status": "InProgress", "reason": "Job running: 0/1 succeeded"}
    ]
    done = ObjectStatus(JOB, ObjectHealth(Health.CURRENT, "Job complete: 1/1 succeeded"))
    assert status.record(_result(PassOutcome.HEALTHY, done)) == "progressing"
    assert (status.health, status.as_dict(None)["unhealthy_objects"]) == ("ok", [])


def test_metrics_keep_series_only_for_unhealthy_objects() -> None:
    metrics = Metrics()

    def sample(metric: str, /, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(metric, labels)

    slow = ObjectStatus(JOB, ObjectHealth(Health.IN_PROGRESS, "Job running: 0/1 succeeded"))
    fine = ObjectStatus(CM, ObjectHealth(Health.CURRENT, "no status"))
    metrics.observe_pass(_result(PassOutcome.PROGRESSING, slow, fine))
    job = {"target": "web", "kind": "Job", "namespace": "apps", "name": "migrate"}
    assert sample("gitopsd_target_health", target="web", status="progressing") == 1
    assert sample("gitopsd_target_health", target="web", status="healthy") == 0
    assert sample("gitopsd_object_health", **job, status="InProgress") == 1
    settings = {**job, "kind": "ConfigMap", "name": "settings"}
    assert sample("gitopsd_object_health", **settings, status="Current") is None

    done = ObjectStatus(JOB, ObjectHealth(Health.CURRENT, "Job complete: 1/1 succeeded"))
    metrics.observe_pass(_result(PassOutcome.HEALTHY, done, fine))
    assert sample("gitopsd_target_health", target="web", status="healthy") == 1
    assert sample("gitopsd_object_health", **job, status="InProgress") is None
    metrics.forget("web")
    assert sample("gitopsd_target_health", target="web", status="healthy") is None


@pytest.mark.parametrize(
    ("outcome", "state"),
    [
        (PassOutcome.HEALTHY, CommitState.SUCCESS),
        (PassOutcome.PROGRESSING, CommitState.PENDING),  # may still come up
        (PassOutcome.DEGRADED, CommitState.FAILURE),  # applied, and an object failed
    ],
)
def test_commit_status_of_a_waiting_pass(outcome: PassOutcome, state: CommitState) -> None:
    revision = Revision(commit="0" * 40, ref="main")
    assert commit_state(replace(_result(outcome), revision=revision)) is state
