"""Ignore rules, in one place: which objects they match, the fields they take out of what
gitopsd declares, and how such a field is handed over without resetting it.

When an ignore rule starts to cover a field gitopsd applied before (an HPA takes
over `spec.replicas`), simply no longer declaring it makes server-side apply
remove the field, because gitopsd is its only owner: the Deployment would drop
to one replica. So while gitopsd is the field's only owner it keeps declaring
the live value, which changes nothing; once another manager has written the
field, gitopsd stops declaring it and the value stays.

A whole object is handed back the same way: an adopted object Git no longer
declares keeps its fields but loses gitopsd's labels and field ownership
(`released`), so the manager it came from carries on. Pure.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from gitopsd.managedfields import Segment, owns
from gitopsd.model import (
    FIELD_MANAGER,
    MANAGED_BY_LABEL,
    TARGET_LABEL,
    DesiredObject,
    FieldOwner,
    IgnoreRule,
    LiveObject,
    Manifest,
    ResourceKey,
)
from gitopsd.normalize import item_id, merge_key

_MISSING = object()


def as_applied(
    desired: DesiredObject, live: LiveObject | None, rules: Sequence[IgnoreRule]
) -> DesiredObject:
    """`desired` as gitopsd applies it: without the fields matching rules ignore, except
    those gitopsd alone still owns, which keep their live value. `desired` if none match."""
    matching = [rule for rule in rules if rule_matches(rule, desired.key)]
    if not matching:
        return desired
    stripped = replace(desired, manifest=strip_ignored(desired.manifest, desired.key, matching))
    return keep_sole_owned(stripped, live, matching)


def rule_matches(rule: IgnoreRule, key: ResourceKey) -> bool:
    """Whether an ignore rule applies to the object `key`."""
    return (
        rule.kind == key.kind
        and rule.group in (None, key.group)
        and rule.name in (None, key.name)
        and rule.namespace in (None, key.namespace)
    )


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """The reference tokens of an RFC 6901 JSON pointer ('' is the whole document)."""
    if not pointer:
        return ()
    if not pointer.startswith("/"):
        raise ValueError(f"JSON pointer {pointer!r} does not start with '/'")
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))


def strip_ignored(manifest: Manifest, key: ResourceKey, rules: Sequence[IgnoreRule]) -> Manifest:
    """The manifest without the fields that matching rules' JSON pointers name."""
    result: Any = manifest
    for rule in rules:
        if rule_matches(rule, key):
            for pointer in rule.pointers:
                tokens = parse_pointer(pointer)
                if tokens:
                    result = _without(result, tokens)
    return dict(result)


def _without(value: Any, tokens: tuple[str, ...]) -> Any:
    """`value` minus the field at `tokens`, copying only along the path."""
    head, rest = tokens[0], tokens[1:]
    if isinstance(value, Mapping):
        if head not in value:
            return value
        copy = dict(value)
        if rest:
            copy[head] = _without(value[head], rest)
        else:
            del copy[head]
        return copy
    if isinstance(value, list) and head.isdigit() and int(head) < len(value):
        index = int(head)
        items = list(value)
        if rest:
            items[index] = _without(value[index], rest)
        else:
            del items[index]
        return items
    return value


def keep_sole_owned(
    desired: DesiredObject, live: LiveObject | None, rules: Sequence[IgnoreRule]
) -> DesiredObject:
    """`desired` plus the live value of each ignored field that only gitopsd owns."""
    if live is None:
        return desired
    manifest: Manifest | None = None
    for rule in rules:
        if not rule_matches(rule, desired.key):
            continue
        for pointer in rule.pointers:
            steps = _steps(desired.manifest, parse_pointer(pointer))
            if not steps or steps[-1][0] != "f":
                continue  # a whole list item: no single field to keep
            value = _lookup(live.manifest, steps)
            if value is _MISSING or not only_gitopsd_owns(live, steps):
                continue
            manifest = copy.deepcopy(desired.manifest) if manifest is None else manifest
            _assign(manifest, steps, copy.deepcopy(value))
    return desired if manifest is None else replace(desired, manifest=manifest)


def _steps(manifest: Manifest, tokens: Sequence[str]) -> list[Segment] | None:
    """The pointer as steps the live object and managedFields understand: list items by
    their merge key (containers by name) where the list has one, else by index; None when
    the declared object has no such path (nothing to keep)."""
    steps: list[Segment] = []
    node: Any = manifest
    field = ""
    for position, token in enumerate(tokens):
        last = position == len(tokens) - 1
        if isinstance(node, Mapping):
            steps.append(("f", token))
            field, node = token, node.get(token, _MISSING)
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            item = node[int(token)]
            key = merge_key(field, node)
            identity = item_id(item, key) if key is not None else None
            if key is None or identity is None:
                steps.append(("i", token))
            else:
                steps.append(("k", key, identity))
            node = item
        else:
            return None
        if node is _MISSING and not last:
            return None
    return steps or None


def only_gitopsd_owns(live: LiveObject, steps: Sequence[Segment]) -> bool:
    """Whether gitopsd's apply owns the field at `steps` and no other manager does."""
    entries = (live.manifest.get("metadata") or {}).get("managedFields") or []
    ours = others = False
    for entry in entries:
        if not owns(entry.get("fieldsV1"), steps):
            continue
        if entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply":
            ours = True
        else:
            others = True
    return ours and not others


def _child(node: Any, step: Segment) -> Any:
    if step[0] == "f":
        return node.get(step[1], _MISSING) if isinstance(node, Mapping) else _MISSING
    if not isinstance(node, list):
        return _MISSING
    if step[0] == "i":
        index = int(step[1])
        return node[index] if index < len(node) else _MISSING
    for item in node:
        if isinstance(item, Mapping) and item_id(item, step[1]) == step[2]:
            return item
    return _MISSING


def _lookup(manifest: Any, steps: Sequence[Segment]) -> Any:
    node = manifest
    for step in steps:
        node = _child(node, step)
        if node is _MISSING:
            return _MISSING
    return node


def _assign(manifest: Manifest, steps: Sequence[Segment], value: Any) -> None:
    """Set the value at `steps`; every step but the last exists in the declared manifest."""
    node: Any = manifest
    for step in steps[:-1]:
        node = _child(node, step)
    node[steps[-1][1]] = value


def previous_managers(live: LiveObject) -> tuple[FieldOwner, ...]:
    """Every manager of `live` per managedFields, newest first: who had it before an adoption."""
    entries = (live.manifest.get("metadata") or {}).get("managedFields") or []
    owners = {
        FieldOwner(entry.get("manager", ""), entry.get("operation", ""), entry.get("time") or "")
        for entry in entries
        if isinstance(entry, Mapping)
    }
    return tuple(sorted(owners, key=lambda o: (o.time, o.manager), reverse=True))


def released(manifest: Manifest) -> Manifest:
    """A live object as gitopsd lets go of it: without gitopsd's labels and managedFields
    entries. Fields only gitopsd owned keep their values, owned by no one."""
    metadata = dict(manifest.get("metadata") or {})
    labels = {
        k: v
        for k, v in (metadata.get("labels") or {}).items()
        if k not in (MANAGED_BY_LABEL, TARGET_LABEL)
    }
    entries = [
        entry
        for entry in metadata.get("managedFields") or []
        if isinstance(entry, Mapping) and entry.get("manager") != FIELD_MANAGER
    ]
    # An empty list would leave managedFields as they are; one empty entry clears them.
    metadata["managedFields"] = entries or [{}]
    metadata["labels"] = labels
    return {**manifest, "metadata": metadata}
