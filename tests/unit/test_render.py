"""Render: files in, validated and labelled DesiredObjects out, or one precise RenderError."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gitopsd.errors import RenderError
from gitopsd.manifestread import MAX_ALIASES, MAX_DEPTH, MAX_NODES, MAX_OBJECT_BYTES
from gitopsd.model import MANAGED_BY_LABEL, TARGET_LABEL, ResourceKey, SourceFile
from gitopsd.render import render
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

    import gitopsd.manifestread

    if not hasattr(yaml, loader):
        pytest.fail(f"PyYAML lacks {loader}: install it with libyaml")
    monkeypatch.setattr(gitopsd.manifestread, "_Loader", getattr(yaml, loader))

    (obj,) = _render({"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"})
    assert obj.key.name == "a"
    with pytest.raises(RenderError, match=r"^bomb\.yaml document 1: more than"):
        _render({"bomb.yaml": _bomb(9)})


HEAD = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\n"


def _flow(levels: int) -> str:
    """A ConfigMap whose `data` holds lists nested `levels` deep (the document is one more)."""
    return f"{HEAD}data: {'[' * levels}{']' * levels}\n"


def _block(levels: int) -> str:
    lines = "".join(f"{'  ' * i}k{i}:\n" for i in range(levels - 1))
    return f"{HEAD}spec:\n" + "".join("  " + line for line in lines) + "  " * levels + "end\n"


def _json(levels: int) -> str:
    return (
        json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "deep"}})[:-1]
        + f', "data": {"[" * levels}{"]" * levels}}}'
    )


DEEP = r"nested more than 100 levels deep"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("flow.yaml", _flow(600)),
        ("block.yaml", _block(600)),
        ("flow.yml", _flow(100_000)),  # crashed the process (C stack) before the limit
        ("deep.json", _json(10_000)),
        ("deep.json", _json(900)),  # loads within Python's recursion limit, then refused
    ],
)
def test_deep_nesting_is_refused_naming_the_file(name: str, text: str) -> None:
    with pytest.raises(RenderError, match=rf"^{name} document 1: {DEEP}"):
        _render({name: text})


def test_depth_limit_is_exact_and_names_the_document() -> None:
    assert MAX_DEPTH == 100
    assert len(_render({"a.yaml": _flow(MAX_DEPTH - 1)})) == 1
    assert len(_render({"b.json": _json(MAX_DEPTH - 1)})) == 1
    for name, text in {"a.yaml": _flow(MAX_DEPTH), "b.json": _json(MAX_DEPTH)}.items():
        with pytest.raises(RenderError, match=rf"^{name} document 1: {DEEP}"):
            _render({name: text})
    two = HEAD + "---\n" + _flow(MAX_DEPTH).replace("deep", "deeper")
    with pytest.raises(RenderError, match=rf"^two\.yaml document 2: {DEEP}"):
        _render({"two.yaml": two})


def test_deep_nesting_through_aliases_is_refused() -> None:
    # Each anchor nests the previous one 40 levels down: text 40 deep, data 120 deep.
    anchors = "".join(
        f"a{i}: &a{i} {'[' * 40}{f'*a{i - 1}' if i else 'x'}{']' * 40}\n" for i in range(3)
    )
    with pytest.raises(RenderError, match=rf"^alias\.yaml document 1: {DEEP}"):
        _render({"alias.yaml": HEAD + anchors})


def test_merge_keys_may_override_without_being_duplicates() -> None:
    files = {
        "a.yaml": """
base: &base {color: blue, size: small}
apiVersion: v1
kind: ConfigMap
metadata: {name: a}
data:
  <<: *base
  color: red
"""
    }

    (obj,) = _render(files)

    assert obj.manifest["data"] == {"color": "red", "size": "small"}


def _big_configmap(name: str, size: int) -> str:
    return f"{HEAD.replace('deep', name)}data:\n  blob: {'x' * size}\n"


def test_object_above_the_api_server_limit_is_refused() -> None:
    small = _big_configmap("small", 1000)
    big = _big_configmap("big", MAX_OBJECT_BYTES)
    with pytest.raises(RenderError) as caught:
        _render({"big.yaml": small + "---\n" + big})

    message = str(caught.value)
    assert message.startswith("big.yaml document 2: is ")
    size = int(message.split()[4])
    assert MAX_OBJECT_BYTES < size <= len(big)
    assert f"above the limit of {MAX_OBJECT_BYTES} bytes per object" in message
    assert "x" * 20 not in message


def test_object_size_is_counted_in_bytes() -> None:
    text = _big_configmap("wide", MAX_OBJECT_BYTES // 2).replace("x", "\u00e9")
    with pytest.raises(RenderError, match=r"^wide\.yaml document 1: is \d+ bytes, above"):
        _render({"wide.yaml": text})


def test_a_large_file_of_small_objects_is_accepted() -> None:
    count = 3 * MAX_OBJECT_BYTES // 100_000
    docs = [_big_configmap(f"cm{i}", 100_000) for i in range(count)]

    objects = _render({"many.yaml": "---\n".join(docs)})

    assert len(objects) == count


def test_a_large_list_is_measured_per_item() -> None:
    items = "".join(
        f"- apiVersion: v1\n  kind: ConfigMap\n  metadata: {{name: cm{i}}}\n"
        f"  data: {{blob: {'x' * 100_000}}}\n"
        for i in range(20)
    )
    text = f"apiVersion: v1\nkind: List\nitems:\n{items}"
    assert len(_render({"list.yaml": text})) == 20

    blob = "x" * MAX_OBJECT_BYTES
    big = (
        items
        + f"- {{apiVersion: v1, kind: ConfigMap, metadata: {{name: big}}, data: {{b: {blob}}}}}\n"
    )
    with pytest.raises(RenderError, match=r"^list\.yaml document 1 items\[20\]: is \d+ bytes"):
        _render({"list.yaml": f"apiVersion: v1\nkind: List\nitems:\n{big}"})


def test_json_objects_are_measured_too() -> None:
    item = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}
    big = {**item, "data": {"blob": "x" * MAX_OBJECT_BYTES}}
    with pytest.raises(RenderError, match=r"^big\.json document 1: is \d+ bytes, above"):
        _render({"big.json": json.dumps(big)})
    items = [
        {**item, "metadata": {"name": f"cm{i}"}, "data": {"b": "x" * 100_000}} for i in range(20)
    ]
    listed = {"apiVersion": "v1", "kind": "List", "items": items}
    assert len(_render({"list.json": json.dumps(listed)})) == 20


@pytest.mark.parametrize("loader", ["CSafeLoader", "SafeLoader"])
def test_both_loaders_refuse_depth_and_duplicates(
    loader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    import gitopsd.manifestread

    monkeypatch.setattr(gitopsd.manifestread, "_Loader", getattr(yaml, loader))
    for text in (_flow(600), _block(600), _flow(20_000)):
        with pytest.raises(RenderError, match=rf"^d\.yaml document 1: {DEEP}"):
            _render({"d.yaml": text})
    with pytest.raises(RenderError, match=r"^d\.yaml document 1: key 'a' is given twice"):
        _render({"d.yaml": HEAD + "data: {a: 1, a: 2}\n"})


@pytest.mark.parametrize(
    "value",
    [
        "!!int hunter2",
        "!!float hunter2",
        "!!bool hunter2",
        "!!timestamp hunter2",
        "2020-13-45",
        '!!int ""',
        "!!int +",
    ],
)
def test_a_value_that_does_not_fit_its_tag_is_refused_unseen(value: str) -> None:
    # Kept out of testdata/render_errors.yaml, whose files the fuzz seeds parse.
    text = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\ndata: {{x: {value}}}\n"
    with pytest.raises(RenderError) as caught:
        _render({"a.yaml": text})

    message = str(caught.value)
    assert message.startswith("a.yaml document 1: a value cannot be read as the number")
    assert "hunter2" not in message
