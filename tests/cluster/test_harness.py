"""The test cluster itself: the kubernetes client works against it end to end."""

from __future__ import annotations

from typing import Any

from kubernetes import client, dynamic

from tests.support.waiting import wait_until

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.harness.gitopsd.io"},
    "spec": {
        "group": "harness.gitopsd.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"size": {"type": "integer"}},
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_configmap_lifecycle_with_server_side_apply(api_client: Any, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "settings"}, "data": {"color": "blue"}}
    )
    assert core.read_namespaced_config_map("settings", namespace).data == {"color": "blue"}

    resource = dynamic.DynamicClient(api_client).resources.get(api_version="v1", kind="ConfigMap")
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": namespace},
        "data": {"color": "green"},
    }
    resource.server_side_apply(
        body=body, namespace=namespace, field_manager="harness-test", force_conflicts=True
    )
    live = core.read_namespaced_config_map("settings", namespace)
    assert live.data == {"color": "green"}
    managers = {entry.manager: entry.operation for entry in live.metadata.managed_fields}
    assert managers.get("harness-test") == "Apply"

    core.delete_namespaced_config_map("settings", namespace)
    names = [cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items]
    assert "settings" not in names


def test_custom_resource_definition_becomes_established(api_client: Any, namespace: str) -> None:
    extensions = client.ApiextensionsV1Api(api_client)
    extensions.create_custom_resource_definition(CRD)
    try:
        _wait_established(extensions, CRD["metadata"]["name"])
        custom = client.CustomObjectsApi(api_client)
        widget = {
            "apiVersion": "harness.gitopsd.io/v1",
            "kind": "Widget",
            "metadata": {"name": "w1"},
            "spec": {"size": 3},
        }
        created = _create_when_served(custom, namespace, widget)
        assert created["spec"] == {"size": 3}
        fetched = custom.get_namespaced_custom_object(
            "harness.gitopsd.io", "v1", namespace, "widgets", "w1"
        )
        assert fetched["metadata"]["uid"] == created["metadata"]["uid"]
    finally:
        extensions.delete_custom_resource_definition(CRD["metadata"]["name"])


def _wait_established(extensions: Any, name: str, timeout: float = 30.0) -> None:
    def established() -> bool:
        crd = extensions.read_custom_resource_definition(name)
        conditions = {c.type: c.status for c in (crd.status.conditions or [])}
        return conditions.get("Established") == "True"

    wait_until(established, f"CRD {name} Established", timeout, every=0.2)


def _create_when_served(custom: Any, namespace: str, body: dict[str, Any]) -> Any:
    # Established can precede the new endpoint being served by a moment.
    def create() -> Any:
        try:
            return custom.create_namespaced_custom_object(
                "harness.gitopsd.io", "v1", namespace, "widgets", body
            )
        except client.ApiException as error:
            if error.status != 404:
                raise
            return None

    return wait_until(create, "the widgets endpoint served", timeout=15, every=0.2)
