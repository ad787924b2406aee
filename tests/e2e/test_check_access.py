"""`gitopsd validate --check-access` with least-privilege credentials: SelfSubjectAccessReview
for every verb a pass needs, answered by the real API server's RBAC (issue 11)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.conftest import Gitopsd, configmap, wait_for
from tests.support.cluster import ControlPlane
from tests.support.rbac_grant import Grant, granted
from tests.support.tools import KUSTOMIZE, build_tool


@pytest.fixture
def grant(cluster: ControlPlane, api_client: Any, tmp_path: Path) -> Iterator[Grant]:
    with granted(cluster, api_client, tmp_path) as made:
        yield made


def test_check_access_names_each_missing_verb_and_writes_nothing(
    gitopsd: Gitopsd, grant: Grant, api_client: Any
) -> None:
    a, b, c = grant.namespaces
    manifests = {
        "manifests/a.yaml": configmap("one", a, value="1"),
        "manifests/b.yaml": configmap("two", b, value="2"),
    }
    gitopsd.remote.commit(manifests)
    target = gitopsd.target(kubeconfig=str(grant.kubeconfig), namespace=a, inventory_namespace=a)
    gitopsd.write_config(target)
    allowed = gitopsd.run("validate", "--check-access")
    assert allowed.returncode == 0, allowed.stderr
    assert "app: access ok" in allowed.stdout

    gitopsd.remote.commit({**manifests, "manifests/c.yaml": configmap("three", c, value="3")})
    refused = gitopsd.run("validate", "--check-access")
    assert refused.returncode == 1
    missing = [line for line in refused.stderr.splitlines() if ": missing: " in line]
    verbs = ("create", "delete", "get", "list", "patch", "update")
    assert missing == [
        f"app: missing: {verb} configmaps in namespace {c} (add to a Role in namespace {c}: "
        f'{{apiGroups: [""], resources: ["configmaps"], verbs: ["{verb}"]}})'
        for verb in verbs
    ]
    core = client.CoreV1Api(api_client)
    assert not any(core.list_namespaced_config_map(space).items for space in (a, b, c))


def test_the_daemon_runs_on_the_namespaced_grant_and_prunes(
    gitopsd: Gitopsd, grant: Grant, api_client: Any
) -> None:
    """Daemon mode (watches on by default) with the same grant: cluster-wide watches are
    refused, and passes still converge and prune."""
    a, b, _ = grant.namespaces
    gitopsd.remote.commit(
        {
            "manifests/a.yaml": configmap("one", a, value="1"),
            "manifests/b.yaml": configmap("two", b, value="2"),
        }
    )
    target = gitopsd.target(kubeconfig=str(grant.kubeconfig), namespace=a, inventory_namespace=a)
    gitopsd.write_config(target, interval="1s")
    gitopsd.start()
    core = client.CoreV1Api(api_client)

    def names(space: str) -> set[str]:
        return {item.metadata.name for item in core.list_namespaced_config_map(space).items}

    wait_for(lambda: "one" in names(a) and "two" in names(b), timeout=60)
    gitopsd.remote.commit({"manifests/a.yaml": None})
    wait_for(lambda: "one" not in names(a), timeout=60)
    assert "two" in names(b)
    log = gitopsd.log()
    assert "watch_forbidden" in log and "Traceback" not in log


def test_check_access_renders_a_kustomize_target_as_a_pass_does(
    gitopsd: Gitopsd, grant: Grant
) -> None:
    # It read the plain YAML files under path, so a kustomize overlay could not be checked.
    a, _, c = grant.namespaces
    gitopsd.remote.commit(
        {
            "base/kustomization.yaml": "resources: [settings.yaml]\n",
            "base/settings.yaml": configmap("settings", a, value="1"),
            "overlays/prod/kustomization.yaml": f"resources: [../../base]\nnamespace: {c}\n",
        }
    )
    target = gitopsd.target(
        path="overlays/prod",
        kubeconfig=str(grant.kubeconfig),
        namespace=a,
        inventory_namespace=a,
        tools={"kustomize": str(build_tool(KUSTOMIZE))},
    )
    gitopsd.write_config(target)

    result = gitopsd.run("validate", "--check-access")

    # The overlay moves the ConfigMap to the namespace the grant does not cover.
    assert result.returncode == 1, result.stderr
    assert f"app: missing: create configmaps in namespace {c}" in result.stderr
