"""Discovery in the forms an API server may answer in, against the real server, each forced
through the Accept header (issue 11: 1.27-1.29 serve aggregated discovery only as v2beta1,
older servers only the legacy endpoints). The test server (1.37) no longer serves v2beta1:
that form's parsing is the v2 parser's, unit-tested in tests/unit/test_discovery.py."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from gitopsd.adapters.discovery import AGGREGATED_V2, AGGREGATED_V2BETA1, LEGACY
from gitopsd.adapters.kubernetes import KubernetesAdapter
from gitopsd.config import ClusterSettings
from tests.support.cluster import ControlPlane


def _served(cluster: ControlPlane, accept: str) -> str:
    """What the server answers /apis with under `accept`: the document's apiVersion/kind."""
    request = urllib.request.Request(f"{cluster.url}/apis", headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, context=cluster.ssl_context(), timeout=10) as answer:
            document = json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return f"HTTP {refused.code}"
    return f"{document.get('apiVersion', '')}/{document['kind']}"


def _adapter(kubeconfig: Path, accept: str) -> KubernetesAdapter:
    adapter = KubernetesAdapter(ClusterSettings(kubeconfig=kubeconfig), "gitopsd-system")
    adapter.discovery_accept = accept
    adapter.refresh_discovery()
    return adapter


def test_the_server_answers_each_form_as_asked(cluster: ControlPlane) -> None:
    """Guards the test below: a form the server stopped serving would test nothing."""
    assert _served(cluster, AGGREGATED_V2) == "apidiscovery.k8s.io/v2/APIGroupDiscoveryList"
    assert _served(cluster, AGGREGATED_V2BETA1) == "HTTP 406"  # no longer served by 1.37
    assert _served(cluster, LEGACY) == "v1/APIGroupList"


def test_legacy_discovery_gives_the_kind_table_of_v2_and_applies(
    kubeconfig: Path, namespace: str
) -> None:
    form = "legacy"
    reference, adapter = _adapter(kubeconfig, AGGREGATED_V2), _adapter(kubeconfig, LEGACY)
    try:
        expected, found = reference._kind_table(), adapter._kind_table()
        assert found == expected
        deployment = adapter.kind_by_group("apps", "Deployment")
        assert deployment is not None and deployment.plural == "deployments"
        assert deployment.namespaced and deployment.version == "v1"
        namespace_kind = adapter.kind_info("v1", "Namespace")
        assert namespace_kind is not None and not namespace_kind.namespaced
        manifest = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"through-{form}", "namespace": namespace},
            "data": {"form": form},
        }
        applied = adapter.apply(manifest, dry_run=False, force=True)
        assert applied.manifest["data"] == {"form": form}
        assert adapter.request_counts()["discovery"] >= 2
    finally:
        reference.close()
        adapter.close()
