"""An unreachable API server is one UnavailableError, not a warning per urllib3 retry."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from gitopsd.adapters.kubernetes import KubernetesAdapter
from gitopsd.config import ClusterSettings
from gitopsd.errors import UnavailableError


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_refused_connection_is_retryable_and_quiet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{_closed_port()}"}}}}]
users: [{{name: u, user: {{token: not-a-secret}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
"""
    )
    adapter = KubernetesAdapter(ClusterSettings(kubeconfig=kubeconfig), "gitopsd-system")
    try:
        with caplog.at_level(logging.WARNING), pytest.raises(UnavailableError) as raised:
            adapter.load_inventories("web")
    finally:
        adapter.close()
    assert raised.value.retryable
    assert "cannot reach the API server" in str(raised.value)
    assert [r for r in caplog.records if r.name.startswith("urllib3")] == []
