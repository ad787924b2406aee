"""Watches in the real world (issue 13): an API server restart with etcd compacted under it
(so resuming fails with 410 Gone and the watch relists), and credentials without `watch`.

The restart happens on a control plane of this module's own; the session's is shared.
"""

from __future__ import annotations

import base64
import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from kubernetes import client, config

from gitopsd.adapters.kubernetes import KubernetesAdapter
from gitopsd.config import ClusterSettings, RefKind, SourceSettings, TargetSettings
from gitopsd.journal import Journal
from gitopsd.model import ResourceKey
from gitopsd.passresult import PassOutcome, PassResult
from gitopsd.reconcile import Reconciler
from gitopsd.watching import WatchHub
from gitopsd.watchread import Watched
from tests.support.cluster import ControlPlane, separate_control_plane
from tests.support.sources import FilesSource
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_until

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {color: blue}\n"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    workdir = tmp_path_factory.mktemp("watch") / "cluster"
    with separate_control_plane(workdir) as plane:
        yield plane


class Target:
    """One target read through a WatchHub on `kubeconfig`; `asked` counts the passes asked."""

    def __init__(self, kubeconfig: Path, namespace: str, journal: Journal) -> None:
        self.settings = TargetSettings(
            name=f"t-{uuid.uuid4().hex[:8]}",
            source=SourceSettings(repo="memory", ref_kind=RefKind.BRANCH, ref="main"),
            cluster=ClusterSettings(kubeconfig=kubeconfig),
            namespace=namespace,
            inventory_namespace=namespace,
        )
        self.source = FilesSource({"cm.yaml": CONFIGMAP})
        self.inner = KubernetesAdapter(self.settings.cluster, namespace)
        self.hub = WatchHub(journal=journal)
        self.asked: list[str] = []
        self.hub.attach(self.asked.append)
        self.adapter: Watched = self.hub.adapter(self.settings, self.inner, 3600.0)
        self.journal = journal

    def run(self) -> PassResult:
        reconciler = Reconciler(self.settings, self.source, self.adapter, self.journal)
        with self.hub.pass_of(self.settings.name) as done:
            result = reconciler.run()
            done(result)
        return result

    def settle(self) -> None:
        def from_cache() -> bool:
            result = self.run()
            status = self.hub.status(self.settings.name) or {}
            return bool(status["last_pass_from_cache"]) and not result.changes.entries

        wait_until(from_cache, "a pass served from synced caches", timeout=30, every=0.2)

    def close(self) -> None:
        self.hub.close()
        self.inner.close()


def _core(kubeconfig: Path) -> tuple[client.CoreV1Api, Any]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    return client.CoreV1Api(api), api


def _compact(plane: ControlPlane) -> int:
    """Compact etcd past what any watch has seen (etcd's JSON gateway); the revision."""

    def call(path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"http://127.0.0.1:{plane.etcd_port}{path}"
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return dict(json.loads(response.read()))

    # Two writes beyond whatever the watch saw last, so its next revision is compacted away.
    key = base64.b64encode(b"/gitopsd-test/bump").decode()
    for value in (b"1", b"2"):
        reply = call("/v3/kv/put", {"key": key, "value": base64.b64encode(value).decode()})
    revision = int(reply["header"]["revision"])
    call("/v3/kv/compaction", {"revision": str(revision), "physical": True})
    return revision


def test_api_server_restart_with_compaction_relists_and_still_corrects_drift(
    plane: ControlPlane, tmp_path: Path
) -> None:
    core, api = _core(plane.kubeconfig)
    namespace = f"w-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    journal = Journal.open(tmp_path / "state")
    target = Target(plane.kubeconfig, namespace, journal)
    try:
        assert target.run().outcome is PassOutcome.CONVERGED
        target.settle()
        cluster = next(iter(target.hub._clusters.values()))
        plane.kill_apiserver()
        wait_until(target.hub.problems, "the outage reported for /readyz", timeout=30)
        # Writes while the server is down; then etcd forgets the history the watch stood on.
        _compact(plane)
        plane.start_apiserver()
        wait_until(lambda: not target.hub.problems(), "watches reconnected", timeout=60)
        wait_until(lambda: cluster.watches.stats.snapshot().get("relists"), "a relist", 30)
        core, api2 = _core(plane.kubeconfig)
        try:
            patch = {"data": {"color": "red"}}
            core.patch_namespaced_config_map("settings", namespace, patch, field_manager="late")
            wait_until(lambda: target.asked, "a pass asked for the drift after the relist", 10)
            result = target.run()
            assert [e.action.value for e in result.changes.entries] == ["corrected"]
            assert core.read_namespaced_config_map("settings", namespace).data["color"] == "blue"
        finally:
            api2.close()
    finally:
        plane.start_apiserver()
        target.close()
        journal.close()
        api.close()


def test_a_dropped_watch_relists_before_it_counts_as_synced_again(
    cluster: ControlPlane, tmp_path: Path
) -> None:
    # Resuming from the last resourceVersion marked the cache synced on reconnect, before
    # the events of the outage arrived: a pass in between read a deleted object as live.
    proxy = TcpProxy(("127.0.0.1", cluster.port))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        cluster.kubeconfig.read_text().replace(f":{cluster.port}", f":{proxy.port}")
    )
    core, api = _core(cluster.kubeconfig)
    namespace = f"w-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    journal = Journal.open(tmp_path / "state")
    target = Target(kubeconfig, namespace, journal)
    try:
        assert target.run().outcome is PassOutcome.CONVERGED
        target.settle()
        watches = next(iter(target.hub._clusters.values())).watches
        lists = watches.stats.snapshot().get("lists", 0)
        proxy.refuse()  # the watch connections drop, and reconnecting fails
        wait_until(target.hub.problems, "the dropped watch reported", timeout=30)
        core.delete_namespaced_config_map("settings", namespace)
        proxy.restore()
        wait_until(lambda: not target.hub.problems(), "watches reconnected", timeout=60)

        configmaps = watches.get("", "ConfigMap")
        assert configmaps is not None
        assert watches.stats.snapshot().get("lists", 0) > lists  # relisted, not resumed
        assert not configmaps.holds(ResourceKey("", "ConfigMap", namespace, "settings"))
    finally:
        proxy.close()
        target.close()
        journal.close()
        api.close()


def _without_watch(core_api: Any, kubeconfig: Path, user: str) -> None:
    rbac = client.RbacAuthorizationV1Api(core_api)
    rule = {
        "apiGroups": ["*"],
        "resources": ["*"],
        "verbs": ["get", "list", "create", "update", "patch", "delete"],
    }
    rbac.create_cluster_role({"metadata": {"name": f"{user}-no-watch"}, "rules": [rule]})
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": f"{user}-no-watch"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"{user}-no-watch",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }
    )


def test_credentials_without_watch_converge_by_listing_with_one_warning(
    cluster: ControlPlane, api_client: Any, namespace: str, tmp_path: Path
) -> None:
    user = f"nowatch-{uuid.uuid4().hex[:6]}"
    _without_watch(api_client, cluster.kubeconfig, user)
    kubeconfig = cluster.user_kubeconfig(user)
    journal = Journal.open(tmp_path / "state")
    with structlog.testing.capture_logs() as logs:
        target = Target(kubeconfig, namespace, journal)
        try:
            assert target.run().outcome is PassOutcome.CONVERGED
            wait_until(
                lambda: [e for e in logs if e["event"] == "watch_forbidden"],
                "the watch refused",
                timeout=10,
            )
            for _ in range(3):
                result = target.run()
                assert result.outcome is PassOutcome.IN_SYNC, result.error
                assert result.requests.get("list", 0) >= 1  # listing, as without watches
            status = target.hub.status(target.settings.name) or {}
            assert status["live_state"] == "list"
            assert any("forbidden" in line for line in status["unsynced"])
        finally:
            target.close()
            journal.close()
    warnings = [e for e in logs if e["event"] == "watch_forbidden"]
    assert len({e["kind"] for e in warnings}) == len(warnings) >= 1  # one per kind, no loop
    assert "watch" in warnings[0]["fix"]
