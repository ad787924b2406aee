"""Turn the files of a target into validated DesiredObjects.

Pure: the source stage has already read the files. Any invalid document refuses
the whole revision with one RenderError naming the file, document and field.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import yaml

from gitopsd.errors import RenderError
from gitopsd.model import (
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    TARGET_LABEL,
    DesiredObject,
    Manifest,
    ResourceKey,
    SourceFile,
    group_of,
)

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SUFFIXES = (".yaml", ".yml", ".json")
# A document's nodes counted with every alias expanded: far above any real manifest, far
# below what an alias bomb ("billion laughs") needs to exhaust memory.
MAX_NODES = 500_000
MAX_ALIASES = 10_000

# Cluster-scoped kinds that discovery may not have answered for yet (a fresh cluster).
_CLUSTER_SCOPED = frozenset(
    {
        ("", "Namespace"),
        ("", "Node"),
        ("", "PersistentVolume"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("storage.k8s.io", "StorageClass"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("networking.k8s.io", "IngressClass"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("apiregistration.k8s.io", "APIService"),
    }
)

Namespaced = Callable[[str, str], bool | None]


def render(
    files: Sequence[SourceFile],
    *,
    default_namespace: str,
    target: str,
    namespaced: Namespaced,
) -> tuple[DesiredObject, ...]:
    """Every object the files declare, labelled for `target`, namespaces resolved, no duplicates."""
    documents = list(_documents(files))
    crd_scopes = _crd_scopes(documents)
    seen: dict[ResourceKey, str] = {}
    result = []
    for where, origin, manifest in documents:
        _validate(manifest, where)
        scope = _scope(manifest, namespaced, crd_scopes)
        obj = _finish(manifest, origin, scope, default_namespace, target)
        if obj.key in seen:
            raise RenderError(f"{where}: {obj.key} is already declared in {seen[obj.key]}")
        seen[obj.key] = where
        result.append(obj)
    return tuple(result)


def _documents(files: Sequence[SourceFile]) -> Iterator[tuple[str, str, Manifest]]:
    """(where, origin, manifest) for every non-empty document, `kind: List` expanded."""
    for file in sorted(files, key=lambda f: f.path):
        # Same rule as the tree reader: `app.YAML` is a manifest, never silently skipped.
        if not file.path.lower().endswith(SUFFIXES):
            continue
        for index, data in _load(file):
            where = f"{file.path} document {index}"
            if not isinstance(data, dict):
                raise RenderError(f"{where}: is a {_type_name(data)}, not a mapping")
            if data.get("kind") == "List" and isinstance(data.get("items"), list):
                for position, item in enumerate(data["items"]):
                    item_where = f"{where} items[{position}]"
                    if not isinstance(item, dict):
                        raise RenderError(f"{item_where}: is a {_type_name(item)}, not a mapping")
                    yield item_where, f"{file.path}#{index}.items[{position}]", item
            else:
                yield where, f"{file.path}#{index}", data


def _load(file: SourceFile) -> Iterator[tuple[int, Any]]:
    """(1-based document index, data) for each non-empty document of one file."""
    try:
        text = file.content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RenderError(f"{file.path}: is not valid UTF-8 (byte {error.start})") from None
    if file.path.lower().endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            # error.msg and the position only: the line itself may hold a secret.
            raise RenderError(
                f"{file.path}: invalid JSON at line {error.lineno}, column {error.colno}: "
                f"{error.msg}"
            ) from None
        if data is not None:
            yield 1, data
        return
    yield from _load_yaml(file.path, text)


def _load_yaml(path: str, text: str) -> Iterator[tuple[int, Any]]:
    # Only aliases (`*name`) can make a document bigger than its text, which the source
    # already bounds; without a `*` the node count is not worth walking.
    has_aliases = "*" in text
    loader = _Loader(text)
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            index += 1
            if node is None:
                continue
            if has_aliases:
                _check_size(node, f"{path} document {index}")
            data = _plain(loader.construct_document(node), f"{path} document {index}")
            if data is not None:
                yield index, data
    except yaml.MarkedYAMLError as error:
        # problem and position only: PyYAML's message quotes the line, which may be a secret.
        mark = error.problem_mark
        position = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RenderError(f"{path}: invalid YAML{position}: {error.problem}") from None
    except yaml.YAMLError as error:
        raise RenderError(f"{path}: invalid YAML: {type(error).__name__}") from None
    finally:
        loader.dispose()


def _check_size(root: yaml.Node, where: str) -> None:
    """Refuse documents that would be huge once aliases are expanded, before expanding them."""
    seen: set[int] = set()
    aliases = 0
    count = 0
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise RenderError(f"{where}: more than {MAX_NODES} nodes with aliases expanded")
        if id(node) in seen:
            aliases += 1
            if aliases > MAX_ALIASES:
                raise RenderError(f"{where}: more than {MAX_ALIASES} aliases")
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))


def _plain(value: Any, where: str) -> Any:
    """JSON-compatible data, as the API server would read it (timestamps as strings)."""
    if isinstance(value, dict):
        return {_plain_key(k): _plain(v, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, where) for v in value]
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        raise RenderError(f"{where}: binary values (!!binary) are not supported")
    return value


def _plain_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return key if isinstance(key, str) else str(key)


def _type_name(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _validate(manifest: Manifest, where: str) -> None:
    for field in ("apiVersion", "kind"):
        _require_string(manifest.get(field), field, where)
    metadata = manifest.get("metadata")
    if metadata is None:
        raise RenderError(f"{where}: metadata is missing")
    if not isinstance(metadata, dict):
        raise RenderError(f"{where}: metadata must be a mapping")
    _require_string(metadata.get("name"), "metadata.name", where)
    namespace = metadata.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise RenderError(f"{where}: metadata.namespace must be a string")
    for field in ("labels", "annotations"):
        value = metadata.get(field)
        if value is not None and not isinstance(value, dict):
            raise RenderError(f"{where}: metadata.{field} must be a mapping")


def _require_string(value: Any, field: str, where: str) -> None:
    if value is None or value == "":
        raise RenderError(f"{where}: {field} is missing")
    if not isinstance(value, str):
        raise RenderError(f"{where}: {field} must be a string")


def _crd_scopes(documents: Sequence[tuple[str, str, Manifest]]) -> dict[tuple[str, str], bool]:
    """(group, kind) -> namespaced, for the CustomResourceDefinitions in this render."""
    scopes = {}
    for _, _, manifest in documents:
        if manifest.get("kind") != "CustomResourceDefinition":
            continue
        spec = manifest.get("spec")
        if not isinstance(spec, dict) or not isinstance(spec.get("names"), dict):
            continue
        group, kind = spec.get("group"), spec["names"].get("kind")
        if isinstance(group, str) and isinstance(kind, str):
            scopes[(group, kind)] = spec.get("scope") != "Cluster"
    return scopes


def _scope(
    manifest: Manifest, namespaced: Namespaced, crd_scopes: Mapping[tuple[str, str], bool]
) -> bool:
    """Whether the object is namespaced: discovery, then CRDs in the render, then a guess."""
    api_version, kind = manifest["apiVersion"], manifest["kind"]
    answer = namespaced(api_version, kind)
    if answer is not None:
        return answer
    group = group_of(api_version)
    if (group, kind) in crd_scopes:
        return crd_scopes[(group, kind)]
    if (group, kind) in _CLUSTER_SCOPED:
        return False
    # Unknown kind: the author's namespace is the best evidence there is.
    return bool(manifest["metadata"].get("namespace"))


def _finish(
    manifest: Manifest, origin: str, is_namespaced: bool, default_namespace: str, target: str
) -> DesiredObject:
    metadata = dict(manifest["metadata"])
    if is_namespaced:
        metadata["namespace"] = metadata.get("namespace") or default_namespace
    else:
        metadata.pop("namespace", None)
    metadata["labels"] = {
        **(metadata.get("labels") or {}),
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
        TARGET_LABEL: target,
    }
    result = {**manifest, "metadata": metadata}
    key = ResourceKey(
        group=group_of(manifest["apiVersion"]),
        kind=manifest["kind"],
        namespace=metadata.get("namespace", ""),
        name=metadata["name"],
    )
    return DesiredObject(key=key, manifest=result, origin=origin)
