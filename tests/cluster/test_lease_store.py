"""The Lease store of `ha:` against the real API server: create, compare-and-swap, delete."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitopsd.adapters.lease_store import KubernetesLeaseStore
from gitopsd.errors import ClusterError, ConflictError
from gitopsd.haconfig import HaSettings


@pytest.fixture
def store(kubeconfig: Path, namespace: str) -> KubernetesLeaseStore:
    return KubernetesLeaseStore(
        HaSettings(identity="a", kubeconfig=kubeconfig, namespace=namespace)
    )


def test_a_lease_is_created_listed_and_taken_over_by_compare_and_swap(
    store: KubernetesLeaseStore, kubeconfig: Path, namespace: str
) -> None:
    created = store.create("gitopsd-target-web", "a", 15, 1_800_000_000.0)
    # A whole second gets a microsecond: the client would write it in a form the server refuses.
    assert (created.holder, created.duration) == ("a", 15.0)
    assert created.acquired_at == pytest.approx(1_800_000_000.0, abs=1e-5)
    with pytest.raises(ConflictError):
        store.create("gitopsd-target-web", "b", 15, 1_800_000_001.0)
    other = KubernetesLeaseStore(
        HaSettings(identity="b", kubeconfig=kubeconfig, namespace=namespace)
    )
    (seen,) = other.list()
    taken = other.update(seen, "b", 15, 1_800_000_005.0)
    assert (taken.holder, taken.transitions) == ("b", 1)
    assert taken.acquired_at == pytest.approx(1_800_000_005.0, abs=1e-5)
    store.list()  # a reads the Lease as it was before b's update...
    with pytest.raises(ConflictError):  # ...and b's write since makes a's stale: 409
        store.update(seen, "a", 15, 1_800_000_006.0)
    renewed = other.update(taken, "b", 15, 1_800_000_007.0)
    assert renewed.acquired_at == pytest.approx(1_800_000_005.0, abs=1e-5)
    assert renewed.renewed_at == pytest.approx(1_800_000_007.0, abs=1e-5)
    released = other.update(renewed, "", 15, 1_800_000_008.0)
    assert released.holder == ""
    other.delete(released)
    assert other.list() == []


def test_an_unreachable_server_is_a_cluster_error(tmp_path: Path, kubeconfig: Path) -> None:
    broken = tmp_path / "kubeconfig"
    text = kubeconfig.read_text()
    server = next(
        line.split("server:")[1].strip() for line in text.splitlines() if "server:" in line
    )
    broken.write_text(text.replace(server, "https://127.0.0.1:9"))
    store = KubernetesLeaseStore(HaSettings(identity="a", kubeconfig=broken))
    with pytest.raises(ClusterError, match="no answer"):
        store.list()
