"""Render: files in, validated and labelled DesiredObjects out, or one precise RenderError."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gitopsd.errors import RenderError
from gitopsd.model import MANAGED_BY_LABEL, TARGET_LABEL, ResourceKey, SourceFile
from gitopsd.render import MAX_ALIASES, MAX_NODES, render
from tests.unit._data import cases

BUILTIN_SCOPES = {
    ("v1", "ConfigMap"): True,
    ("v1", "Secret"): True,
    ("apps/v1", "Deployment"): True,
    ("v1", "Namespace"): False,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): False,
}


def discovery(api_version: str, kind: str) -> bool | None:
    return BUILTIN_SCOPES.get((api_version, kind))


def _render(files: dict[str, Any], **kwargs: Any) -> Any:
    sources = [
        SourceFile(path, content if isinstance(content, bytes) else content.encode())
        for path, content in files.items()
    ]
    options = {"default_namespace": "apps", "target": "shop", "namespaced": discovery}
    return render(sources, **{**options, **kwargs})


@pytest.mark.parametrize("case", cases("render_errors.yaml"))
def test_render_errors_name_file_document_and_field(case: dict[str, Any]) -> None:
    with pytest.raises(RenderError) as caught:
        _render(case["files"])

    message = str(caught.value)
    if "error" in case:
        assert message == case["error"]
    else:
        assert message.startswith(case["error_starts"])
    assert "hunter2" not in message
    assert "\n" not in message


def test_render_reads_yaml_and_json_in_path_order_skipping_other_files() -> None:
    files = {
        "z/last.yml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: z}\n",
        "b.json": json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}),
        "README.md": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: readme}\n",
        "kustomization.txt": "not: yaml: at: all",
        "a.yaml": "---\n# a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
    }

    objects = _render(files)

    assert [(o.key.name, o.origin) for o in objects] == [
        ("a", "a.yaml#2"),
        ("b", "b.json#1"),
        ("z", "z/last.yml#1"),
    ]


def test_render_applies_default_namespace_and_labels() -> None:
    files = {
        "a.yaml": """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, app.kubernetes.io/managed-by: helm}
spec: {replicas: 2}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: other}
"""
    }

    web, cfg = _render(files)

    assert web.key == ResourceKey("apps", "Deployment", "apps", "web")
    assert web.manifest["metadata"] == {
        "name": "web",
        "namespace": "apps",
        "labels": {"app": "web", MANAGED_BY_LABEL: "gitopsd", TARGET_LABEL: "shop"},
    }
    assert web.manifest["spec"] == {"replicas": 2}
    assert cfg.key == ResourceKey("", "ConfigMap", "other", "cfg")
    assert cfg.manifest["metadata"]["labels"] == {MANAGED_BY_LABEL: "gitopsd", TARGET_LABEL: "shop"}


def test_cluster_scoped_objects_lose_their_namespace() -> None:
    files = {
        "ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, namespace: apps}\n",
        "role.yaml": (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r}\n"
        ),
    }

    ns, role = _render(files)

    assert ns.key == ResourceKey("", "Namespace", "", "shop")
    assert "namespace" not in ns.manifest["metadata"]
    assert role.key == ResourceKey("rbac.authorization.k8s.io", "ClusterRole", "", "r")


CRDS = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: fleets.example.com}
spec:
  group: example.com
  scope: Cluster
  names: {kind: Fleet, plural: fleets}
"""


def test_scope_of_a_custom_kind_comes_from_a_crd_in_the_same_render() -> None:
    files = {
        "crds.yaml": CRDS,
        "objects.yaml": """
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
---
apiVersion: example.com/v1
kind: Fleet
metadata: {name: f, namespace: ignored}
---
apiVersion: other.io/v1
kind: Gadget
metadata: {name: g, namespace: team}
---
apiVersion: other.io/v1
kind: Gizmo
metadata: {name: z}
""",
    }

    keys = [o.key for o in _render(files)][2:]

    assert keys == [
        ResourceKey("example.com", "Widget", "apps", "w"),
        ResourceKey("example.com", "Fleet", "", "f"),
        ResourceKey("other.io", "Gadget", "team", "g"),
        ResourceKey("other.io", "Gizmo", "", "z"),
    ]


def test_discovery_wins_over_guessing() -> None:
    files = {"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"}

    (obj,) = _render(files, namespaced=lambda api_version, kind: True)

    assert obj.key.namespace == "apps"


def test_kind_list_is_expanded() -> None:
    files = {
        "list.yaml": """
apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: one}}
  - {apiVersion: v1, kind: Secret, metadata: {name: two}}
"""
    }

    objects = _render(files)

    assert [(o.key.kind, o.key.name, o.origin) for o in objects] == [
        ("ConfigMap", "one", "list.yaml#1.items[0]"),
        ("Secret", "two", "list.yaml#1.items[1]"),
    ]


def test_values_are_plain_json_data() -> None:
    files = {
        "a.yaml": """
apiVersion: v1
kind: ConfigMap
metadata: {name: a, annotations: {released: 2025-01-31}}
data: {on: "yes", 8080: port}
"""
    }

    (obj,) = _render(files)

    assert obj.manifest["metadata"]["annotations"] == {"released": "2025-01-31"}
    assert obj.manifest["data"] == {"true": "yes", "8080": "port"}


def _bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_before_expansion() -> None:
    with pytest.raises(RenderError, match=r"^bomb\.yaml document 1: more than \d+ (aliases|nodes)"):
        _render({"bomb.yaml": _bomb(9)})  # 9**9 strings once expanded


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(RenderError, match=r"^loop\.yaml document 1: more than"):
        _render({"loop.yaml": "a: &a [*a]\n"})


def test_limits_are_generous_for_real_manifests() -> None:
    assert MAX_NODES >= 100_000
    assert MAX_ALIASES >= 1_000
    data = "\n".join(f"  key{i}: value{i}" for i in range(5_000))
    files = {
        "big.yaml": f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata:\n{data}\n"
    }

    (obj,) = _render(files)

    assert len(obj.manifest["data"]) == 5_000


def test_render_does_not_mutate_shared_label_mappings_between_documents() -> None:
    files = {
        "a.yaml": """
common: &labels {app: web}
apiVersion: v1
kind: ConfigMap
metadata: {name: a, labels: *labels}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b}
"""
    }

    first, second = _render(files)

    assert first.manifest["common"] == {"app": "web"}
    assert second.manifest["metadata"]["labels"][TARGET_LABEL] == "shop"


def test_empty_render() -> None:
    assert _render({"empty.yaml": "---\n", "notes.txt": "x"}) == ()


@pytest.mark.parametrize("loader", ["CSafeLoader", "SafeLoader"])
def test_both_loaders_render_and_refuse_bombs(loader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    import gitopsd.render

    if not hasattr(yaml, loader):
        pytest.fail(f"PyYAML lacks {loader}: install it with libyaml")
    monkeypatch.setattr(gitopsd.render, "_Loader", getattr(yaml, loader))

    (obj,) = _render({"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"})
    assert obj.key.name == "a"
    with pytest.raises(RenderError, match=r"^bomb\.yaml document 1: more than"):
        _render({"bomb.yaml": _bomb(9)})
