"""`depends_on` against the real kube-apiserver (issue 14): app waits until db's Deployment
is available, then its pass runs at once. The test plays the deployment controller through
the status subresource, and drives the daemon's DependencyTracker as the daemon does.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from kubernetes import client

from gitopsd.ordered import DependencyTracker
from gitopsd.passresult import PassOutcome, PassResult
from gitopsd.reconcile import Reconciler
from tests.cluster.conftest import Rig
from tests.cluster.test_health_wait import DEPLOYMENT, available, write_deployment_status
from tests.support.sources import FilesSource

APP = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: app-settings}
data: {database: db}
"""


def test_app_waits_for_db_then_runs_once_db_is_healthy(rig: Rig, api_client: Any) -> None:
    rig.configure(wait=True, health_timeout_seconds=1.0)
    rig.source.files["db.yaml"] = DEPLOYMENT
    app_settings = replace(rig.settings, name=f"app-{rig.unique}", wait=False)
    app_settings = replace(app_settings, depends_on=(rig.settings.name,))
    app_source = FilesSource()
    app_source.files["app.yaml"] = APP
    app = Reconciler(app_settings, app_source, rig.adapter, rig.journal)
    tracker = DependencyTracker([rig.settings, app_settings])

    def run(name: str, reconcile: Any) -> tuple[PassResult, list[str]]:
        why = tracker.begin(name)
        result = reconcile() if why is None else PassResult.waiting(name, why, 0.0)
        return result, tracker.end(result)

    db_result, freed = run(rig.settings.name, rig.run)
    assert db_result.outcome is PassOutcome.PROGRESSING and freed == []
    waiting, _ = run(app_settings.name, app.run)
    assert waiting.outcome is PassOutcome.WAITING
    assert waiting.waiting_for == (
        f"waiting for target {rig.settings.name}: progressing, 0/2 replicas created "
        f"(Deployment.apps {rig.namespace}/web)"
    )
    assert not config_map_exists(api_client, rig.namespace)

    write_deployment_status(api_client, rig.namespace, available(2))
    db_result, freed = run(rig.settings.name, rig.run)

    assert db_result.outcome is PassOutcome.HEALTHY
    assert freed == [app_settings.name]  # the daemon runs app's pass now
    app_result, _ = run(app_settings.name, app.run)
    assert app_result.outcome is PassOutcome.CONVERGED, app_result.error
    assert config_map_exists(api_client, rig.namespace)


def config_map_exists(api_client: Any, namespace: str) -> bool:
    try:
        client.CoreV1Api(api_client).read_namespaced_config_map("app-settings", namespace)
    except client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True
