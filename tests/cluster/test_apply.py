"""apply_plan's outcomes against the real kube-apiserver: what each object's entry says."""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from kubernetes import client

from gitopsd.clock import ManualClock
from gitopsd.model import Action, ChangeSetEntry, ResourceKey
from gitopsd.passresult import PassOutcome
from gitopsd.reconcile import Reconciler
from tests.cluster.conftest import Rig

# An empty env value: the server stores the variable without `value`, so the local
# comparison sees a difference that the server's dry-run shows is none.
EMPTY_ENV = """apiVersion: apps/v1
kind: Deployment
metadata: {name: quiet}
spec:
  selector: {matchLabels: {app: quiet}}
  template:
    metadata: {labels: {app: quiet}}
    spec:
      containers:
        - {name: main, image: busybox:1.36, env: [{name: EMPTY, value: ""}]}
"""
FROZEN = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\nimmutable: true\n"


def _core(api_client: Any) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


def test_write_the_dry_run_shows_unneeded_is_an_unchanged_entry(rig: Rig) -> None:
    rig.source.files["quiet.yaml"] = EMPTY_ENV
    assert rig.run().outcome is PassOutcome.CONVERGED

    with structlog.testing.capture_logs() as logs:
        result = rig.run()

    assert result.outcome is PassOutcome.IN_SYNC, result.error
    key = ResourceKey("apps", "Deployment", rig.namespace, "quiet")
    assert result.changes.entries == (ChangeSetEntry(key, Action.UNCHANGED),)
    assert result.changes.writes == 0
    assert result.requests.get("apply", 0) == 0, result.requests
    assert [e["event"] for e in logs if e.get("name") == "quiet"] == ["object_unchanged"]
    assert [d["action"] for d in rig.journal.drifts(rig.settings.name)] == ["created"]


def test_outcomes_other_than_drift_are_logged_and_journaled_under_their_own_names(
    rig: Rig,
) -> None:
    doomed = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: doomed}\n"
    protected = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: protected\n"
        "  annotations: {gitopsd.io/prune: disabled}\n"
    )
    rig.source.files.update({"doomed.yaml": doomed, "protected.yaml": protected})
    rig.source.files["keep.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\n"
    assert rig.run().outcome is PassOutcome.CONVERGED
    del rig.source.files["doomed.yaml"], rig.source.files["protected.yaml"]

    with structlog.testing.capture_logs() as logs:
        result = rig.run()

    assert result.outcome is PassOutcome.CONVERGED, result.error
    assert {(e.key.name, e.action) for e in result.changes.entries} == {
        ("doomed", Action.PRUNED),
        ("protected", Action.KEPT),
    }
    events = {e["name"]: e["event"] for e in logs if "name" in e}
    assert events == {"doomed": "object_pruned", "protected": "object_kept"}
    journaled = {d["name"]: d["action"] for d in rig.journal.drifts(rig.settings.name)}
    assert (journaled["doomed"], journaled["protected"]) == ("pruned", "kept")


def test_refusal_after_new_namespaces_keeps_what_was_not_reached_tracked(
    rig: Rig, api_client: Any
) -> None:
    rig.source.files["old.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: old}\n"
    assert rig.run().outcome is PassOutcome.CONVERGED
    fresh = f"fresh-{uuid.uuid4().hex[:8]}"
    # A dry-run cannot check the Service before its namespace exists: it is checked after.
    rig.source.files = {
        "ns.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {fresh}}}\n",
        "bad.yaml": (
            f"apiVersion: v1\nkind: Service\nmetadata: {{name: bad, namespace: {fresh}}}\n"
            "spec: {ports: [{port: 99999}]}\n"
        ),
    }
    try:
        result = rig.run()

        assert result.outcome is PassOutcome.FAILED
        assert "refused after creating namespaces and CRDs" in str(result.error)
        actions = {(e.key.kind, e.key.name): e.action for e in result.changes.entries}
        assert actions == {
            ("Namespace", fresh): Action.CREATED,
            ("Service", "bad"): Action.SKIPPED,
            ("ConfigMap", "old"): Action.SKIPPED,  # its deletion was never reached
        }
        stored, _ = rig.adapter.load_inventories(rig.settings.name)
        assert {key.name for key in stored.inventory.keys} == {fresh, "bad", "old"}
        assert _core(api_client).read_namespaced_config_map("old", rig.namespace)
    finally:
        _core(api_client).delete_namespace(fresh)


def test_waiting_for_a_deletion_goes_through_the_clock(rig: Rig, api_client: Any) -> None:
    rig.configure(recreate=True)
    rig.source.files["frozen.yaml"] = FROZEN + "data: {a: '1'}\n"
    assert rig.run().outcome is PassOutcome.CONVERGED
    core = _core(api_client)
    hold = {"metadata": {"finalizers": ["test.gitopsd.io/hold"]}}
    core.patch_namespaced_config_map("frozen", rig.namespace, hold)
    rig.source.files["frozen.yaml"] = FROZEN + "data: {a: '2'}\n"
    clock = ManualClock()
    started = clock.monotonic()
    try:
        result = Reconciler(rig.settings, rig.source, rig.adapter, rig.journal, clock).run()
    finally:
        release = {"metadata": {"finalizers": None}}
        core.patch_namespaced_config_map("frozen", rig.namespace, release)

    assert result.outcome is PassOutcome.FAILED
    (entry,) = result.changes.entries
    assert entry.action is Action.FAILED
    assert "still present (finalizers: test.gitopsd.io/hold)" in entry.error
    # The 60 s deletion timeout elapsed on the injected clock, not on the wall clock.
    assert 60 <= clock.monotonic() - started < 61
