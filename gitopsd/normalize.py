"""Bring desired and live manifests to a comparable form, and hide Secret values.

Drift means "a field Git declares has another value live": `project` cuts the
live object down to the declared fields, `canonical` makes equivalent spellings
equal, and `redact_secret` keeps Secret values out of everything shown.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

from gitopsd.model import DECRYPTED_ANNOTATION, MANAGED_BY_LABEL, Manifest
from gitopsd.quantity import parse_quantity
from gitopsd.standin import stand_in

LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
# Metadata the API server writes: never declared, never compared.
SERVER_METADATA = (
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
)

# Lists the API server merges item by item (patchMergeKey), with their merge keys in order
# of preference. Every other list is atomic: an extra live item there is drift (an RBAC
# subject added by hand must show), so they are compared index by index, extras included.
KEYED_LISTS: Mapping[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "imagePullSecrets": ("name",),
    "resourceClaims": ("name",),
    "ports": ("containerPort", "port", "name"),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "hostAliases": ("ip",),
}

# Fields whose value is an int-or-string port: "80" and 80 are the same port.
_PORT_FIELDS = frozenset({"port", "targetPort", "containerPort", "nodePort", "hostPort"})
# Mappings whose values are all quantities (resources.limits, ResourceQuota spec.hard, ...).
_QUANTITY_MAPS = frozenset({"limits", "requests", "hard", "capacity"})
_QUANTITY_FIELDS = frozenset({"sizeLimit"})


# --- Secrets ----------------------------------------------------------------------------


def redacted(raw: bytes) -> str:
    """The stand-in for a secret value: a short keyed hash (gitopsd.standin), so a change
    shows but the value never, nor a way to test a guess."""
    return stand_in(raw)


def _decoded(value: Any) -> bytes:
    if isinstance(value, str):
        return _b64decode(value) or value.encode()
    return str(value).encode()


def _b64decode(value: str) -> bytes | None:
    """The bytes of base64 text (line breaks allowed, as in YAML block scalars), or None."""
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def redact_secret(manifest: Manifest) -> Manifest:
    """For a Secret, a copy with every data/stringData value redacted; other kinds unchanged."""
    if manifest.get("kind") != "Secret":
        return manifest
    result = dict(manifest)
    if isinstance(manifest.get("data"), Mapping):
        result["data"] = {k: redacted(_decoded(v)) for k, v in manifest["data"].items()}
    if isinstance(manifest.get("stringData"), Mapping):
        result["stringData"] = {
            k: redacted(str(v).encode()) for k, v in manifest["stringData"].items()
        }
    metadata = manifest.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    # kubectl apply leaves the whole Secret, values in clear, in this annotation.
    if isinstance(annotations, Mapping) and LAST_APPLIED_ANNOTATION in annotations:
        assert isinstance(metadata, Mapping)
        result["metadata"] = {
            **metadata,
            "annotations": {**annotations, LAST_APPLIED_ANNOTATION: "<redacted>"},
        }
    return result


def is_decrypted(manifest: Manifest | None) -> bool:
    """Whether the object was decrypted from SOPS (marked so by gitopsd.sops)."""
    metadata = manifest.get("metadata") if isinstance(manifest, Mapping) else None
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    return isinstance(annotations, Mapping) and DECRYPTED_ANNOTATION in annotations


def redact_pair(
    desired: Manifest | None, live: Manifest | None, *, sensitive: bool = False
) -> tuple[Manifest | None, Manifest | None]:
    """Both sides redacted; either side decrypted from SOPS makes both sensitive, whatever
    the kind (the live side may have lost the mark to a hand edit). `sensitive`: the whole
    live object carries the mark, which a projection onto what Git declares now drops."""
    if sensitive or is_decrypted(desired) or is_decrypted(live):
        return _redact_values(desired), _redact_values(live)
    return (
        None if desired is None else redact_secret(desired),
        None if live is None else redact_secret(live),
    )


def _redact_values(manifest: Manifest | None) -> Manifest | None:
    """Every value outside apiVersion, kind and metadata as its stand-in; Secrets as usual."""
    if manifest is None:
        return None
    result = redact_secret(manifest)
    if result.get("kind") == "Secret":
        return result
    return {k: v if k in _SHOWN_FIELDS else _stand_ins(v) for k, v in result.items()}


_SHOWN_FIELDS = frozenset({"apiVersion", "kind", "metadata"})


def _stand_ins(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _stand_ins(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stand_ins(v) for v in value]
    if value is None:
        return None
    return redacted(value.encode() if isinstance(value, str) else str(value).encode())


def redact_message(text: str, manifest: Manifest) -> str:
    """An API server's message about `manifest`, the values of a Secret or of an object
    decrypted from SOPS shown as stand-ins: a field error quotes the value it refuses."""
    if manifest.get("kind") != "Secret" and not is_decrypted(manifest):
        return text
    values = {v for k, item in manifest.items() if k not in _SHOWN_FIELDS for v in _texts(item)}
    if is_decrypted(manifest):
        values |= _metadata_values(manifest)
    if isinstance(manifest.get("data"), Mapping):  # a Secret's values, as the server decodes them
        values |= {_decoded(v).decode(errors="replace") for v in manifest["data"].values()}
    for value in sorted(values, key=len, reverse=True):
        quoted = json.dumps(value)  # as Go's %q quotes plain text
        if quoted in text:
            text = text.replace(quoted, f'"{redacted(value.encode())}"')
        elif len(value) >= _BARE_MINIMUM:  # shorter ones would garble the message
            text = text.replace(value, redacted(value.encode()))
    return text


_BARE_MINIMUM = 6


def _metadata_values(manifest: Manifest) -> set[str]:
    """Label and annotation values a secret substitution may have filled in: a server error
    about a label quotes it. gitopsd's own stay (their values are names, not secrets)."""
    metadata = manifest.get("metadata")
    if not isinstance(metadata, Mapping):
        return set()
    found: set[str] = set()
    for section in ("labels", "annotations"):
        entries = metadata.get(section)
        if isinstance(entries, Mapping):
            found |= {
                v
                for k, v in entries.items()
                if isinstance(v, str)
                and v
                and not str(k).startswith("gitopsd.io/")
                and k != MANAGED_BY_LABEL
            }
    return found


def _texts(value: Any) -> set[str]:
    if isinstance(value, Mapping):
        return {t for item in value.values() for t in _texts(item)}
    if isinstance(value, list):
        return {t for item in value for t in _texts(item)}
    return {value} if isinstance(value, str) and value else set()


def secret_string_data_to_data(manifest: Manifest) -> Manifest:
    """A Secret as the API server stores it: stringData merged into base64 data, data re-encoded."""
    if manifest.get("kind") != "Secret":
        return manifest
    data = manifest.get("data")
    string_data = manifest.get("stringData")
    if not isinstance(data, Mapping) and not isinstance(string_data, Mapping):
        return manifest
    merged = {k: _reencoded(v) for k, v in data.items()} if isinstance(data, Mapping) else {}
    if isinstance(string_data, Mapping):
        for name, value in string_data.items():
            merged[name] = base64.b64encode(str(value).encode()).decode()
    result = {k: v for k, v in manifest.items() if k != "stringData"}
    result["data"] = merged
    return result


def _reencoded(value: Any) -> Any:
    # Base64 spelled with line breaks or without padding is the same bytes.
    raw = _b64decode(value) if isinstance(value, str) else None
    return value if raw is None else base64.b64encode(raw).decode()


# --- projection -------------------------------------------------------------------------


def merge_key(field: str, items: Sequence[Any]) -> str | None:
    """The key that identifies the items of the keyed list `field`, or None (compare by index)."""
    if not items or not all(isinstance(item, Mapping) for item in items):
        return None
    for key in KEYED_LISTS.get(field, ()):
        ids = [item_id(item, key) for item in items]
        if None not in ids and len(set(ids)) == len(ids):
            return key
    return None


def item_id(item: Mapping[str, Any], key: str) -> str | None:
    """How an item of a keyed list is named: str() so that port "80" and 80 match."""
    value = item.get(key)
    return None if value is None else str(value)


def project(desired: Manifest, live: Manifest) -> Manifest:
    """The part of `live` at exactly the paths `desired` declares."""
    return dict(_project(desired, live, ""))


def _project(desired: Any, live: Any, field: str) -> Any:
    if isinstance(desired, dict) and isinstance(live, dict):
        # A declared null (`creationTimestamp: null` from kubectl) states nothing.
        return {
            k: _project(v, live[k], k) for k, v in desired.items() if k in live and v is not None
        }
    if isinstance(desired, list) and isinstance(live, list):
        key = merge_key(field, desired)
        if key is None:
            # Atomic list: the server replaces it whole, so live items beyond Git's count.
            pairs = [_project(d, v, "") for d, v in zip(desired, live, strict=False)]
            return pairs + live[len(desired) :]
        by_id = {item_id(v, key): v for v in live if isinstance(v, dict)}
        return [
            _project(d, by_id[item_id(d, key)], "") for d in desired if item_id(d, key) in by_id
        ]
    return live


# --- canonical form ---------------------------------------------------------------------


def canonical(value: Any) -> Any:
    """`value` with equivalent spellings made equal: quantities, ports, integral floats, empties."""
    return _canonical(value, "")


def _canonical(value: Any, field: str) -> Any:
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if field in _QUANTITY_MAPS or key in _QUANTITY_FIELDS:
                item = _quantity(item)
            else:
                item = _canonical(item, key)
            # The server drops null and empty fields, so declaring them is no difference.
            if item is None or item == {} or item == []:
                continue
            result[key] = item
        return result
    if isinstance(value, list):
        return [_canonical(item, "") for item in value]
    if field in _PORT_FIELDS and isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value) if str(int(value)) == value else value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _quantity(value: Any) -> Any:
    parsed = parse_quantity(value)
    return value if parsed is None else parsed
