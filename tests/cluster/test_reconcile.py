"""The reconcile pass against the real kube-apiserver (issue 4, tests 1-9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog
from kubernetes import client

from gitopsd.config import ConflictPolicy
from gitopsd.model import Action, IgnoreRule
from gitopsd.passresult import PassOutcome
from tests.cluster.conftest import Rig, read_testdata

WRITE_VERBS = ("apply", "delete", "dry-run-apply")


def _writes(requests: dict[str, int]) -> int:
    return sum(requests.get(verb, 0) for verb in WRITE_VERBS)


def _drifts(rig: Rig, action: str) -> list[dict[str, Any]]:
    return [d for d in rig.journal.drifts(rig.settings.name) if d["action"] == action]


def _apps(api_client: Any) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


def _core(api_client: Any) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


def _mixed(rig: Rig) -> None:
    rig.source.files["app/mixed.yaml"] = read_testdata("mixed.yaml", ID=rig.unique)


def test_first_sync_creates_everything_then_passes_write_nothing(rig: Rig, api_client: Any) -> None:
    _mixed(rig)
    rig.source.files["cluster.yaml"] = read_testdata("cluster-scoped.yaml", ID=rig.unique)
    try:
        first = rig.run()
        assert first.outcome is PassOutcome.CONVERGED, first.error
        created = {(e.key.kind, e.key.name) for e in first.changes.entries}
        assert created == {
            ("ConfigMap", "settings"),
            ("Secret", "credentials"),
            ("Service", "web"),
            ("Deployment", "web"),
            ("Namespace", f"extra-{rig.unique}"),
            ("ClusterRole", f"reader-{rig.unique}"),
            ("Gadget", "first"),
            ("CustomResourceDefinition", f"gadgets.g-{rig.unique}.test.gitopsd.io"),
        }
        assert all(e.action is Action.CREATED for e in first.changes.entries)
        deployment = _apps(api_client).read_namespaced_deployment("web", rig.namespace)
        assert deployment.metadata.labels["gitopsd.io/target"] == rig.settings.name
        gadget = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
            f"g-{rig.unique}.test.gitopsd.io", "v1", rig.namespace, "gadgets", "first"
        )
        assert gadget["spec"] == {"size": 3}

        for _ in range(2):
            again = rig.run()
            assert again.outcome is PassOutcome.IN_SYNC, again.error
            assert again.changes.entries == ()
            assert _writes(again.requests) == 0, again.requests
            # One list per declared kind (8) plus one for the inventories.
            assert again.requests.get("list", 0) <= 9, again.requests
        assert len(rig.journal.drifts(rig.settings.name)) == len(first.changes.entries)
    finally:
        _delete_cluster_scoped(api_client, rig.unique)


def _delete_cluster_scoped(api_client: Any, unique: str) -> None:
    for delete, name in (
        (
            client.ApiextensionsV1Api(api_client).delete_custom_resource_definition,
            f"gadgets.g-{unique}.test.gitopsd.io",
        ),
        (client.RbacAuthorizationV1Api(api_client).delete_cluster_role, f"reader-{unique}"),
        (_core(api_client).delete_namespace, f"extra-{unique}"),
    ):
        try:
            delete(name)
        except client.ApiException as error:
            if error.status != 404:
                raise


def test_deleted_service_is_recreated_and_journaled(rig: Rig, api_client: Any) -> None:
    _mixed(rig)
    assert rig.run().outcome is PassOutcome.CONVERGED
    _core(api_client).delete_namespaced_service("web", rig.namespace)

    result = rig.run()

    assert result.outcome is PassOutcome.CONVERGED, result.error
    assert [(e.key.kind, e.action) for e in result.changes.entries] == [("Service", Action.CREATED)]
    assert _core(api_client).read_namespaced_service("web", rig.namespace).spec.ports[0].port == 80
    recreated = [d for d in _drifts(rig, "created") if d["kind"] == "Service"]
    assert len(recreated) == 2  # the first sync, then the correction


def test_changes_by_another_manager_are_corrected_and_attributed(rig: Rig, api_client: Any) -> None:
    _mixed(rig)
    assert rig.run().outcome is PassOutcome.CONVERGED
    _apps(api_client).patch_namespaced_deployment(
        "web", rig.namespace, {"spec": {"replicas": 5}}, field_manager="kubectl-scale"
    )
    _core(api_client).patch_namespaced_config_map(
        "settings", rig.namespace, {"data": {"color": "red"}}, field_manager="kubectl-edit"
    )

    result = rig.run()

    assert result.outcome is PassOutcome.CONVERGED, result.error
    actions = {e.key.kind: e for e in result.changes.entries}
    assert set(actions) == {"Deployment", "ConfigMap"}
    assert actions["Deployment"].action is Action.CORRECTED
    assert actions["Deployment"].lost_managers == ("kubectl-scale",)
    assert _apps(api_client).read_namespaced_deployment("web", rig.namespace).spec.replicas == 2
    assert _core(api_client).read_namespaced_config_map("settings", rig.namespace).data[
        "color"
    ] == ("blue")
    corrected = {d["kind"]: d for d in _drifts(rig, "corrected")}
    assert corrected["Deployment"]["fields"] == [{"path": "spec.replicas", "desired": 2, "live": 5}]
    assert corrected["Deployment"]["managers"][0]["manager"] == "kubectl-scale"
    assert corrected["ConfigMap"]["fields"] == [
        {"path": "data.color", "desired": "blue", "live": "red"}
    ]
    assert corrected["ConfigMap"]["managers"][0]["manager"] == "kubectl-edit"


def test_removed_file_is_pruned_but_foreign_lookalike_is_kept(rig: Rig, api_client: Any) -> None:
    _mixed(rig)
    rig.source.files["extra.yaml"] = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: doomed}\ndata: {a: b}\n"
    )
    assert rig.run().outcome is PassOutcome.CONVERGED
    # Someone copies our labels onto an object gitopsd never created.
    labels = {"app.kubernetes.io/managed-by": "gitopsd", "gitopsd.io/target": rig.settings.name}
    _core(api_client).create_namespaced_config_map(
        rig.namespace, {"metadata": {"name": "lookalike", "labels": labels}}
    )
    del rig.source.files["extra.yaml"]

    result = rig.run()

    assert result.outcome is PassOutcome.CONVERGED, result.error
    assert [(e.key.name, e.action) for e in result.changes.entries] == [("doomed", Action.PRUNED)]
    names = {
        cm.metadata.name for cm in _core(api_client).list_namespaced_config_map(rig.namespace).items
    }
    assert "doomed" not in names
    assert {"lookalike", "settings"} <= names
    assert [d["name"] for d in _drifts(rig, "pruned")] == ["doomed"]


def test_revision_with_one_invalid_object_writes_nothing(rig: Rig, api_client: Any) -> None:
    _mixed(rig)
    assert rig.run().outcome is PassOutcome.CONVERGED
    rig.source.files["app/mixed.yaml"] = (
        read_testdata("mixed.yaml", ID=rig.unique)
        .replace("color: blue", "color: green")
        .replace("replicas: 2", "replicas: 3")
    )
    rig.source.files["bad.yaml"] = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {ports: [{port: 99999}]}\n"
    )

    result = rig.run()

    assert result.outcome is PassOutcome.FAILED
    assert "Service" in str(result.error) and "bad" in str(result.error)
    assert "99999" in str(result.error) or "port" in str(result.error)
    assert _writes({k: v for k, v in result.requests.items() if k != "dry-run-apply"}) == 0
    assert (
        _core(api_client).read_namespaced_config_map("settings", rig.namespace).data["color"]
        == "blue"
    )
    assert _apps(api_client).read_namespaced_deployment("web", rig.namespace).spec.replicas == 2


@pytest.mark.parametrize(
    ("manifest", "named"),
    [
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: typo}\nspec:\n"
            "  replicas: three\n  selector: {matchLabels: {app: typo}}\n  template:\n"
            "    metadata: {labels: {app: typo}}\n"
            "    spec: {containers: [{name: c, image: busybox}]}\n",
            ("typo.yaml#1: Deployment.apps", "replicas"),
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata: {name: typo}\ndata: {k: 'not base64!'}\n",
            ("typo.yaml#1: Secret", "typo"),
        ),
    ],
    ids=["string-for-integer", "secret-data-not-base64"],
)
def test_a_field_of_the_wrong_type_is_the_objects_fault_not_the_servers(
    rig: Rig, api_client: Any, manifest: str, named: tuple[str, str]
) -> None:
    # Server-side apply answers a schema mismatch with 500; it was retried, then reported
    # as "the API server could not validate the revision (overloaded or failing)".
    _mixed(rig)
    assert rig.run().outcome is PassOutcome.CONVERGED
    rig.source.files["typo.yaml"] = manifest

    result = rig.run()

    assert result.outcome is PassOutcome.FAILED
    assert result.error is not None and not result.error.retryable, result.error
    assert "overloaded" not in str(result.error)
    assert all(part in str(result.error) for part in named), str(result.error)
    assert _writes({k: v for k, v in result.requests.items() if k != "dry-run-apply"}) == 0


@pytest.mark.parametrize(
    "broken",
    [{}, {"broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n"}],
    ids=["empty-render", "render-error"],
)
def test_empty_render_or_render_error_prunes_nothing(
    rig: Rig, api_client: Any, broken: dict[str, str]
) -> None:
    _mixed(rig)
    assert rig.run().outcome is PassOutcome.CONVERGED
    rig.source.files = dict(broken)

    result = rig.run()

    assert result.outcome is PassOutcome.FAILED
    assert result.changes.entries == ()
    assert _writes(result.requests) == 0
    message = str(result.error)
    assert ("allow_empty" in message) if not broken else ("broken.yaml" in message)
    assert _core(api_client).read_namespaced_service("web", rig.namespace).metadata.name == "web"
    assert _drifts(rig, "pruned") == []


def test_secret_change_is_corrected_without_revealing_values(
    rig: Rig, api_client: Any, tmp_path: Path
) -> None:
    _mixed(rig)
    assert rig.run().outcome is PassOutcome.CONVERGED
    new_value = f"correct-horse-{rig.unique}"
    _core(api_client).patch_namespaced_secret(
        "credentials",
        rig.namespace,
        {"stringData": {"password": new_value}},
        field_manager="intruder",
    )

    with structlog.testing.capture_logs() as logs:
        result = rig.run(previews=True)

    assert result.outcome is PassOutcome.CONVERGED, result.error
    assert [(e.key.kind, e.action) for e in result.changes.entries] == [
        ("Secret", Action.CORRECTED)
    ]
    secret = _core(api_client).read_namespaced_secret("credentials", rig.namespace)
    assert secret.data["password"] == _b64(f"hunter2-{rig.unique}")
    drift = [e for e in logs if e["event"] == "drift_detected"]
    assert drift and drift[0]["fields"][0]["path"] == "data.password"
    everything = repr(logs) + repr(rig.journal.drifts()) + repr(result.previews)
    everything += "".join(
        p.read_bytes().decode(errors="replace") for p in (tmp_path / "state").iterdir()
    )
    for value in (
        new_value,
        f"hunter2-{rig.unique}",
        _b64(new_value),
        _b64(f"hunter2-{rig.unique}"),
    ):
        assert value not in everything


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def test_ignore_rule_leaves_replicas_to_another_controller(rig: Rig, api_client: Any) -> None:
    rig.configure(ignore=(IgnoreRule(kind="Deployment", pointers=("/spec/replicas",)),))
    _mixed(rig)
    assert rig.run().outcome is PassOutcome.CONVERGED
    _apps(api_client).patch_namespaced_deployment(
        "web", rig.namespace, {"spec": {"replicas": 7}}, field_manager="horizontal-pod-autoscaler"
    )

    result = rig.run()

    assert result.outcome is PassOutcome.IN_SYNC, result.error
    assert result.changes.entries == ()
    # The drift the rule hides is still known to the plan, never corrected.
    assert result.plan is not None
    assert [report.field_paths for report in result.plan.ignored] == [("spec.replicas",)]
    assert _apps(api_client).read_namespaced_deployment("web", rig.namespace).spec.replicas == 7
    assert [
        d for d in rig.journal.drifts() if d["kind"] == "Deployment" and d["action"] != "created"
    ] == []


def test_immutable_field_fails_clearly_unless_recreate(rig: Rig, api_client: Any) -> None:
    _mixed(rig)
    assert rig.run().outcome is PassOutcome.CONVERGED
    before = _apps(api_client).read_namespaced_deployment("web", rig.namespace).metadata.uid
    rig.source.files["app/mixed.yaml"] = read_testdata("mixed.yaml", ID=rig.unique).replace(
        "app: web", "app: web2"
    )

    refused = rig.run()

    assert refused.outcome is PassOutcome.FAILED
    assert "immutable" in str(refused.error) and "recreate" in str(refused.error)
    assert _apps(api_client).read_namespaced_deployment("web", rig.namespace).metadata.uid == before

    rig.configure(recreate=True)
    recreated = rig.run()

    assert recreated.outcome is PassOutcome.CONVERGED, recreated.error
    actions = {e.key.kind: e.action for e in recreated.changes.entries}
    assert actions["Deployment"] is Action.RECREATED
    after = _apps(api_client).read_namespaced_deployment("web", rig.namespace)
    assert after.metadata.uid != before
    assert after.spec.selector.match_labels == {"app": "web2"}


def test_conflict_policy_error_refuses_to_take_fields(rig: Rig, api_client: Any) -> None:
    rig.configure(conflicts=ConflictPolicy.ERROR)
    _mixed(rig)
    assert rig.run().outcome is PassOutcome.CONVERGED
    _apps(api_client).patch_namespaced_deployment(
        "web", rig.namespace, {"spec": {"replicas": 4}}, field_manager="kubectl-scale"
    )

    result = rig.run()

    assert result.outcome is PassOutcome.FAILED
    assert "kubectl-scale" in str(result.error)
    assert _apps(api_client).read_namespaced_deployment("web", rig.namespace).spec.replicas == 4
