"""A real 429: a cold sync against an API server with tiny in-flight limits converges,
and the log says how often the server throttled the pass.

The limits apply only with API Priority and Fairness off (with it on, requests queue
instead), and never to system:masters, so gitopsd runs as an ordinary user here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from gitopsd.adapters.kubernetes import KubernetesAdapter
from gitopsd.config import ClusterSettings, RefKind, SourceSettings, TargetSettings
from gitopsd.passresult import PassOutcome
from gitopsd.reconcile import Reconciler
from tests.support.cluster import ControlPlane, separate_control_plane
from tests.support.sources import FilesSource

OBJECTS = 500
LIMITS = (
    "--max-requests-inflight=1",
    "--max-mutating-requests-inflight=1",
    "--enable-priority-and-fairness=false",
)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    workdir = tmp_path_factory.mktemp("throttled") / "cluster"
    with separate_control_plane(workdir, apiserver_args=LIMITS) as plane:
        yield plane


def _admin(plane: ControlPlane) -> KubernetesAdapter:
    return KubernetesAdapter(ClusterSettings(kubeconfig=plane.kubeconfig), "unused")


def _grant_cluster_admin(admin: KubernetesAdapter, user: str) -> None:
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"{user}-cluster-admin"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    admin.apply(binding, dry_run=False, force=True)


def _configmaps(count: int) -> str:
    return "".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i:03}}}\ndata: {{i: '{i}'}}\n"
        for i in range(count)
    )


def test_cold_sync_under_429_converges_and_logs_the_throttling(plane: ControlPlane) -> None:
    admin = _admin(plane)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "throttled"}}
    admin.apply(namespace, dry_run=False, force=True)
    _grant_cluster_admin(admin, "gitopsd")
    settings = TargetSettings(
        name="throttled",
        source=SourceSettings(repo="memory", ref_kind=RefKind.BRANCH, ref="main"),
        cluster=ClusterSettings(kubeconfig=plane.user_kubeconfig("gitopsd"), concurrency=32),
        namespace="throttled",
    )
    adapter = KubernetesAdapter(settings.cluster, settings.inventory_namespace)
    source = FilesSource({"objects.yaml": _configmaps(OBJECTS)})
    try:
        with structlog.testing.capture_logs() as logs:
            result = Reconciler(settings, source, adapter).run()
        info = admin.kind_info("v1", "ConfigMap")
        assert info is not None
        existing = admin.list_owned(info, settings.name)
    finally:
        adapter.close()
        admin.close()

    print(f"requests {result.requests}")
    assert result.outcome is PassOutcome.CONVERGED, result.error
    assert len(existing) == OBJECTS
    print(f"throttled {result.throttled} times")
    # The limits really bit: otherwise this test would prove nothing.
    assert result.throttled > 0
    throttled = _events(logs, "api_throttled")
    assert [e["count"] for e in throttled] == [result.throttled], throttled
    [completed] = _events(logs, "pass_completed")
    assert completed["throttled"] == result.throttled


def _events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]
