"""Pytest fixtures over the real control plane: one per session, a namespace per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import ClusterHarnessError, ControlPlane, build


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd and kube-apiserver, built when missing; a failure fails the run, never skips."""
    try:
        control_plane = ControlPlane(tmp_path_factory.mktemp("cluster"), binaries=build())
        control_plane.start()
    except ClusterHarnessError as error:
        pytest.fail(f"the test cluster could not be started: {error}", pytrace=False)
    try:
        yield control_plane
    finally:
        control_plane.stop()


@pytest.fixture(scope="session")
def kubeconfig(cluster: ControlPlane) -> Path:
    return cluster.kubeconfig


@pytest.fixture(scope="session")
def api_client(cluster: ControlPlane) -> Iterator[object]:
    """A `kubernetes` ApiClient for the test cluster, for arranging and checking state."""
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield api
    finally:
        api.close()
        client.Configuration.set_default(None)


@pytest.fixture
def namespace(api_client: object) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards.

    No namespace controller runs in the test cluster, so a deleted namespace
    stays Terminating; its name is unique, so that harms nothing.
    """
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        core.delete_namespace(name)
