"""Objects gitopsd did not create, against the real kube-apiserver: adopted explicitly,
released rather than pruned when Git drops them (issue 10, item 2)."""

from __future__ import annotations

from typing import Any

import structlog
from kubernetes import client

from gitopsd.errors import OwnershipError
from gitopsd.model import Action, ResourceKey
from gitopsd.passresult import PassOutcome
from tests.cluster.conftest import Rig

GITOPSD_LABELS = ("app.kubernetes.io/managed-by", "gitopsd.io/target")


def _configmap(name: str, **data: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {data}\n"


def _core(api_client: Any) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


def _made_by_hand(api_client: Any, namespace: str, name: str) -> None:
    """What `kubectl create configmap` leaves: no gitopsd labels, another field manager."""
    body = {"metadata": {"name": name, "labels": {"team": "web"}}, "data": {"color": "red"}}
    _core(api_client).create_namespaced_config_map(namespace, body, field_manager="kubectl-create")


def _names(api_client: Any, namespace: str) -> set[str]:
    return {
        cm.metadata.name for cm in _core(api_client).list_namespaced_config_map(namespace).items
    }


def _actions(result: Any) -> dict[str, Action]:
    return {entry.key.name: entry.action for entry in result.changes.entries}


def _adopt_legacy(rig: Rig, api_client: Any) -> Any:
    _made_by_hand(api_client, rig.namespace, "legacy")
    rig.source.files["keep.yaml"] = _configmap("keep", a="b")
    rig.source.files["legacy.yaml"] = _configmap("legacy", color="blue")
    with structlog.testing.capture_logs() as logs:
        adopted = rig.run()
    assert adopted.outcome is PassOutcome.CONVERGED, adopted.error
    assert _actions(adopted) == {"keep": Action.CREATED, "legacy": Action.ADOPTED}
    return logs


def test_an_object_made_by_hand_is_adopted_then_released_when_git_drops_it(
    rig: Rig, api_client: Any
) -> None:
    logs = _adopt_legacy(rig, api_client)

    (event,) = [e for e in logs if e["event"] == "object_adopted"]
    assert (event["name"], event["action"]) == ("legacy", "adopted")
    assert "kubectl-create" in [m["manager"] for m in event["managers"]]
    (journaled,) = [d for d in rig.journal.drifts(rig.settings.name) if d["action"] == "adopted"]
    assert journaled["name"] == "legacy"
    assert "kubectl-create" in [m["manager"] for m in journaled["managers"]]
    stored, _ = rig.adapter.load_inventories(rig.settings.name)
    legacy = ResourceKey("", "ConfigMap", rig.namespace, "legacy")
    assert stored.inventory.adopted == {legacy}

    del rig.source.files["legacy.yaml"]
    released = rig.run()

    assert released.outcome is PassOutcome.CONVERGED, released.error
    assert _actions(released) == {"legacy": Action.RELEASED}
    live = _core(api_client).read_namespaced_config_map("legacy", rig.namespace)
    assert live.data == {"color": "blue"}  # kept as gitopsd left it
    assert live.metadata.labels == {"team": "web"}
    assert "gitopsd" not in {entry.manager for entry in live.metadata.managed_fields}
    drifts = rig.journal.drifts(rig.settings.name)
    assert [d["name"] for d in drifts if d["action"] == "released"] == ["legacy"]
    stored, _ = rig.adapter.load_inventories(rig.settings.name)
    assert legacy not in stored.inventory.tracked | stored.inventory.adopted
    again = rig.run()
    assert again.outcome is PassOutcome.IN_SYNC, again.error
    assert _core(api_client).read_namespaced_config_map("legacy", rig.namespace)


def test_prune_adopted_deletes_an_adopted_object_git_drops(rig: Rig, api_client: Any) -> None:
    rig.configure(prune_adopted=True)
    _adopt_legacy(rig, api_client)
    del rig.source.files["legacy.yaml"]

    result = rig.run()

    assert result.outcome is PassOutcome.CONVERGED, result.error
    assert _actions(result) == {"legacy": Action.PRUNED}
    names = _names(api_client, rig.namespace)
    assert "legacy" not in names and "keep" in names


def test_adopt_false_refuses_existing_objects_before_any_write(rig: Rig, api_client: Any) -> None:
    rig.configure(adopt=False)
    _made_by_hand(api_client, rig.namespace, "legacy")
    rig.source.files["keep.yaml"] = _configmap("keep", a="b")
    rig.source.files["legacy.yaml"] = _configmap("legacy", color="blue")

    result = rig.run()

    assert result.outcome is PassOutcome.FAILED
    assert isinstance(result.error, OwnershipError)
    message = str(result.error)
    assert f"ConfigMap {rig.namespace}/legacy" in message and "adopt" in message
    assert "kubectl-create" in message and "\n" not in message
    assert result.changes.writes == 0
    names = _names(api_client, rig.namespace)
    assert "keep" not in names
    live = _core(api_client).read_namespaced_config_map("legacy", rig.namespace)
    assert (live.data, live.metadata.labels) == ({"color": "red"}, {"team": "web"})


def test_an_object_gitopsd_created_is_still_pruned(rig: Rig, api_client: Any) -> None:
    rig.source.files["keep.yaml"] = _configmap("keep", a="b")
    rig.source.files["made.yaml"] = _configmap("made", a="b")
    assert rig.run().outcome is PassOutcome.CONVERGED
    del rig.source.files["made.yaml"]

    result = rig.run()

    assert _actions(result) == {"made": Action.PRUNED}
