"""Who owns a field, read from an object's `managedFields` (`fieldsV1` sets).

Drift attribution (diff.owners_of) and the ignore-rule hand-over (handoff) ask
the same question, so they share this one reading of the format. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

# One step of a path: ("f", field) | ("k", merge key, item id) | ("i", list index).
Segment = tuple[str, ...]


def owns(fields_v1: Any, path: Sequence[Segment]) -> bool:
    """Whether a fieldsV1 set covers `path`: the field itself, a field under it, or an
    atomic ancestor (an empty set owns the whole value, as for `selector` or `args`)."""
    node = fields_v1
    for segment in path:
        if not isinstance(node, Mapping):
            return False
        if not node:
            return True
        if segment[0] == "f":
            node = node.get(f"f:{segment[1]}")
        elif segment[0] == "k":
            node = keyed_entry(node, segment[1], segment[2])
        elif f"i:{segment[1]}" in node:  # only schemaless lists name items by index
            node = node[f"i:{segment[1]}"]
        else:
            # A granular list (a set, or keyed by fields gitopsd does not key it by): the
            # item cannot be told apart, and a manager writing to the list may own it.
            return True
        if node is None:
            return False
    return True


def keyed_entry(node: Mapping[str, Any], key: str, value: str) -> Any:
    """The entry of the keyed list item whose `key` is `value`, or None."""
    for name, child in node.items():
        if name.startswith("k:"):
            try:
                fields = json.loads(name[2:])
            except ValueError:
                continue
            if isinstance(fields, Mapping) and str(fields.get(key)) == value:
                return child
    return None
