"""A ServiceAccount with only examples/rbac/gitopsd-rbac.yaml's grants, in two namespaces of
three, and a kubeconfig holding its TokenRequest token: least privilege, checked by the
real API server's RBAC."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.cluster import ControlPlane

RBAC_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rbac" / "gitopsd-rbac.yaml"


@dataclass
class Grant:
    """Two namespaces the service account may use, one it may not, and its kubeconfig."""

    namespaces: tuple[str, str, str]
    kubeconfig: Path
    user: str


def rbac_documents(name: str, namespace: str, account: str, home: str) -> list[dict[str, Any]]:
    """The example's ClusterRole and RoleBinding, placeholders filled in."""
    text = RBAC_EXAMPLE.read_text()
    for placeholder, value in (
        ("SERVICE_ACCOUNT_NAMESPACE", home),
        ("SERVICE_ACCOUNT", account),
        ("NAMESPACE", namespace),
        ("NAME", name),
    ):
        text = text.replace(placeholder, value)
    return list(yaml.safe_load_all(text))


@contextlib.contextmanager
def granted(cluster: ControlPlane, api_client: Any, folder: Path) -> Iterator[Grant]:
    """Three fresh namespaces, the service account bound in the first two; removed after."""
    from kubernetes import client

    unique = uuid.uuid4().hex[:8]
    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    spaces = (f"lp-a-{unique}", f"lp-b-{unique}", f"lp-c-{unique}")
    for space in spaces:
        core.create_namespace({"metadata": {"name": space}})
    account, name = "gitopsd", f"gitopsd-{unique}"
    core.create_namespaced_service_account(spaces[0], {"metadata": {"name": account}})
    for space in spaces[:2]:
        role, binding = rbac_documents(name, space, account, spaces[0])
        if space == spaces[0]:
            rbac.create_cluster_role(role)
        rbac.create_namespaced_role_binding(space, binding)
    token = core.create_namespaced_service_account_token(
        account, spaces[0], {"spec": {"expirationSeconds": 3600}}
    ).status.token
    kubeconfig = folder / "kubeconfig-least-privilege"
    cluster_entry = {
        "server": cluster.url,
        "certificate-authority": str(cluster.workdir / "ca.crt"),
    }
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "test", "cluster": cluster_entry}],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "sa"}}],
                "current-context": "test",
            }
        )
    )
    try:
        yield Grant(spaces, kubeconfig, f"system:serviceaccount:{spaces[0]}:{account}")
    finally:
        rbac.delete_cluster_role(name)
        for space in spaces:
            core.delete_namespace(space)
