"""Plan: the minimal ordered writes, and prune only what this target provably owns."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gitopsd.inventory import manifest_hash
from gitopsd.model import (
    MANAGED_BY_LABEL,
    PRUNE_ANNOTATION,
    TARGET_LABEL,
    DesiredObject,
    IgnoreRule,
    LiveObject,
    Plan,
    ResourceKey,
    StepKind,
)
from gitopsd.plan import make_plan, order_key
from tests.unit._data import desired, key_of, live

OURS = {MANAGED_BY_LABEL: "gitopsd", TARGET_LABEL: "shop"}


def manifest(
    kind: str, name: str, namespace: str = "", api_version: str = "v1", **fields: Any
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": dict(OURS)}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **fields}


def deployment(name: str = "web", replicas: int = 2, image: str = "web:1") -> dict[str, Any]:
    spec = {
        "replicas": replicas,
        "template": {"spec": {"containers": [{"name": "web", "image": image}]}},
    }
    return manifest("Deployment", name, "shop", "apps/v1", spec=spec)


def as_live(*manifests: dict[str, Any]) -> dict[ResourceKey, LiveObject]:
    return {key_of(m): live(copy.deepcopy(m)) for m in manifests}


def plan(
    want: list[dict[str, Any]],
    have: dict[ResourceKey, LiveObject],
    inventory: frozenset[ResourceKey] = frozenset(),
    **options: Any,
) -> Plan:
    settings = {"rules": (), "prune": True, **options}
    # What is live and declared, this target made (adoption: tests/unit/test_inventory_adoption.py).
    tracked = inventory | {key_of(m) for m in want if key_of(m) in have}
    return make_plan([desired(m) for m in want], have, tracked, **settings)


def summary(result: Plan) -> list[tuple[str, str, str]]:
    return [(step.kind.value, str(step.key), step.reason) for step in result.steps]


def test_in_sync_plan_is_empty() -> None:
    objects = [deployment(), manifest("ConfigMap", "cfg", "shop", data={"a": "1"})]
    have = as_live(*objects)
    have[key_of(objects[0])].manifest["status"] = {"readyReplicas": 2}

    result = plan(objects, have, frozenset(have))

    assert result.empty
    assert result.unchanged == (key_of(objects[0]), key_of(objects[1]))
    assert result.ignored == () and result.kept == ()


def test_create_missing_and_apply_drifted() -> None:
    result = plan(
        [deployment(replicas=3), manifest("ConfigMap", "cfg", "shop")], as_live(deployment())
    )

    assert summary(result) == [
        ("create", "ConfigMap shop/cfg", "missing"),
        ("apply", "Deployment.apps shop/web", "drift"),
    ]
    apply = result.steps[1]
    assert apply.drift is not None and apply.drift.field_paths == ("spec.replicas",)
    assert result.steps[0].drift is not None and result.steps[0].drift.missing


@pytest.mark.parametrize(
    ("recorded", "steps"),
    [
        pytest.param("same", [], id="unchanged since last apply"),
        pytest.param(
            "other", [("apply", "Deployment.apps shop/web", "changed in git")], id="changed"
        ),
        pytest.param(None, [], id="no record: in sync is enough"),
    ],
)
def test_declaration_changed_in_git_is_applied(recorded: str | None, steps: list[Any]) -> None:
    # Git dropped an annotation: live still has it, so compare sees no drift, yet the
    # apply must run for the server to remove the field gitopsd owned.
    want = deployment()
    have = copy.deepcopy(want)
    have["metadata"]["annotations"] = {"note": "old"}
    last = {}
    if recorded is not None:
        last[key_of(want)] = manifest_hash(want) if recorded == "same" else manifest_hash(have)

    result = plan([want], as_live(have), last_applied=last)

    assert summary(result) == steps


def test_manifest_hash_is_stable_and_sensitive() -> None:
    first = deployment()
    reordered = dict(reversed(list(first.items())))

    assert manifest_hash(first) == manifest_hash(reordered)
    assert manifest_hash(first) != manifest_hash(deployment(replicas=3))


HPA_RULE = IgnoreRule("Deployment", ("/spec/replicas",), group="apps")


def test_drift_only_in_ignored_fields_is_reported_as_ignored() -> None:
    result = plan([deployment(replicas=2)], as_live(deployment(replicas=7)), rules=[HPA_RULE])

    assert result.empty
    assert [report.field_paths for report in result.ignored] == [("spec.replicas",)]


def test_ignored_fields_are_not_applied_and_do_not_mask_real_drift() -> None:
    result = plan(
        [deployment(replicas=2, image="web:2")],
        as_live(deployment(replicas=7, image="web:1")),
        rules=[HPA_RULE],
    )

    (step,) = result.steps
    assert step.kind is StepKind.APPLY
    assert step.drift is not None
    assert step.drift.field_paths == ("spec.template.spec.containers[name=web].image",)
    assert step.desired is not None and "replicas" not in step.desired.manifest["spec"]


def test_ignore_rule_for_another_object_does_not_apply() -> None:
    rule = IgnoreRule("Deployment", ("/spec/replicas",), name="api")

    result = plan([deployment(replicas=2)], as_live(deployment(replicas=7)), rules=[rule])

    assert summary(result) == [("apply", "Deployment.apps shop/web", "drift")]
    assert result.ignored == ()


def test_order_namespaces_and_crds_first_then_cluster_scoped_then_namespaced() -> None:
    crd_api = "apiextensions.k8s.io/v1"
    objects = [
        deployment(),
        manifest("Widget", "w", "shop", "example.com/v1"),
        manifest("ClusterRole", "reader", "", "rbac.authorization.k8s.io/v1"),
        manifest("ConfigMap", "cfg", "shop"),
        manifest("Fleet", "f", "", "example.com/v1"),
        manifest("CustomResourceDefinition", "widgets.example.com", "", crd_api),
        manifest("ServiceAccount", "app", "shop"),
        manifest("Namespace", "shop"),
    ]

    result = plan(objects, {})

    assert [str(step.key) for step in result.steps] == [
        "Namespace shop",
        "CustomResourceDefinition.apiextensions.k8s.io widgets.example.com",
        "ClusterRole.rbac.authorization.k8s.io reader",
        "Fleet.example.com f",
        "ServiceAccount shop/app",
        "ConfigMap shop/cfg",
        "Deployment.apps shop/web",
        "Widget.example.com shop/w",
    ]
    assert sorted((key_of(m) for m in objects), key=order_key) == [s.key for s in result.steps]


def test_deletions_come_last_in_reverse_order() -> None:
    gone = [
        manifest("Namespace", "old"),
        manifest("ConfigMap", "old", "old"),
        manifest("ClusterRole", "old", "", "rbac.authorization.k8s.io/v1"),
    ]
    keep = manifest("ConfigMap", "new", "shop")
    have = as_live(*gone)

    result = plan([keep], have, frozenset(have))

    assert summary(result) == [
        ("create", "ConfigMap shop/new", "missing"),
        ("delete", "ConfigMap old/old", "not declared"),
        ("delete", "ClusterRole.rbac.authorization.k8s.io old", "not declared"),
        ("delete", "Namespace old", "not declared"),
    ]
    assert all(step.desired is None for step in result.steps[1:])


def _undeclared(labels: dict[str, str], annotations: dict[str, str] | None = None) -> Any:
    obj = manifest("ConfigMap", "stray", "shop")
    obj["metadata"]["labels"] = labels
    if annotations:
        obj["metadata"]["annotations"] = annotations
    return obj


@pytest.mark.parametrize(
    ("stray", "deleted"),
    [
        pytest.param(_undeclared(OURS), True, id="labelled and in inventory"),
        pytest.param(_undeclared({}), False, id="no labels"),
        pytest.param(_undeclared({MANAGED_BY_LABEL: "gitopsd"}), False, id="no target label"),
        pytest.param(_undeclared({**OURS, TARGET_LABEL: "billing"}), False, id="other target"),
        pytest.param(_undeclared({**OURS, MANAGED_BY_LABEL: "helm"}), False, id="other manager"),
        pytest.param(_undeclared(OURS, {PRUNE_ANNOTATION: "disabled"}), False, id="prune disabled"),
    ],
)
def test_prune_deletes_only_what_this_target_provably_owns(
    stray: dict[str, Any], deleted: bool
) -> None:
    have = as_live(deployment(), stray)

    result = plan([deployment()], have, frozenset(have))

    key = key_of(stray)
    assert [s.key for s in result.steps if s.kind is StepKind.DELETE] == ([key] if deleted else [])
    assert result.kept == (() if deleted else (key,))


def test_a_deletion_names_the_uid_it_saw() -> None:
    stray = manifest("ConfigMap", "old", "shop")
    stray["metadata"]["uid"] = "0b5e-uid"
    have = as_live(deployment(), stray)

    result = plan([deployment()], have, frozenset(have))

    (deletion,) = [s for s in result.steps if s.kind is StepKind.DELETE]
    assert (deletion.key, deletion.uid) == (key_of(stray), "0b5e-uid")


def test_target_given_explicitly_is_checked() -> None:
    stray = _undeclared(OURS)
    have = as_live(stray)

    result = plan([], have, frozenset(have), target="billing", allow_empty=True)

    assert result.steps == ()
    assert result.kept == (key_of(stray),)


def test_labelled_object_outside_the_inventory_is_never_deleted() -> None:
    have = as_live(deployment(), _undeclared(OURS))

    result = plan([deployment()], have, frozenset())

    assert result.empty
    assert result.kept == ()


def test_empty_render_prunes_nothing_unless_allowed() -> None:
    have = as_live(deployment(), manifest("ConfigMap", "cfg", "shop"))

    refused = plan([], have, frozenset(have))
    allowed = plan([], have, frozenset(have), allow_empty=True, target="shop")

    assert refused.steps == ()
    assert set(refused.kept) == set(have)
    assert {s.key for s in allowed.steps} == set(have)


def test_prune_disabled_for_the_target() -> None:
    have = as_live(deployment(), _undeclared(OURS))

    result = plan([deployment()], have, frozenset(have), prune=False)

    assert result.empty
    assert result.kept == ()


def test_inventory_entry_already_gone_needs_no_step() -> None:
    gone = ResourceKey("", "ConfigMap", "shop", "gone")

    result = plan([deployment()], as_live(deployment()), frozenset({gone}))

    assert result.empty


def test_make_plan_does_not_mutate_inputs() -> None:
    want = [deployment(replicas=3)]
    have = as_live(deployment(replicas=1))
    snapshot = (copy.deepcopy(want), copy.deepcopy({k: v.manifest for k, v in have.items()}))

    plan(want, have, frozenset(have), rules=[HPA_RULE])

    assert (want, {k: v.manifest for k, v in have.items()}) == snapshot


def test_steps_carry_desired_objects_with_origin() -> None:
    obj = DesiredObject(key_of(deployment()), deployment(), "apps/web.yaml#2")

    result = make_plan([obj], {}, frozenset(), rules=(), prune=True)

    assert result.steps[0].desired == obj
