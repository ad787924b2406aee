"""Field-level drift between a declared object and its live counterpart.

Only fields Git declares are compared (see normalize.project). A plain `==` on the
normalized forms decides "in sync"; deepdiff runs only on pairs that differ.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from gitopsd.managedfields import owns
from gitopsd.model import (
    FIELD_MANAGER,
    DesiredObject,
    DriftReport,
    FieldChange,
    FieldOwner,
    LiveObject,
    Manifest,
)
from gitopsd.normalize import (
    KEYED_LISTS,
    SERVER_METADATA,
    canonical,
    is_decrypted,
    item_id,
    merge_key,
    project,
    redact_pair,
    secret_string_data_to_data,
)

# Shown for no deleted object: what the server writes, and owners other controllers set.
_NOT_SHOWN_METADATA = frozenset({*SERVER_METADATA, "ownerReferences"})
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class _Item(str):
    """A keyed-list item's label, `[name=web]`, told apart from an ordinary key."""

    __slots__ = ()


def compare(desired: DesiredObject, live: LiveObject | None) -> DriftReport | None:
    """How `live` differs from `desired` in the fields Git declares; None when in sync."""
    if live is None:
        return DriftReport(key=desired.key, missing=True)
    want = comparable(desired.manifest)
    have = secret_string_data_to_data(project(want, live.manifest))
    if want == have:  # the common case, and far cheaper than canonical forms
        return None
    want_keyed, have_keyed = _keyed(want, have)
    want_canon, have_canon = canonical(want_keyed), canonical(have_keyed)
    if want_canon == have_canon:
        return None
    # A value once decrypted stays hidden after Git stops encrypting it: the live object
    # still holds the old secret, and still carries the mark.
    sensitive = is_decrypted(live.manifest)
    shown_want, shown_have = redact_pair(want_keyed, have_keyed, sensitive=sensitive)
    changes = _changes(want_canon, have_canon, shown_want, shown_have)
    if not changes:
        return None
    owners = owners_of(live, [change.path for change in changes])
    return DriftReport(key=desired.key, missing=False, changes=changes, owners=owners)


def comparable(manifest: Manifest) -> Manifest:
    """A declared manifest as the server would hold it: no status, Secret stringData as data."""
    return secret_string_data_to_data({k: v for k, v in manifest.items() if k != "status"})


def _keyed(desired: Any, live: Any, field: str = "") -> tuple[Any, Any]:
    """Both sides with keyed lists turned into mappings by item label, so order never counts."""
    if isinstance(desired, dict) and isinstance(live, dict):
        pairs = {k: _keyed(v, live.get(k), k) for k, v in desired.items()}
        return (
            {k: pair[0] for k, pair in pairs.items()},
            {k: pair[1] for k, pair in pairs.items() if k in live},
        )
    if isinstance(desired, list) and isinstance(live, list):
        key = merge_key(field, desired) if field in KEYED_LISTS else None
        if key is None:
            return desired, live
        live_items = {item_id(v, key): v for v in live if isinstance(v, dict)}
        want, have = {}, {}
        for item in desired:
            ident = item_id(item, key)
            label = _Item(f"[{key}={ident}]")
            want[label], live_item = _keyed(item, live_items.get(ident))
            if ident in live_items:
                have[label] = live_item
        return want, have
    return desired, live


def _changes(want: Any, have: Any, shown_want: Any, shown_have: Any) -> tuple[FieldChange, ...]:
    """One FieldChange per differing path; values taken from the redacted, uncanonical forms."""
    # Imported here: deepdiff (and numpy, which it loads when installed) costs more start-up
    # time than a no-change `--once` spends on everything else, and only drifts need it.
    from deepdiff import DeepDiff

    tree = DeepDiff(want, have, view="tree", threshold_to_diff_deeper=0, zip_ordered_iterables=True)
    result = {}
    for levels in tree.values():
        for level in levels:
            segments = level.path(output_format="list")
            path = format_path(segments)
            result[path] = FieldChange(
                path=path, desired=_lookup(shown_want, segments), live=_lookup(shown_have, segments)
            )
    return tuple(result[path] for path in sorted(result))


def _lookup(value: Any, segments: Sequence[Any]) -> Any:
    for segment in segments:
        found = (isinstance(value, Mapping) and segment in value) or (
            isinstance(value, list) and isinstance(segment, int) and segment < len(value)
        )
        if not found:
            return None
        value = value[segment]
    return value


def format_path(segments: Sequence[Any]) -> str:
    """`spec.template.spec.containers[name=web].image`; odd keys quoted: `labels["a.b/c"]`."""
    parts = []
    for segment in segments:
        if isinstance(segment, _Item):
            parts.append(str(segment))
        elif isinstance(segment, int):
            parts.append(f"[{segment}]")
        elif _PLAIN_NAME.match(segment):
            parts.append(f".{segment}" if parts else segment)
        else:
            parts.append(f"[{json.dumps(segment)}]")
    return "".join(parts)


_TOKEN = re.compile(
    r'\.?(?P<field>[A-Za-z0-9_-]+)|\[(?P<quoted>"(?:[^"\\]|\\.)*")\]'
    r"|\[(?P<index>\d+)\]|\[(?P<key>[^=\]]+)=(?P<value>[^\]]*)\]"
)


def parse_path(path: str) -> list[tuple[str, ...]]:
    """The segments of a path from format_path: ("f", name), ("i", index) or ("k", key, value)."""
    segments: list[tuple[str, ...]] = []
    position = 0
    while position < len(path):
        match = _TOKEN.match(path, position)
        if match is None:
            raise ValueError(f"not a field path: {path!r}")
        if match["field"] is not None:
            segments.append(("f", match["field"]))
        elif match["quoted"] is not None:
            segments.append(("f", json.loads(match["quoted"])))
        elif match["index"] is not None:
            segments.append(("i", match["index"]))
        else:
            segments.append(("k", match["key"], match["value"]))
        position = match.end()
    return segments


def owners_of(live: LiveObject, paths: Sequence[str]) -> tuple[FieldOwner, ...]:
    """Managers other than gitopsd that own any of `paths`, per managedFields, newest first."""
    entries = live.manifest.get("metadata", {}).get("managedFields") or []
    parsed = [parse_path(path) for path in paths]
    owners: dict[tuple[str, str], FieldOwner] = {}
    for entry in entries:
        manager = entry.get("manager", "")
        fields = entry.get("fieldsV1")
        if manager == FIELD_MANAGER or not isinstance(fields, Mapping):
            continue
        if any(owns(fields, segments) for segments in parsed):
            owner = FieldOwner(manager, entry.get("operation", ""), entry.get("time") or "")
            previous = owners.get((owner.manager, owner.operation))
            if previous is None or owner.time > previous.time:
                owners[(owner.manager, owner.operation)] = owner
    return tuple(sorted(owners.values(), key=lambda o: (o.time, o.manager), reverse=True))


def object_diff_text(desired: Manifest | None, live: Manifest | None, name: str) -> str:
    """A unified diff of the YAML, live then desired, Secret values redacted (like kubectl diff)."""
    want = comparable(desired) if desired is not None else None
    if live is None:
        have = None
    elif want is not None:
        have = secret_string_data_to_data(project(want, live))
        want = _spelled_as(want, have)
    else:
        have = without_server_fields(live)
    sensitive = live is not None and is_decrypted(live)
    shown_want, shown_have = redact_pair(want, have, sensitive=sensitive)
    before, after = _yaml(shown_have), _yaml(shown_want)
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"live/{name}",
        tofile=f"desired/{name}",
    )
    return "".join(lines)


def _spelled_as(want: Any, have: Any, parent: str = "", field: str = "") -> Any:
    """`want` with each value equivalent to the live one spelled as live spells it, so the
    text shows only real differences (`500m` and `0.5` are no change)."""
    if isinstance(want, Mapping):
        live_map = have if isinstance(have, Mapping) else {}
        return {
            k: _spelled_as(v, live_map.get(k), field, k) for k, v in want.items() if v is not None
        }
    if isinstance(want, list) and isinstance(have, list):
        key = merge_key(field, want) if field in KEYED_LISTS else None
        if key is None:
            return [_spelled_as(w, h, "", "") for w, h in zip(want, have, strict=False)] + want[
                len(have) :
            ]
        by_id = {item_id(h, key): h for h in have if isinstance(h, Mapping)}
        return [_spelled_as(w, by_id.get(item_id(w, key)), "", "") for w in want]
    same = canonical({parent: {field: want}}) == canonical({parent: {field: have}})
    return have if have is not None and same else want


def without_server_fields(manifest: Manifest) -> Manifest:
    """A live manifest without what the server writes: status and bookkeeping metadata."""
    result = {k: v for k, v in manifest.items() if k != "status"}
    metadata = manifest.get("metadata")
    if isinstance(metadata, Mapping):
        result["metadata"] = {k: v for k, v in metadata.items() if k not in _NOT_SHOWN_METADATA}
    return result


def _yaml(manifest: Manifest | None) -> str:
    if manifest is None:
        return ""
    return yaml.safe_dump(manifest, sort_keys=True, default_flow_style=False)
