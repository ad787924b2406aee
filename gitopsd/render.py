"""Turn the files of a target into validated DesiredObjects.

Pure: the source stage has already read the files. Any invalid document refuses
the whole revision with one RenderError naming the file, document and field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from gitopsd.errors import RenderError
from gitopsd.manifestread import read_documents
from gitopsd.model import (
    CLUSTER_SCOPED_KINDS,
    INVENTORY_LABEL,
    INVENTORY_PREFIX,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    MANIFEST_SUFFIXES,
    TARGET_LABEL,
    DesiredObject,
    Manifest,
    ResourceKey,
    SourceFile,
    group_of,
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
    return render_documents(
        list(documents(files)),
        default_namespace=default_namespace,
        target=target,
        namespaced=namespaced,
    )


def render_documents(
    documents: Sequence[tuple[str, str, Manifest]],
    *,
    default_namespace: str,
    target: str,
    namespaced: Namespaced,
) -> tuple[DesiredObject, ...]:
    """As `render`, for (where, origin, manifest) triples: a renderer tool's output."""
    crd_scopes = _crd_scopes(documents)
    seen: dict[ResourceKey, str] = {}
    result = []
    for where, origin, manifest in documents:
        _validate(manifest, where)
        _refuse_reserved(manifest, where, target)
        scope = _scope(manifest, namespaced, crd_scopes)
        obj = _finish(manifest, origin, scope, default_namespace, target)
        if obj.key in seen:
            raise RenderError(f"{where}: {obj.key} is already declared in {seen[obj.key]}")
        seen[obj.key] = where
        result.append(obj)
    return tuple(result)


def documents(
    files: Sequence[SourceFile], *, mark_unquoted: bool = False
) -> Iterator[tuple[str, str, Manifest]]:
    """(where, origin, manifest) for every non-empty document, `kind: List` expanded;
    `mark_unquoted` as for read_documents."""
    for file in sorted(files, key=lambda f: f.path):
        # Same rule as the tree reader: `app.YAML` is a manifest, never silently skipped.
        if file.path.lower().endswith(MANIFEST_SUFFIXES):
            yield from stream_documents(file, mark_unquoted=mark_unquoted)


def stream_documents(
    file: SourceFile, *, mark_unquoted: bool = False
) -> Iterator[tuple[str, str, Manifest]]:
    """(where, origin, manifest) for the documents of one file or one tool's output."""
    for index, data in read_documents(file, mark_unquoted=mark_unquoted):
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


def _refuse_reserved(manifest: Manifest, where: str, target: str) -> None:
    """Refuse what would let one target rewrite another's inventory or pass as its object.

    Inventory names are refused in every namespace: each target keeps its inventory in
    its own `inventory_namespace`, which another target cannot know.
    """
    metadata = manifest["metadata"]
    labels = metadata.get("labels") or {}
    if INVENTORY_LABEL in labels:
        raise RenderError(
            f"{where}: the label {INVENTORY_LABEL} marks gitopsd's inventories; "
            "a target may not declare one (remove the label)"
        )
    if manifest["kind"] == "ConfigMap" and metadata["name"].startswith(INVENTORY_PREFIX):
        raise RenderError(
            f"{where}: ConfigMap names starting {INVENTORY_PREFIX!r} are reserved for "
            "gitopsd's inventories (rename it)"
        )
    owner = labels.get(TARGET_LABEL)
    if owner is not None and owner != target:
        raise RenderError(
            f"{where}: the label {TARGET_LABEL}: {owner!r} names another target; target "
            f"{target!r} may declare only its own objects (remove the label)"
        )


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
    if (group, kind) in CLUSTER_SCOPED_KINDS:
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
