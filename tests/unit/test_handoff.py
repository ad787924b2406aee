"""Ignore rules: the fields they take out, and that ignored fields stay declared with their
live value only while gitopsd alone owns them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gitopsd.handoff import as_applied, keep_sole_owned, parse_pointer, strip_ignored
from gitopsd.model import DesiredObject, IgnoreRule, LiveObject, ResourceKey

KEY = ResourceKey("apps", "Deployment", "shop", "web")
RULE = IgnoreRule(kind="Deployment", pointers=("/spec/replicas",))
REPLICAS = {"f:spec": {"f:replicas": {}}}


def _live(replicas: int, *owners: tuple[str, str]) -> LiveObject:
    managed = [
        {"manager": manager, "operation": operation, "fieldsV1": REPLICAS}
        for manager, operation in owners
    ]
    manifest: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "managedFields": managed},
        "spec": {"replicas": replicas, "paused": False},
    }
    return LiveObject(KEY, manifest)


DESIRED = DesiredObject(
    KEY,
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {}},
    "web.yaml#1",
)


@pytest.mark.parametrize(
    ("owners", "kept"),
    [
        ((("gitopsd", "Apply"),), 3),  # gitopsd alone: keep declaring the live value
        ((("gitopsd", "Apply"), ("hpa", "Update")), None),  # shared: let go, value stays
        ((("hpa", "Update"),), None),  # someone else's already
        ((("gitopsd", "Update"),), None),  # not from our apply
        ((), None),
    ],
)
def test_only_sole_ownership_keeps_the_field(
    owners: tuple[tuple[str, str], ...], kept: Any
) -> None:
    result = keep_sole_owned(DESIRED, _live(3, *owners), [RULE])
    assert result.manifest["spec"].get("replicas") == kept
    assert "replicas" not in DESIRED.manifest["spec"]  # input untouched


def test_rule_for_another_kind_changes_nothing() -> None:
    rule = IgnoreRule(kind="StatefulSet", pointers=("/spec/replicas",))
    assert keep_sole_owned(DESIRED, _live(3, ("gitopsd", "Apply")), [rule]) is DESIRED


def test_missing_live_object_changes_nothing() -> None:
    assert keep_sole_owned(DESIRED, None, [RULE]) is DESIRED


def _deployment(resources: dict[str, Any] | None, managed: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "web", "image": "nginx:1.27"}
    if resources is not None:
        container["resources"] = resources
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "managedFields": managed},
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar"}, container]}}},
    }


RESOURCES_OWNED = {
    "f:spec": {
        "f:template": {
            "f:spec": {
                "f:containers": {
                    'k:{"name":"web"}': {".": {}, "f:name": {}, "f:resources": {"f:limits": {}}}
                }
            }
        }
    }
}
LIMITS = {"limits": {"cpu": "1"}}


@pytest.mark.parametrize(
    ("owners", "kept"),
    [
        ((("gitopsd", "Apply"),), LIMITS),
        ((("gitopsd", "Apply"), ("vpa", "Update")), None),
    ],
)
def test_fields_inside_keyed_list_items_are_matched_by_name(
    owners: tuple[tuple[str, str], ...], kept: Any
) -> None:
    managed = [{"manager": m, "operation": o, "fieldsV1": RESOURCES_OWNED} for m, o in owners]
    live = LiveObject(KEY, _deployment(LIMITS, managed))
    # Git lists the containers in another order than the server: web is item 0 here.
    declared = _deployment(None, [])
    declared["spec"]["template"]["spec"]["containers"].reverse()
    del declared["metadata"]["managedFields"]
    rule = IgnoreRule(kind="Deployment", pointers=("/spec/template/spec/containers/0/resources",))
    result = keep_sole_owned(DesiredObject(KEY, declared, "web.yaml#1"), live, [rule])
    web = result.manifest["spec"]["template"]["spec"]["containers"][0]
    assert web["name"] == "web"
    assert web.get("resources") == kept


def test_key_of_an_atomic_map_gitopsd_owns_whole_is_kept() -> None:
    # nodeSelector is an atomic map: its owner's fieldsV1 is `f:nodeSelector: {}`. Applying it
    # without the handed-over key would replace the whole map and drop the key.
    selector_owned = {"f:spec": {"f:template": {"f:spec": {"f:nodeSelector": {}}}}}
    managed = [{"manager": "gitopsd", "operation": "Apply", "fieldsV1": selector_owned}]
    live = LiveObject(KEY, _deployment(None, managed))
    live.manifest["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd", "zone": "a"}
    declared = _deployment(None, [])
    del declared["metadata"]["managedFields"]
    declared["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    rule = IgnoreRule(kind="Deployment", pointers=("/spec/template/spec/nodeSelector/zone",))

    result = keep_sole_owned(DesiredObject(KEY, declared, "web.yaml#1"), live, [rule])

    assert result.manifest["spec"]["template"]["spec"]["nodeSelector"] == {
        "disk": "ssd",
        "zone": "a",
    }


WEB_PROD = ResourceKey("apps", "Deployment", "prod", "web")
DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "web",
        "namespace": "prod",
        "annotations": {"example.com/owner": "team-a", "odd~key": "x", "keep": "y"},
    },
    "spec": {
        "replicas": 3,
        "template": {"spec": {"containers": [{"name": "web", "image": "a"}, {"name": "b"}]}},
    },
}


@pytest.mark.parametrize(
    ("pointer", "tokens"),
    [
        ("/spec/replicas", ("spec", "replicas")),
        (
            "/metadata/annotations/example.com~1owner",
            ("metadata", "annotations", "example.com/owner"),
        ),
        ("/a~0b/c~01", ("a~b", "c~1")),
        ("", ()),
    ],
)
def test_parse_pointer(pointer: str, tokens: tuple[str, ...]) -> None:
    assert parse_pointer(pointer) == tokens


def test_parse_pointer_refuses_a_relative_pointer() -> None:
    with pytest.raises(ValueError, match="does not start with '/'"):
        parse_pointer("spec/replicas")


@pytest.mark.parametrize(
    ("rule", "removed"),
    [
        (IgnoreRule("Deployment", ("/spec/replicas",)), ["spec.replicas"]),
        (
            IgnoreRule("Deployment", ("/metadata/annotations/example.com~1owner",), group="apps"),
            ["annotation example.com/owner"],
        ),
        (IgnoreRule("Deployment", ("/metadata/annotations/odd~0key",)), ["annotation odd~key"]),
        (
            IgnoreRule("Deployment", ("/spec/template/spec/containers/0/image",), name="web"),
            ["image of container 0"],
        ),
        (IgnoreRule("Deployment", ("/spec/absent/deeper", "/spec/template/spec/containers/9")), []),
        (IgnoreRule("StatefulSet", ("/spec/replicas",)), []),
        (IgnoreRule("Deployment", ("/spec/replicas",), group="extensions"), []),
        (IgnoreRule("Deployment", ("/spec/replicas",), name="api"), []),
        (IgnoreRule("Deployment", ("/spec/replicas",), namespace="staging"), []),
    ],
)
def test_strip_ignored(rule: IgnoreRule, removed: list[str]) -> None:
    original = copy.deepcopy(DEPLOYMENT)

    result = strip_ignored(DEPLOYMENT, WEB_PROD, [rule])

    assert original == DEPLOYMENT  # the input is never mutated
    checks = {
        "spec.replicas": "replicas" in result["spec"],
        "annotation example.com/owner": "example.com/owner" in result["metadata"]["annotations"],
        "annotation odd~key": "odd~key" in result["metadata"]["annotations"],
        "image of container 0": "image" in result["spec"]["template"]["spec"]["containers"][0],
    }
    assert [name for name, present in checks.items() if not present] == removed
    assert result["metadata"]["annotations"]["keep"] == "y"


def test_as_applied_strips_ignored_fields_unless_gitopsd_alone_owns_them() -> None:
    declared = DesiredObject(KEY, {**DESIRED.manifest, "spec": {"replicas": 2}}, "web.yaml#1")
    other_kind = IgnoreRule(kind="StatefulSet", pointers=("/spec/replicas",))

    assert as_applied(declared, _live(3), [other_kind]) is declared
    handed_over = as_applied(declared, _live(3, ("hpa", "Update")), [RULE])
    assert "replicas" not in handed_over.manifest["spec"]
    kept = as_applied(declared, _live(3, ("gitopsd", "Apply")), [RULE])
    assert kept.manifest["spec"]["replicas"] == 3  # the live value, not Git's 2
