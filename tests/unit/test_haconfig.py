"""The `ha:` section: defaults, timings that must nest, and no section at all."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from gitopsd.config import load_config
from gitopsd.errors import ConfigError

BASE = """
state_dir: state
targets:
  - {name: web, repo: https://git.example.com/infra.git, branch: main}
"""


def _load(tmp_path: Path, ha: str) -> object:
    path = tmp_path / "gitopsd.yaml"
    path.write_text(BASE + ha)
    return load_config(path).ha


def test_without_ha_there_is_no_coordination(tmp_path: Path) -> None:
    assert _load(tmp_path, "") is None


def test_defaults(tmp_path: Path) -> None:
    ha = _load(tmp_path, "ha: {kubeconfig: kube.yaml, context: hub}\n")
    assert ha is not None
    assert (ha.lease_duration_seconds, ha.renew_deadline_seconds) == (15.0, 10.0)
    assert ha.retry_period_seconds == 2.0
    assert ha.namespace == "gitopsd-system"
    assert ha.identity == f"{socket.gethostname()}-{os.getpid()}"
    assert ha.kubeconfig == tmp_path / "kube.yaml"
    assert ha.context == "hub"


def test_in_cluster_and_explicit_identity(tmp_path: Path) -> None:
    ha = _load(tmp_path, "ha: {identity: bastion-2, lease_duration: 30s, renew_deadline: 20s}\n")
    assert ha is not None
    assert ha.kubeconfig is None
    assert (ha.identity, ha.lease_duration_seconds) == ("bastion-2", 30.0)


@pytest.mark.parametrize(
    ("ha", "message"),
    [
        ("ha: {renew_deadline: 15s}", "ha.renew_deadline: must be shorter than lease_duration"),
        ("ha: {retry_period: 10s}", "ha.retry_period: must be shorter than renew_deadline"),
        ("ha: {namespace: Bad_NS}", "ha.namespace: 'Bad_NS' is not a valid namespace"),
        ("ha: {lease_duraton: 3s}", "ha.lease_duraton"),
        ("ha: {lease_duration: 0s}", "ha.lease_duration: must be longer than zero"),
    ],
)
def test_refused(tmp_path: Path, ha: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        _load(tmp_path, ha + "\n")
