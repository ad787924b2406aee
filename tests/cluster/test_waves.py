"""Sync waves against the real kube-apiserver (issue 14): a migration Job in wave -1
before the Deployment of wave 0. The tests play the Job and Deployment controllers by
writing `status` through the status subresource.
"""

from __future__ import annotations

import threading
from typing import Any

from kubernetes import client

from gitopsd.health import Health
from gitopsd.model import Action
from gitopsd.passresult import PassOutcome, PassResult
from tests.cluster.conftest import Rig
from tests.cluster.test_health_wait import DEPLOYMENT, available, write_deployment_status
from tests.support.waiting import wait_until

JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations: {gitopsd.io/wave: "-1"}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: registry.example/migrate:1}]
"""

OLD = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: old}
data: {a: "1"}
"""

STARTED = "2026-11-27T18:00:00Z"


def complete() -> dict[str, Any]:
    """The status the Job controller writes when the Job's pod succeeded."""
    return {
        "startTime": STARTED,
        "completionTime": "2026-11-27T18:00:05Z",
        "succeeded": 1,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached"},
        ],
    }


def failed() -> dict[str, Any]:
    """The status the Job controller writes when the backoff limit is reached."""
    message = "Job has reached the specified backoff limit"
    return {
        "startTime": STARTED,
        "failed": 1,
        "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": message,
            },
        ],
    }


def write_job_status(api_client: Any, namespace: str, status: dict[str, Any]) -> None:
    client.BatchV1Api(api_client).patch_namespaced_job_status(
        "migrate", namespace, {"status": status}
    )


def exists(api_client: Any, namespace: str, kind: str, name: str) -> bool:
    read = {
        "Deployment": client.AppsV1Api(api_client).read_namespaced_deployment,
        "Job": client.BatchV1Api(api_client).read_namespaced_job,
        "ConfigMap": client.CoreV1Api(api_client).read_namespaced_config_map,
    }[kind]
    try:
        read(name, namespace)
    except client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def actions(result: PassResult) -> dict[str, Action]:
    return {e.key.name: e.action for e in result.changes.entries}


def start_with_old_config_map(rig: Rig) -> None:
    """A first pass leaves a ConfigMap the next revision drops (prune must wait for waves)."""
    rig.source.files = {"old.yaml": OLD}
    assert rig.run().outcome is PassOutcome.CONVERGED
    rig.source.files = {"job.yaml": JOB, "web.yaml": DEPLOYMENT}
    rig.configure(wait=True, health_timeout_seconds=1.0)


def test_wave_0_is_written_only_once_the_wave_minus_1_job_is_complete(
    rig: Rig, api_client: Any
) -> None:
    start_with_old_config_map(rig)

    # The Job never completes within the timeout: nothing of wave 0 and no prune.
    held = rig.run()
    assert held.outcome is PassOutcome.PROGRESSING, held.error
    assert [o.key.kind for o in held.health] == ["Job"]
    assert actions(held) == {
        "migrate": Action.CREATED,
        "web": Action.SKIPPED,
        "old": Action.SKIPPED,
    }
    assert not exists(api_client, rig.namespace, "Deployment", "web")
    assert exists(api_client, rig.namespace, "ConfigMap", "old")

    # The Job completes: the pass goes on to wave 0, waits for it, then prunes.
    write_job_status(api_client, rig.namespace, complete())
    rig.configure(health_timeout_seconds=60.0)
    results: list[PassResult] = []
    waiting = threading.Thread(target=lambda: results.append(rig.run()))
    waiting.start()
    try:
        wait_until(
            lambda: exists(api_client, rig.namespace, "Deployment", "web"), "web created", 60
        )
        write_deployment_status(api_client, rig.namespace, available(2))
    finally:
        waiting.join(60)
    [healthy] = results
    assert healthy.outcome is PassOutcome.HEALTHY, healthy.error
    assert actions(healthy)["web"] is Action.CREATED
    assert actions(healthy)["old"] is Action.PRUNED
    assert {o.key.kind: o.health.status for o in healthy.health} == {
        "Job": Health.CURRENT,
        "Deployment": Health.CURRENT,
    }


def test_a_failed_wave_minus_1_job_stops_the_pass_writing_and_pruning_nothing_more(
    rig: Rig, api_client: Any
) -> None:
    start_with_old_config_map(rig)
    assert rig.run().outcome is PassOutcome.PROGRESSING
    write_job_status(api_client, rig.namespace, failed())
    rig.configure(health_timeout_seconds=60.0)

    result = rig.run()

    assert result.outcome is PassOutcome.DEGRADED, result.error
    assert result.health_reason.startswith(f"Job.batch {rig.namespace}/migrate: Failed, ")
    assert "BackoffLimitExceeded" in result.health_reason
    assert actions(result)["web"] is Action.SKIPPED
    assert actions(result)["old"] is Action.SKIPPED
    assert not exists(api_client, rig.namespace, "Deployment", "web")
    assert exists(api_client, rig.namespace, "ConfigMap", "old")


def test_a_wave_that_is_no_integer_refuses_the_revision_naming_the_document(rig: Rig) -> None:
    rig.source.files = {"job.yaml": JOB.replace('"-1"', '"first"'), "web.yaml": DEPLOYMENT}

    result = rig.run()

    assert result.outcome is PassOutcome.FAILED
    assert str(result.error).startswith("job.yaml#1: annotation gitopsd.io/wave: 'first'")
    assert result.changes.writes == 0


def test_an_invalid_object_in_a_later_wave_refuses_the_revision_before_any_write(
    rig: Rig, api_client: Any
) -> None:
    invalid = DEPLOYMENT.replace("replicas: 2", "replicas: -3")
    rig.source.files = {"job.yaml": JOB, "web.yaml": invalid}
    rig.configure(wait=True, health_timeout_seconds=1.0)

    result = rig.run()

    assert result.outcome is PassOutcome.FAILED
    assert "revision refused, nothing written" in str(result.error)
    assert "Deployment.apps" in str(result.error) and result.changes.writes == 0
    assert not exists(api_client, rig.namespace, "Job", "migrate")
