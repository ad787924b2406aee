"""Adoption: objects a target did not create are taken over explicitly, released rather
than pruned when Git drops them, and what a target may never declare (issue 10, items 2-3)."""

from __future__ import annotations

from typing import Any

import pytest

from gitopsd.errors import OwnershipError, RenderError
from gitopsd.handoff import previous_managers, released
from gitopsd.inventory import Inventory, next_inventory
from gitopsd.model import (
    ADOPT_REASON,
    Action,
    ChangeSet,
    ChangeSetEntry,
    DesiredObject,
    LiveObject,
    ResourceKey,
    SourceFile,
    StepKind,
)
from gitopsd.plan import Adoption, make_plan
from gitopsd.render import render

KEY = ResourceKey("", "ConfigMap", "shop", "legacy")
OURS = {"app.kubernetes.io/managed-by": "gitopsd", "gitopsd.io/target": "shop"}
BY_HAND = [
    {"manager": "kubectl-create", "operation": "Update", "time": "2026-01-01T00:00:00Z"},
    {"manager": "kubectl-edit", "operation": "Update", "time": "2026-02-01T00:00:00Z"},
]


def configmap(
    labels: dict[str, str], managers: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "legacy", "namespace": "shop", "labels": labels}
    if managers is not None:
        metadata["managedFields"] = managers
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"a": "b"}}


DESIRED = DesiredObject(KEY, configmap(OURS), "legacy.yaml#1")


def plan(
    live: dict[str, Any] | None, tracked: frozenset[ResourceKey] = frozenset(), **adoption: Any
) -> Any:
    current = {KEY: LiveObject(KEY, live)} if live is not None else {}
    return make_plan(
        [DESIRED],
        current,
        tracked,
        rules=(),
        prune=True,
        target="shop",
        adoption=Adoption(**adoption),
    )


def test_an_existing_object_the_target_never_tracked_is_adopted_naming_its_managers() -> None:
    result = plan(configmap({"team": "web"}, BY_HAND))

    (step,) = result.steps
    assert (step.kind, step.reason) == (StepKind.APPLY, ADOPT_REASON)
    assert step.drift is not None
    assert [o.manager for o in step.drift.owners] == ["kubectl-edit", "kubectl-create"]
    assert result.adoptions == {KEY}


def test_an_object_equal_to_git_is_still_adopted() -> None:
    # Someone copied gitopsd's labels: no drift, but the target must record the adoption.
    result = plan(configmap(OURS, BY_HAND))

    assert result.adoptions == {KEY}


@pytest.mark.parametrize(
    ("tracked", "adopted", "labels", "adopting"),
    [
        pytest.param(frozenset({KEY}), frozenset(), OURS, False, id="created by the target"),
        pytest.param(frozenset({KEY}), frozenset(), {}, False, id="its labels removed by hand"),
        pytest.param(frozenset({KEY}), frozenset({KEY}), {}, True, id="adoption not written yet"),
        pytest.param(frozenset({KEY}), frozenset({KEY}), OURS, False, id="adopted before"),
    ],
)
def test_only_objects_not_yet_taken_over_are_adopted(
    tracked: frozenset[ResourceKey],
    adopted: frozenset[ResourceKey],
    labels: dict[str, str],
    adopting: bool,
) -> None:
    result = plan(configmap(labels, BY_HAND), tracked, adopted=adopted)

    assert (result.adoptions == {KEY}) is adopting


def test_a_missing_object_is_created_not_adopted() -> None:
    (step,) = plan(None).steps

    assert step.kind is StepKind.CREATE and step.reason == "missing"


def test_adopt_false_refuses_naming_the_object_and_its_managers() -> None:
    with pytest.raises(OwnershipError) as caught:
        plan(configmap({}, BY_HAND), allowed=False)

    assert str(caught.value) == (
        "target shop: ConfigMap shop/legacy exists and was not created by gitopsd (managed by "
        "kubectl-create, kubectl-edit); `adopt: false` refuses to take it over: delete it, or "
        "set `adopt: true`"
    )


def test_adopt_false_still_creates_and_updates() -> None:
    assert plan(None, allowed=False).steps[0].kind is StepKind.CREATE


def undeclared(live_labels: dict[str, str], **adoption: Any) -> list[tuple[StepKind, str]]:
    other = ResourceKey("", "ConfigMap", "shop", "keep")
    keep = DesiredObject(other, {**configmap(OURS), "metadata": {"name": "keep"}}, "k.yaml#1")
    current = {
        KEY: LiveObject(KEY, configmap(live_labels)),
        other: LiveObject(other, keep.manifest),
    }
    result = make_plan(
        [keep],
        current,
        frozenset({KEY, other}),
        rules=(),
        prune=True,
        target="shop",
        adoption=Adoption(**adoption),
    )
    return [(step.kind, step.key.name) for step in result.steps]


@pytest.mark.parametrize(
    ("adoption", "kind"),
    [
        pytest.param({"adopted": frozenset({KEY})}, StepKind.RELEASE, id="adopted: released"),
        pytest.param(
            {"adopted": frozenset({KEY}), "prune": True}, StepKind.DELETE, id="prune_adopted"
        ),
        pytest.param({}, StepKind.DELETE, id="created by the target: pruned"),
    ],
)
def test_an_adopted_object_git_drops_is_released_unless_prune_adopted(
    adoption: dict[str, Any], kind: StepKind
) -> None:
    assert undeclared(OURS, **adoption) == [(kind, "legacy")]


def test_an_adopted_object_without_gitopsd_labels_is_left_alone() -> None:
    assert undeclared({}, adopted=frozenset({KEY})) == []


def test_the_inventory_remembers_adoptions_until_gitopsd_recreates_or_lets_go() -> None:
    adopted = Inventory(frozenset({KEY}), claims=frozenset({KEY}), adopted=frozenset({KEY}))

    kept = next_inventory(adopted, [DESIRED], ChangeSet(), "c")
    recreated = ChangeSet((ChangeSetEntry(KEY, Action.RECREATED),))
    released_entry = ChangeSet((ChangeSetEntry(KEY, Action.RELEASED),))

    assert kept.adopted == {KEY}
    assert next_inventory(adopted, [DESIRED], recreated, "c").adopted == frozenset()
    after_release = next_inventory(adopted, [], released_entry, "c")
    assert (after_release.keys, after_release.adopted) == (frozenset(), frozenset())


def test_released_drops_gitopsd_labels_and_field_ownership_only() -> None:
    ours = {"manager": "gitopsd", "operation": "Apply", "fieldsV1": {"f:data": {}}}
    live = configmap({**OURS, "team": "web"}, [*BY_HAND, ours])
    live["metadata"]["resourceVersion"] = "42"

    result = released(live)

    assert result["metadata"]["labels"] == {"team": "web"}
    assert result["metadata"]["managedFields"] == BY_HAND
    assert (result["data"], result["metadata"]["resourceVersion"]) == ({"a": "b"}, "42")
    assert live["metadata"]["labels"] == {**OURS, "team": "web"}  # the input is left alone


def test_released_clears_managed_fields_gitopsd_held_alone() -> None:
    # An empty list would leave them as they are; one empty entry clears them.
    only_ours = configmap(OURS, [{"manager": "gitopsd", "operation": "Apply"}])

    assert released(only_ours)["metadata"]["managedFields"] == [{}]


def test_previous_managers_lists_each_manager_once_newest_first() -> None:
    live = LiveObject(KEY, configmap({}, [*BY_HAND, BY_HAND[0]]))

    assert [o.manager for o in previous_managers(live)] == ["kubectl-edit", "kubectl-create"]


def render_one(text: str) -> Any:
    return render(
        [SourceFile("app/forged.yaml", text.encode())],
        default_namespace="shop",
        target="shop",
        namespaced=lambda _v, _k: True,
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(
            "metadata: {name: gitopsd-inventory-web, namespace: gitopsd-system}",
            "ConfigMap names starting 'gitopsd-inventory-' are reserved for gitopsd's inventories",
            id="inventory name",
        ),
        pytest.param(
            "metadata: {name: gitopsd-inventory-web, namespace: elsewhere}",
            "ConfigMap names starting 'gitopsd-inventory-' are reserved",
            id="inventory name in any namespace",
        ),
        pytest.param(
            "metadata: {name: x, labels: {gitopsd.io/inventory-of: web}}",
            "the label gitopsd.io/inventory-of marks gitopsd's inventories",
            id="inventory label",
        ),
        pytest.param(
            "metadata: {name: x, labels: {gitopsd.io/target: web}}",
            "the label gitopsd.io/target: 'web' names another target; target 'shop' may declare "
            "only its own objects",
            id="another target's label",
        ),
    ],
)
def test_render_refuses_what_would_forge_another_targets_inventory_or_objects(
    text: str, problem: str
) -> None:
    with pytest.raises(RenderError) as caught:
        render_one(f"apiVersion: v1\nkind: ConfigMap\n{text}\n")

    message = str(caught.value)
    assert message.startswith("app/forged.yaml document 1: ") and problem in message
    assert "\n" not in message


def test_render_accepts_the_targets_own_label_and_lookalike_names() -> None:
    objects = render_one(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, labels: {gitopsd.io/target: shop}}\n"
        "---\napiVersion: v1\nkind: Secret\nmetadata: {name: gitopsd-inventory-notes}\n"
    )

    assert [obj.key.name for obj in objects] == ["x", "gitopsd-inventory-notes"]
