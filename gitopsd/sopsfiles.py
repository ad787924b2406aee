"""What SOPS files look like and what decrypting them revealed: pure, no process run.

Finds the files that carry SOPS metadata, names their recipients, collects the values
that were encrypted, and marks the objects holding them (model.DECRYPTED_ANNOTATION)
so that every diff, event and journal entry shows their values only as stand-ins.
gitopsd.sops runs the `sops` command around these.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from gitopsd.errors import RenderError
from gitopsd.manifestread import read_documents
from gitopsd.model import DECRYPTED_ANNOTATION, DesiredObject, SourceFile

# Every value sops encrypts, and the MAC it always stores, is written so.
MARK = b"ENC[AES256_GCM,"
# ... and so once a generator base64-encodes it (a kustomize secretGenerator, Helm b64enc).
MARK_B64 = base64.b64encode(MARK)
_TOKEN = re.compile(rb"ENC\[AES256_GCM,[^\]]*\]")
_DOTENV_MAC = re.compile(rb"^sops_mac=ENC\[", re.MULTILINE)
_INI_MAC = re.compile(rb"^\[sops\][^\[]*^mac\s*=\s*ENC\[", re.MULTILINE)
# Public keys only: age recipients and OpenPGP fingerprints, in any of sops's formats.
_RECIPIENT = re.compile(
    r"(?:recipient|\bfp|_fp)[\"']?\s*[:=]\s*[\"']?(age1[0-9a-z]+|[0-9A-Fa-f]{16,40})\b"
)
_ENCRYPTED_VALUE = re.compile(r"^ENC\[AES256_GCM,")
_SHOWN_FIELDS = frozenset({"apiVersion", "kind", "metadata"})


def carries_ciphertext(output: bytes) -> bool:
    """Whether a render output still holds SOPS-encrypted values, raw or base64-encoded."""
    return MARK in output or MARK_B64 in output


def shows_ciphertext_of(content: bytes, output: bytes) -> bool:
    """Whether `output` holds one of the encrypted values of the SOPS file `content`."""
    return any(token in output for token in _TOKEN.findall(content))


@dataclass(frozen=True)
class Decrypted:
    """A revision's files with the encrypted ones decrypted, and what was secret in them."""

    files: tuple[SourceFile, ...]
    paths: frozenset[str] = frozenset()  # the files that were decrypted
    values: frozenset[str] = frozenset()  # every decrypted value, to find it in rendered objects

    def __bool__(self) -> bool:
        return bool(self.paths)


def sops_format(file: SourceFile) -> str | None:
    """`yaml`, `json`, `dotenv` or `ini` when the file carries SOPS metadata, else None."""
    if MARK not in file.content:  # the common case, at memchr speed
        return None
    suffix = file.path.lower().rsplit(".", 1)[-1]
    if suffix == "env":
        return "dotenv" if _DOTENV_MAC.search(file.content) else None
    if suffix == "ini":
        return "ini" if _INI_MAC.search(file.content) else None
    fmt = "json" if suffix == "json" else "yaml"
    try:
        documents = [data for _, data in read_documents(file)]
    except RenderError:
        return None  # not YAML at all (a Helm template): nothing sops could decrypt either
    return fmt if any(_has_metadata(data) for data in documents) else None


def _has_metadata(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("sops"), dict) and "mac" in data["sops"]


def recipients(file: SourceFile) -> tuple[str, ...]:
    """The age recipients and OpenPGP fingerprints the file is encrypted for, in order."""
    text = file.content.decode("utf-8", errors="replace")
    return tuple(dict.fromkeys(_RECIPIENT.findall(text)))


def secret_values(encrypted: SourceFile, plain: bytes, fmt: str) -> set[str]:
    """The decrypted text of every value that was encrypted (a partly encrypted file's
    clear values are no secret)."""
    if fmt in ("dotenv", "ini"):
        return _line_values(encrypted.content, plain)
    try:
        before = [data for _, data in read_documents(encrypted)]
        after = [data for _, data in read_documents(replace(encrypted, content=plain))]
    except RenderError:
        return set()  # render reads the decrypted file next and says what is wrong
    values: set[str] = set()
    for old, new in zip(before, after, strict=False):
        if (
            isinstance(old, dict)
            and isinstance(new, dict)
            and "apiVersion" in new
            and "kind" in new
        ):
            # A manifest's type and metadata are always shown: were they encrypted too,
            # "v1" or its name would mark every generated object.
            old = {k: v for k, v in old.items() if k not in _SHOWN_FIELDS}
        _collect(old, new, values)
    return values


def _collect(old: Any, new: Any, values: set[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key, value in old.items():
            if key != "sops" and key in new:
                _collect(value, new[key], values)
    elif isinstance(old, list) and isinstance(new, list):
        for a, b in zip(old, new, strict=False):
            _collect(a, b, values)
    elif isinstance(old, str) and _ENCRYPTED_VALUE.match(old) and new not in (None, ""):
        values.add(new if isinstance(new, str) else str(new))


def _line_values(encrypted: bytes, plain: bytes) -> set[str]:
    """Values of `KEY=ENC[...]` (dotenv) or `key = ENC[...]` (ini) lines, decrypted."""
    secret_keys = {
        line.split(b"=", 1)[0].strip()
        for line in encrypted.splitlines()
        if b"=" in line and line.split(b"=", 1)[1].strip().startswith(b"ENC[")
    }
    values = set()
    for line in plain.splitlines():
        key, sep, value = line.partition(b"=")
        if sep and key.strip() in secret_keys and value.strip():
            values.add(value.strip().decode("utf-8", errors="replace"))
    return values


def mark_decrypted(
    objects: Sequence[DesiredObject], decrypted: Decrypted, *, generated: bool = False
) -> tuple[DesiredObject, ...]:
    """The objects, those read from a decrypted file marked sensitive.

    With `generated` (kustomize, Helm: an object comes from no one file), those carrying a
    decrypted value are marked too, found by its text or its base64 (a secretGenerator's
    Secret data); a short value such as "1" marks many objects, which hides more, never less.
    """
    if not decrypted:
        return tuple(objects)
    found = decrypted.values | {base64.b64encode(v.encode()).decode() for v in decrypted.values}
    return tuple(
        _marked(obj) if _is_from(obj, decrypted) or (generated and _carries(obj.manifest, found))
        else obj
        for obj in objects
    )  # fmt: skip


def _is_from(obj: DesiredObject, decrypted: Decrypted) -> bool:
    return obj.origin.split("#", 1)[0] in decrypted.paths


def _carries(value: Any, secrets: frozenset[str]) -> bool:
    if isinstance(value, dict):
        return any(_carries(v, secrets) for v in value.values())
    if isinstance(value, list):
        return any(_carries(v, secrets) for v in value)
    if isinstance(value, str):
        return any(secret in value for secret in secrets)
    return value is not None and str(value) in secrets


def _marked(obj: DesiredObject) -> DesiredObject:
    metadata = dict(obj.manifest["metadata"])
    metadata["annotations"] = {**(metadata.get("annotations") or {}), DECRYPTED_ANNOTATION: "sops"}
    return replace(obj, manifest={**obj.manifest, "metadata": metadata})
