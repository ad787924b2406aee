"""SOPS: finding encrypted files, naming their recipients, and hiding what they held."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from gitopsd.diff import compare, object_diff_text
from gitopsd.errors import DecryptionError
from gitopsd.model import DECRYPTED_ANNOTATION, DesiredObject, LiveObject, ResourceKey, SourceFile
from gitopsd.normalize import redact_message, redact_pair
from gitopsd.sops import TreeDecryption
from gitopsd.sopsfiles import (
    Decrypted,
    mark_decrypted,
    recipients,
    secret_values,
    sops_format,
)
from tests.support.standins import shown_as

ENC = "ENC[AES256_GCM,data:Zm9v,iv:YmFy,tag:YmF6,type:str]"
YAML_SOPS = f"""apiVersion: v1
kind: ConfigMap
metadata:
    name: app
data:
    password: {ENC}
sops:
    age:
        - recipient: age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq
          enc: x
    pgp:
        - fp: FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4
    mac: {ENC}
    version: 3.13.3
"""


def _stand_in(text: str) -> str:
    return shown_as(text)


@pytest.mark.parametrize(
    ("path", "content", "expected"),
    [
        ("app.yaml", YAML_SOPS, "yaml"),
        ("app.yml", YAML_SOPS, "yaml"),
        ("values.enc.yaml", YAML_SOPS, "yaml"),
        ("app.json", json.dumps({"data": {"a": ENC}, "sops": {"mac": ENC}}), "json"),
        ("secret.env", f"TOKEN={ENC}\nsops_mac={ENC}\nsops_version=3.13.3\n", "dotenv"),
        ("secret.ini", f"[app]\na = {ENC}\n[sops]\nmac = {ENC}\n", "ini"),
        # An encrypted-looking value without SOPS metadata is an ordinary file.
        ("app.yaml", f"kind: ConfigMap\ndata:\n  a: {ENC}\n", None),
        ("app.yaml", "kind: ConfigMap\nsops: {mac: plain}\n", None),
        ("secret.env", f"TOKEN={ENC}\n", None),
        # A Helm template is no YAML: not a SOPS file either.
        ("templates/cm.yaml", "{{ if .Values.x }}\na: " + ENC + "\n{{ end }}\n{{", None),
    ],
)
def test_sops_format(path: str, content: str, expected: str | None) -> None:
    assert sops_format(SourceFile(path, content.encode())) == expected


def test_recipients_are_listed_by_public_key_and_fingerprint() -> None:
    found = recipients(SourceFile("app.yaml", YAML_SOPS.encode()))
    assert found == (
        "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq",
        "FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4",
    )
    dotenv = "sops_age__list_0__map_recipient=age1abc\nsops_pgp__list_0__map_fp=ABCDEF0123456789\n"
    assert recipients(SourceFile("s.env", dotenv.encode())) == ("age1abc", "ABCDEF0123456789")


def _configmap(name: str, **data: Any) -> DesiredObject:
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    return DesiredObject(ResourceKey("", "ConfigMap", "ns", name), manifest, f"{name}.yaml#1")


def _is_marked(obj: DesiredObject) -> bool:
    return DECRYPTED_ANNOTATION in (obj.manifest["metadata"].get("annotations") or {})


def test_objects_from_a_decrypted_file_are_marked_and_others_not() -> None:
    objects = [_configmap("secret", password="s3cret-value"), _configmap("plain", v="s3cret-value")]
    decrypted = Decrypted(
        files=(), paths=frozenset({"secret.yaml"}), values=frozenset({"s3cret-value"})
    )
    marked = mark_decrypted(objects, decrypted)
    assert [_is_marked(obj) for obj in marked] == [True, False]
    # Generated objects (kustomize, Helm) are found by the value they carry.
    generated = mark_decrypted(objects, decrypted, generated=True)
    assert [_is_marked(obj) for obj in generated] == [True, True]
    # A secretGenerator's Secret holds the value base64-encoded: marked too, so its
    # render is never written to the cache.
    encoded = base64.b64encode(b"s3cret-value").decode()
    secret = DesiredObject(
        ResourceKey("", "Secret", "ns", "gen"),
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gen"}, "data": {"t": encoded}},
        "kustomize output of app#1",
    )
    (marked,) = mark_decrypted([secret], decrypted, generated=True)
    assert _is_marked(marked)
    assert mark_decrypted(objects, Decrypted(files=())) == tuple(objects)


def test_a_decrypted_configmap_shows_only_stand_ins_in_drift_and_diffs() -> None:
    (desired,) = mark_decrypted(
        [_configmap("secret", password="in-git-VALUE", port=5432)],
        Decrypted(files=(), paths=frozenset({"secret.yaml"})),
    )
    live_manifest = {
        **desired.manifest,
        "metadata": {"name": "secret"},  # the mark lost to a hand edit: still sensitive
        "data": {"password": "by-hand-VALUE", "port": 5432},
    }
    report = compare(desired, LiveObject(desired.key, live_manifest))
    assert report is not None
    change = next(change for change in report.changes if change.path == "data.password")
    assert (change.desired, change.live) == (_stand_in("in-git-VALUE"), _stand_in("by-hand-VALUE"))
    text = object_diff_text(desired.manifest, live_manifest, "ConfigMap/secret")
    assert "VALUE" not in text and _stand_in("by-hand-VALUE") in text


def test_a_value_once_decrypted_stays_hidden_when_git_stops_encrypting_it() -> None:
    # Acceptance: the live ConfigMap (still marked) held the old decrypted endpoint; Git now
    # declares it in plain text; the old value showed in diff, drift_detected and history.
    (was,) = mark_decrypted(
        [_configmap("app", endpoint="https://internal-OLD.example")],
        Decrypted(files=(), paths=frozenset({"app.yaml"})),
    )
    now = _configmap("app", endpoint="https://public.example")
    report = compare(now, LiveObject(now.key, was.manifest))
    assert report is not None
    (change,) = [c for c in report.changes if c.path == "data.endpoint"]
    assert "OLD" not in str(change.live) and "OLD" not in str(change.desired)
    text = object_diff_text(now.manifest, was.manifest, "ConfigMap/app")
    assert "OLD" not in text and "public" not in text


def test_unmarked_objects_keep_their_values_and_secrets_stay_redacted() -> None:
    plain = _configmap("plain", v="shown").manifest
    assert redact_pair(plain, plain) == (plain, plain)
    secret = {"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "hidden"}}
    shown, _ = redact_pair(secret, None)
    assert shown is not None and shown["stringData"] == {"a": _stand_in("hidden")}


def test_render_output_with_ciphertext_is_refused_naming_the_file_it_came_from(
    tmp_path: Path,
) -> None:
    other = "ENC[AES256_GCM,data:b3RoZXI=,iv:aXY=,tag:dGFn,type:str]"
    refused = (
        ("a.env", "no key able to decrypt it (recipients: age1x)", f"A={other}\n".encode()),
        ("b.env", "no key able to decrypt it (recipients: age1y)", f"B={ENC}\n".encode()),
    )
    tree = TreeDecryption(tmp_path, "app", Decrypted(files=()), refused)
    tree.check_output(b"kind: ConfigMap\ndata: {a: clear}\n")  # nothing encrypted: fine
    with pytest.raises(DecryptionError, match=r"^b\.env: no key able to decrypt it"):
        tree.check_output(f"data:\n  B: {ENC}\n".encode())
    # A generator base64-encodes values (kustomize secretGenerator): still caught.
    encoded = base64.b64encode(ENC.encode()).decode()
    with pytest.raises(DecryptionError, match=r"^a\.env: "):
        tree.check_output(f"data:\n  B: {encoded}\n".encode())
    # Without a decryption section the tree is not read until ciphertext shows.
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "values.yaml").write_text(YAML_SOPS)
    unread = TreeDecryption(tmp_path, "app", Decrypted(files=()))
    with pytest.raises(DecryptionError, match=r"^app/values\.yaml: encrypted with SOPS; set"):
        unread.check_output(f"dsn: {ENC}\n".encode())


def test_the_secret_values_are_those_that_were_encrypted_outside_type_and_metadata() -> None:
    encrypted = SourceFile(
        "app.yaml",
        f"apiVersion: {ENC}\nkind: {ENC}\nmetadata:\n  name: {ENC}\n"
        f"data:\n  a: {ENC}\n  b: clear\n  n: {ENC}\nsops:\n  mac: {ENC}\n".encode(),
    )
    plain = (
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n"
        b"data: {a: s3cret, b: clear, n: 7}\n"
    )
    assert secret_values(encrypted, plain, "yaml") == {"s3cret", "7"}
    dotenv = SourceFile("s.env", f"A={ENC}\nB=clear\nsops_mac={ENC}\n".encode())
    assert secret_values(dotenv, b"A=s3cret\nB=clear\n", "dotenv") == {"s3cret"}


def test_server_messages_quote_no_value_of_a_secret_or_a_decrypted_object() -> None:
    message = 'spec.type: Unsupported value: "s3cret-TYPE": supported values: "ClusterIP"'
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}
    decrypted = {
        **service,
        "metadata": {"name": "web", "annotations": {DECRYPTED_ANNOTATION: "sops"}},
        "spec": {"type": "s3cret-TYPE", "ports": [{"port": 80}]},
    }
    shown = redact_message(message, decrypted)
    assert "s3cret-TYPE" not in shown and f'"{_stand_in("s3cret-TYPE")}"' in shown
    assert '"ClusterIP"' in shown  # the server's own words stay
    assert redact_message(message, {**service, "spec": {"type": "s3cret-TYPE"}}) == message
    secret = {"kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "aHVudGVyMi12YWx1ZQ=="}}
    assert "hunter2-value" not in redact_message("bad value hunter2-value here", secret)


def test_a_secret_substituted_into_a_label_is_not_quoted_back_by_the_server() -> None:
    # A `secret: true` substitution marks the object like SOPS output; a value it put in a
    # label came back verbatim in the API server's refusal (acceptance test).
    labels = {"owner": "tok en/Secret-LabelLeak-55", "gitopsd.io/target": "web"}
    annotations = {DECRYPTED_ANNOTATION: "substitution"}
    cm = {
        "kind": "ConfigMap",
        "metadata": {"name": "c", "labels": labels, "annotations": annotations},
    }
    message = (
        'metadata.labels: Invalid value: "tok en/Secret-LabelLeak-55": a valid label must be '
        'an empty string or consist of alphanumeric characters; target "web"'
    )
    shown = redact_message(message, cm)
    assert "LabelLeak" not in shown
    assert 'target "web"' in shown  # gitopsd's own label values stay
