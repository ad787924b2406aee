"""`wait: true` against the real kube-apiserver (issue 14).

The test cluster runs no controllers, so nothing becomes healthy by itself: each test plays
the controller by writing `status` through the status subresource, as a controller would.
"""

from __future__ import annotations

import threading
from typing import Any

from kubernetes import client

from gitopsd.health import Health
from gitopsd.passresult import PassOutcome, PassResult
from tests.cluster.conftest import Rig, read_testdata
from tests.e2e.conftest import wait_for

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: registry.example/web:1}]
"""


def available(replicas: int) -> dict[str, Any]:
    """The status the deployment controller writes once a rollout is done."""
    return {
        "observedGeneration": 1,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        ],
    }


def write_deployment_status(api_client: Any, namespace: str, status: dict[str, Any]) -> None:
    client.AppsV1Api(api_client).patch_namespaced_deployment_status(
        "web", namespace, {"status": status}
    )


def deployment_of(result: PassResult) -> tuple[Health, str]:
    [found] = [o.health for o in result.health if o.key.kind == "Deployment"]
    return found.status, found.reason


def test_deployment_stays_progressing_until_its_status_says_available(
    rig: Rig, api_client: Any
) -> None:
    rig.source.files["web.yaml"] = DEPLOYMENT
    rig.configure(wait=True, health_timeout_seconds=1.0)

    timed_out = rig.run()

    assert timed_out.outcome is PassOutcome.PROGRESSING, timed_out.error
    assert deployment_of(timed_out) == (Health.IN_PROGRESS, "0/2 replicas created")
    assert "Deployment" in timed_out.health_reason

    # A waiting pass sees the controller's write, whenever it lands, and ends healthy.
    rig.configure(health_timeout_seconds=60.0)
    results: list[PassResult] = []
    waiting = threading.Thread(target=lambda: results.append(rig.run()))
    waiting.start()
    try:
        write_deployment_status(api_client, rig.namespace, {"observedGeneration": 1, "replicas": 2})
        write_deployment_status(api_client, rig.namespace, available(2))
    finally:
        waiting.join(60)
    [healthy] = results
    assert healthy.outcome is PassOutcome.HEALTHY, healthy.error
    assert deployment_of(healthy) == (Health.CURRENT, "2/2 replicas available")
    assert healthy.unhealthy == ()

    changes = [e for e in rig.journal.events(rig.settings.name) if e["event"] == "health_changed"]
    assert [(c["detail"]["from"], c["detail"]["to"]) for c in changes] == [
        ("unknown", "progressing"),
        ("progressing", "healthy"),
    ]
    assert "0/2 replicas created" in changes[0]["detail"]["reason"]
    # Once per change: another healthy pass journals nothing.
    assert rig.run().outcome is PassOutcome.HEALTHY
    again = [e for e in rig.journal.events(rig.settings.name) if e["event"] == "health_changed"]
    assert len(again) == 2


def test_progress_deadline_exceeded_is_degraded_with_the_reason(rig: Rig, api_client: Any) -> None:
    rig.source.files["web.yaml"] = DEPLOYMENT
    assert rig.run().outcome is PassOutcome.CONVERGED
    message = 'ReplicaSet "web-5d8f" has timed out progressing.'
    write_deployment_status(
        api_client,
        rig.namespace,
        {
            "observedGeneration": 1,
            "replicas": 2,
            "updatedReplicas": 2,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": message,
                }
            ],
        },
    )
    rig.configure(wait=True, health_timeout_seconds=60.0)

    result = rig.run()

    assert result.outcome is PassOutcome.DEGRADED, result.error
    assert deployment_of(result) == (Health.FAILED, f"ProgressDeadlineExceeded: {message}")
    assert result.health_reason.startswith(f"Deployment.apps {rig.namespace}/web: Failed")


def test_custom_resource_ready_false_is_reported_with_its_message(
    rig: Rig, api_client: Any
) -> None:
    rig.source.files["widget.yaml"] = read_testdata("health-widget.yaml", ID=rig.unique)
    group = f"h-{rig.unique}.test.gitopsd.io"
    crds = client.ApiextensionsV1Api(api_client)
    try:
        assert rig.run().outcome is PassOutcome.CONVERGED
        client.CustomObjectsApi(api_client).patch_namespaced_custom_object_status(
            group,
            "v1",
            rig.namespace,
            "widgets",
            "cache",
            {
                "status": {
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "False",
                            "reason": "DependencyMissing",
                            "message": "secret cache-credentials not found",
                        }
                    ]
                }
            },
        )
        rig.configure(wait=True, health_timeout_seconds=1.0)

        result = rig.run()

        assert result.outcome is PassOutcome.PROGRESSING, result.error
        by_kind = {o.key.kind: o.health for o in result.health}
        assert by_kind["CustomResourceDefinition"].status is Health.CURRENT
        assert (by_kind["Widget"].status, by_kind["Widget"].reason) == (
            Health.IN_PROGRESS,
            "DependencyMissing: secret cache-credentials not found",
        )
        assert [o.key.kind for o in result.unhealthy] == ["Widget"]
    finally:
        crds.delete_custom_resource_definition(f"widgets.{group}")
        wait_for(lambda: _gone(crds, f"widgets.{group}"))


def _gone(crds: client.ApiextensionsV1Api, name: str) -> bool:
    try:
        crds.read_custom_resource_definition(name)
    except client.ApiException as error:
        return error.status == 404
    return False


def test_without_wait_the_last_known_health_costs_no_extra_request(
    rig: Rig, api_client: Any
) -> None:
    # It was one GET per object the pass wrote: 1,000 more requests for a cold sync of
    # 1,000 objects (bench at RTT 5 ms). The server's answer to the apply says as much.
    rig.source.files["web.yaml"] = DEPLOYMENT

    created = rig.run()

    assert created.outcome is PassOutcome.CONVERGED, created.error
    assert deployment_of(created) == (Health.IN_PROGRESS, "0/2 replicas created")
    # One get: the look for an unlabelled Deployment of that name to adopt (livestate).
    assert created.requests.get("get", 0) == 1, created.requests
    write_deployment_status(api_client, rig.namespace, {"observedGeneration": 1, "replicas": 2})
    write_deployment_status(api_client, rig.namespace, available(2))
    again = rig.run()
    assert again.outcome is PassOutcome.IN_SYNC, again.error
    assert deployment_of(again) == (Health.CURRENT, "2/2 replicas available")
    assert again.requests.get("get", 0) == 0, again.requests
