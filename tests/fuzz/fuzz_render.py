"""Fuzz target: the manifest renderer, each input read as a YAML file and as a JSON file.

Valid objects: labelled DesiredObjects of plain JSON data with string keys, no key
declared twice, and no mapping key written twice in the file (kubectl refuses those).
Run: python3 -m tests.fuzz.fuzz_render [libFuzzer flags] [corpus folders or files]
"""

from __future__ import annotations

import json
from typing import Any

from tests.fuzz import harness

with harness.instrumentation(["gitopsd", "yaml"]):
    import yaml

    from gitopsd.errors import GitopsdError
    from gitopsd.model import MANAGED_BY_LABEL, TARGET_LABEL, DesiredObject, SourceFile
    from gitopsd.render import render
    from tests.fuzz import seeds

TARGET = "fuzz"
_SCOPES = {("v1", "ConfigMap"): True, ("apps/v1", "Deployment"): True, ("v1", "Namespace"): False}
_Composer: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def discovery(api_version: str, kind: str) -> bool | None:
    return _SCOPES.get((api_version, kind))


def one_input(data: bytes) -> None:
    for path in ("fuzz.yaml", "fuzz.json"):
        try:
            objects = render(
                [SourceFile(path, data)],
                default_namespace="apps",
                target=TARGET,
                namespaced=discovery,
            )
        except GitopsdError as error:
            harness.check_message(error)
            continue
        check_objects(objects)
        check_no_duplicate_keys(path, data.decode("utf-8-sig"))


def check_objects(objects: Any) -> None:
    assert isinstance(objects, tuple), type(objects)
    keys = set()
    for obj in objects:
        assert isinstance(obj, DesiredObject), type(obj)
        key = obj.key
        for part in (key.group, key.kind, key.namespace, key.name):
            assert isinstance(part, str), key
        assert key.kind and key.name, key
        assert key not in keys, f"{key} rendered twice"
        keys.add(key)
        metadata = obj.manifest["metadata"]
        assert metadata["name"] == key.name, key
        assert metadata.get("namespace", "") == key.namespace, key
        assert metadata["labels"][TARGET_LABEL] == TARGET, key
        assert metadata["labels"][MANAGED_BY_LABEL] == "gitopsd", key
        check_plain(obj.manifest)


def check_plain(value: Any) -> None:
    """JSON data only (what the API server reads); iterative, so depth cannot break the check."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise harness.PropertyViolation(f"non-string key {key!r}")
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
        elif item is not None and not isinstance(item, str | int | float | bool):
            raise harness.PropertyViolation(f"{type(item).__name__} value {item!r:.80}")


def check_no_duplicate_keys(path: str, text: str) -> None:
    """A file render accepted must not write one key twice in a mapping."""
    if path.endswith(".json"):
        json.loads(text, object_pairs_hook=_refuse_duplicate_pairs)
        return
    seen: set[int] = set()
    stack = list(yaml.compose_all(text, Loader=_Composer))
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            _refuse_duplicate_pairs([(k.value, None) for k, _ in node.value if _plain_key_node(k)])
            for key, child in node.value:
                stack.extend((key, child))


def _plain_key_node(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and not node.tag.endswith(":merge")


def _refuse_duplicate_pairs(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    names: set[Any] = set()
    for name, _ in pairs:
        if name in names:
            raise harness.PropertyViolation(f"duplicate key {name!r:.80} accepted")
        names.add(name)
    return dict(pairs)


if __name__ == "__main__":
    harness.main("render", one_input, seeds.render_seeds)
