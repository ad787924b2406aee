"""The API server reached through an egress proxy: a kubeconfig cluster's `proxy-url` is
honoured, proved by the proxy's own log (Debian's tinyproxy, on loopback; issue 11)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gitopsd.adapters.kubernetes import KubernetesAdapter
from gitopsd.config import ClusterSettings
from tests.support.cluster import ControlPlane
from tests.support.tls_remotes import Tinyproxy


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Tinyproxy]:
    server = Tinyproxy(tmp_path / "tinyproxy")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_kubeconfig_proxy_url_carries_every_request(
    cluster: ControlPlane, proxy: Tinyproxy, namespace: str, tmp_path: Path
) -> None:
    document = yaml.safe_load(cluster.kubeconfig.read_text())
    document["clusters"][0]["cluster"]["proxy-url"] = proxy.url
    kubeconfig = tmp_path / "kubeconfig-proxied"
    kubeconfig.write_text(yaml.safe_dump(document))
    adapter = KubernetesAdapter(ClusterSettings(kubeconfig=kubeconfig), namespace)
    try:
        manifest = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "proxied", "namespace": namespace},
            "data": {"via": "proxy"},
        }
        assert adapter.apply(manifest, dry_run=False, force=True).manifest["data"] == {
            "via": "proxy"
        }
    finally:
        adapter.close()
    targets = {line.split()[1] for line in proxy.connects()}
    assert targets == {f"127.0.0.1:{cluster.port}"}
