"""Hand a field over to another controller without resetting it.

When an ignore rule starts to cover a field gitopsd applied before (an HPA takes
over `spec.replicas`), simply no longer declaring it makes server-side apply
remove the field, because gitopsd is its only owner: the Deployment would drop
to one replica. So while gitopsd is the field's only owner it keeps declaring
the live value, which changes nothing; once another manager has written the
field, gitopsd stops declaring it and the value stays. Pure.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from gitopsd.config import IgnoreRule
from gitopsd.model import FIELD_MANAGER, DesiredObject, LiveObject, Manifest
from gitopsd.normalize import parse_pointer, rule_matches

_MISSING = object()


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
            tokens = parse_pointer(pointer)
            value = _lookup(live.manifest, tokens)
            if value is _MISSING or not tokens or not only_gitopsd_owns(live, tokens):
                continue
            manifest = copy.deepcopy(desired.manifest) if manifest is None else manifest
            _assign(manifest, tokens, copy.deepcopy(value))
    return desired if manifest is None else replace(desired, manifest=manifest)


def only_gitopsd_owns(live: LiveObject, tokens: Sequence[str]) -> bool:
    """Whether gitopsd's apply owns the field at `tokens` and no other manager does."""
    entries = (live.manifest.get("metadata") or {}).get("managedFields") or []
    ours = others = False
    for entry in entries:
        if not _owns(entry.get("fieldsV1"), tokens):
            continue
        if entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply":
            ours = True
        else:
            others = True
    return ours and not others


def _owns(fields: Any, tokens: Sequence[str]) -> bool:
    node = fields
    for token in tokens:
        if not isinstance(node, Mapping):
            return False
        node = node.get(f"f:{token}")
    return node is not None


def _lookup(manifest: Any, tokens: Sequence[str]) -> Any:
    node = manifest
    for token in tokens:
        if not isinstance(node, Mapping) or token not in node:
            return _MISSING
        node = node[token]
    return node


def _assign(manifest: Manifest, tokens: Sequence[str], value: Any) -> None:
    node = manifest
    for token in tokens[:-1]:
        child = node.get(token)
        if not isinstance(child, dict):
            child = node[token] = {}
        node = child
    node[tokens[-1]] = value
