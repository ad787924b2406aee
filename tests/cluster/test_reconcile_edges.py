"""Edge cases of the reconcile pass against the real kube-apiserver."""

from __future__ import annotations

import threading
from typing import Any

from kubernetes import client

from gitopsd.model import Action, IgnoreRule
from gitopsd.passresult import PassOutcome
from tests.cluster.conftest import Rig, read_testdata
from tests.support.waiting import eventually, wait_until

PROTECTED = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: protected\n  labels: {protect: 'yes'}\ndata: {a: b}\n"  # noqa: E501


def _apps(api_client: Any) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


def _core(api_client: Any) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


def test_ignore_rule_added_later_keeps_the_live_value(rig: Rig, api_client: Any) -> None:
    rig.source.files["app/mixed.yaml"] = read_testdata("mixed.yaml", ID=rig.unique).replace(
        "replicas: 2", "replicas: 3"
    )
    assert rig.run().outcome is PassOutcome.CONVERGED
    # An HPA is introduced: gitopsd must hand spec.replicas over without resetting it.
    rig.configure(ignore=(IgnoreRule(kind="Deployment", pointers=("/spec/replicas",)),))

    handed_over = rig.run()

    assert handed_over.outcome is PassOutcome.IN_SYNC, handed_over.error
    assert _apps(api_client).read_namespaced_deployment("web", rig.namespace).spec.replicas == 3
    _apps(api_client).patch_namespaced_deployment(
        "web", rig.namespace, {"spec": {"replicas": 6}}, field_manager="horizontal-pod-autoscaler"
    )
    for _ in range(2):
        later = rig.run()
        assert later.outcome in (PassOutcome.IN_SYNC, PassOutcome.CONVERGED), later.error
        assert _apps(api_client).read_namespaced_deployment("web", rig.namespace).spec.replicas == 6
    assert later.outcome is PassOutcome.IN_SYNC


def _deny_deletes(api_client: Any, unique: str, namespace: str) -> None:
    """A ValidatingAdmissionPolicy that refuses deleting ConfigMaps labelled protect=yes."""
    admission = client.AdmissionregistrationV1Api(api_client)
    admission.create_validating_admission_policy(
        {
            "metadata": {"name": f"deny-{unique}"},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["DELETE"],
                            "resources": ["configmaps"],
                        }
                    ],
                    "objectSelector": {"matchLabels": {"protect": "yes"}},
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": namespace}
                    },
                },
                "validations": [{"expression": "false", "message": "protected by test"}],
            },
        }
    )
    admission.create_validating_admission_policy_binding(
        {
            "metadata": {"name": f"deny-{unique}"},
            "spec": {"policyName": f"deny-{unique}", "validationActions": ["Deny"]},
        }
    )


def _wait_denied(api_client: Any, namespace: str) -> None:
    """The policy takes effect asynchronously: probe with a throwaway object."""
    core = _core(api_client)

    def denied() -> bool:
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": "probe", "labels": {"protect": "yes"}}}
        )
        try:
            core.delete_namespaced_config_map("probe", namespace)
        except client.ApiException as error:
            if error.status in (400, 403, 422):
                return True
            raise
        return False

    wait_until(denied, "the admission policy took effect", timeout=30, every=0.3)


def test_failed_deletion_stays_tracked_and_is_retried(rig: Rig, api_client: Any) -> None:
    rig.source.files["keep.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\n"
    rig.source.files["protected.yaml"] = PROTECTED
    assert rig.run().outcome is PassOutcome.CONVERGED
    _deny_deletes(api_client, rig.unique, rig.namespace)
    admission = client.AdmissionregistrationV1Api(api_client)
    try:
        _wait_denied(api_client, rig.namespace)
        del rig.source.files["protected.yaml"]

        refused = rig.run()

        assert refused.outcome is PassOutcome.FAILED
        assert [(e.key.name, e.action) for e in refused.changes.entries] == [
            ("protected", Action.FAILED)
        ]
        assert "protected by test" in refused.changes.entries[0].error
        inventory = rig.adapter.load_inventories(rig.settings.name)[0].inventory
        assert {key.name for key in inventory.keys} == {"keep", "protected"}
    finally:
        admission.delete_validating_admission_policy_binding(f"deny-{rig.unique}")
        admission.delete_validating_admission_policy(f"deny-{rig.unique}")

    passes = [rig.run()]
    eventually(
        lambda: passes[-1].outcome is PassOutcome.CONVERGED or passes.append(rig.run()),
        timeout=30,
        every=0.5,
    )
    retried = passes[-1]
    assert retried.outcome is PassOutcome.CONVERGED, retried.error
    assert [(e.key.name, e.action) for e in retried.changes.entries] == [
        ("protected", Action.PRUNED)
    ]
    stored, _ = rig.adapter.load_inventories(rig.settings.name)
    assert {k.name for k in stored.inventory.keys} == {"keep"}


def test_recreate_waits_for_finalizers(rig: Rig, api_client: Any) -> None:
    rig.configure(recreate=True)
    immutable = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\nimmutable: true\n"
    rig.source.files["frozen.yaml"] = immutable + "data: {a: '1'}\n"
    assert rig.run().outcome is PassOutcome.CONVERGED
    core = _core(api_client)
    core.patch_namespaced_config_map(
        "frozen", rig.namespace, {"metadata": {"finalizers": ["test.gitopsd.io/hold"]}}
    )
    before = core.read_namespaced_config_map("frozen", rig.namespace).metadata.uid
    rig.source.files["frozen.yaml"] = immutable + "data: {a: '2'}\n"

    def release() -> None:
        # Whoever owns the finalizer finishes its cleanup a moment after the delete.
        def deleting() -> bool:
            current = core.read_namespaced_config_map("frozen", rig.namespace)
            return current.metadata.deletion_timestamp is not None

        if eventually(deleting, timeout=20, every=0.1):
            core.patch_namespaced_config_map(
                "frozen", rig.namespace, {"metadata": {"finalizers": None}}
            )

    releaser = threading.Thread(target=release)
    releaser.start()
    result = rig.run()
    releaser.join()

    assert result.outcome is PassOutcome.CONVERGED, result.error
    after = core.read_namespaced_config_map("frozen", rig.namespace)
    assert after.metadata.uid != before
    assert after.data == {"a": "2"}


def test_stop_skips_writes_not_started_and_keeps_inventory(rig: Rig, api_client: Any) -> None:
    rig.source.files["app/mixed.yaml"] = read_testdata("mixed.yaml", ID=rig.unique)
    stop = threading.Event()
    stop.set()

    interrupted = rig.run(stop=stop)

    assert interrupted.outcome is PassOutcome.FAILED
    assert "interrupted" in str(interrupted.error)
    assert {e.action for e in interrupted.changes.entries} == {Action.SKIPPED}
    names = {
        cm.metadata.name for cm in _core(api_client).list_namespaced_config_map(rig.namespace).items
    }
    assert "settings" not in names
    resumed = rig.run()
    assert resumed.outcome is PassOutcome.CONVERGED, resumed.error
    assert {e.action for e in resumed.changes.entries} == {Action.CREATED}


def test_a_commit_is_rendered_once_unless_a_kind_was_unknown(rig: Rig) -> None:
    from gitopsd.reconcile import Reconciler

    rig.source.files["app/mixed.yaml"] = read_testdata("mixed.yaml", ID=rig.unique)
    reconciler = Reconciler(rig.settings, rig.source, rig.adapter, rig.journal)
    assert reconciler.run().outcome is PassOutcome.CONVERGED
    assert reconciler.run().outcome is PassOutcome.IN_SYNC
    assert rig.source.reads == 1
    rig.source.files["extra.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: more}\n"
    assert reconciler.run().outcome is PassOutcome.CONVERGED  # a new commit is rendered
    assert rig.source.reads == 2
    # A kind the server does not serve yet is looked up again at the next pass.
    rig.source.files["gadget.yaml"] = (
        "apiVersion: nowhere.gitopsd.io/v1\nkind: Gadget\nmetadata: {name: g}\n"
    )
    for reads in (3, 4):
        assert reconciler.run().outcome is PassOutcome.FAILED
        assert rig.source.reads == reads


def test_another_process_reuses_the_render_of_a_commit(rig: Rig, tmp_path: Any) -> None:
    from gitopsd.reconcile import Reconciler
    from gitopsd.rendercache import RenderCache

    rig.source.files["app/mixed.yaml"] = read_testdata("mixed.yaml", ID=rig.unique)
    cache_dir = tmp_path / "render"

    def fresh() -> Reconciler:  # as a new `gitopsd --once` would build it
        cache = RenderCache(cache_dir, rig.settings.name)
        return Reconciler(rig.settings, rig.source, rig.adapter, rig.journal, render_cache=cache)

    assert fresh().run().outcome is PassOutcome.CONVERGED
    assert fresh().run().outcome is PassOutcome.IN_SYNC
    assert rig.source.reads == 1
    rig.configure(namespace=f"{rig.namespace}-other")  # another render setting: render again
    fresh().run()
    assert rig.source.reads == 2


def test_cached_empty_render_is_still_refused_without_allow_empty(rig: Rig, tmp_path: Any) -> None:
    from gitopsd.reconcile import Reconciler
    from gitopsd.rendercache import RenderCache

    rig.source.files["keep.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\n"
    assert rig.run().outcome is PassOutcome.CONVERGED
    rig.source.files = {}
    rig.configure(allow_empty=True, prune=False)
    cache = RenderCache(tmp_path / "render", rig.settings.name)
    allowed = Reconciler(rig.settings, rig.source, rig.adapter, rig.journal, render_cache=cache)
    assert allowed.run().outcome is PassOutcome.IN_SYNC

    rig.configure(allow_empty=False, prune=True)
    cache = RenderCache(tmp_path / "render", rig.settings.name)
    refused = Reconciler(rig.settings, rig.source, rig.adapter, rig.journal, render_cache=cache)
    result = refused.run()

    assert result.outcome is PassOutcome.FAILED
    assert "allow_empty" in str(result.error)
    assert result.changes.entries == ()


def test_ignore_rule_into_a_container_keeps_its_live_resources(rig: Rig, api_client: Any) -> None:
    rig.source.files["app/mixed.yaml"] = read_testdata("mixed.yaml", ID=rig.unique)
    assert rig.run().outcome is PassOutcome.CONVERGED
    pointer = "/spec/template/spec/containers/0/resources"
    rig.configure(ignore=(IgnoreRule(kind="Deployment", pointers=(pointer,)),))

    result = rig.run()

    assert result.outcome is PassOutcome.IN_SYNC, result.error
    live = _apps(api_client).read_namespaced_deployment("web", rig.namespace)
    web = next(c for c in live.spec.template.spec.containers if c.name == "web")
    assert web.resources.limits == {"cpu": "1", "memory": "128Mi"}


class _ReplacedBeforeDelete:
    """The real adapter, except that someone else deletes and recreates the object (same
    name, new UID, no gitopsd labels) between the pass's read and its delete."""

    def __init__(self, inner: Any, api_client: Any, namespace: str) -> None:
        self._inner, self._core, self._namespace = inner, _core(api_client), namespace

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def delete(self, info: Any, key: Any, uid: str = "") -> None:
        self._core.delete_namespaced_config_map(key.name, self._namespace)
        body = {"metadata": {"name": key.name}, "data": {"owner": "someone else"}}
        self._core.create_namespaced_config_map(self._namespace, body)
        self._inner.delete(info, key, uid)


def test_prune_leaves_a_namesake_created_since_the_read(rig: Rig, api_client: Any) -> None:
    rig.source.files["keep.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\n"
    rig.source.files["old.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: old}\n"
    assert rig.run().outcome is PassOutcome.CONVERGED
    del rig.source.files["old.yaml"]
    real = rig.adapter
    rig.adapter = _ReplacedBeforeDelete(real, api_client, rig.namespace)  # type: ignore[assignment]

    refused = rig.run()

    assert refused.outcome is PassOutcome.FAILED
    (entry,) = refused.changes.entries
    assert (entry.key.name, entry.action) == ("old", Action.FAILED)
    assert "replaced by another object of that name" in entry.error, entry.error
    assert _core(api_client).read_namespaced_config_map("old", rig.namespace).data == {
        "owner": "someone else"
    }
    rig.adapter = real
    again = rig.run()  # the namesake carries no gitopsd labels: not the target's to prune
    assert again.outcome is not PassOutcome.FAILED, again.error
    assert _core(api_client).read_namespaced_config_map("old", rig.namespace).data == {
        "owner": "someone else"
    }
