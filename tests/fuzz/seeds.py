"""Seed corpora from the repository's own files, so seeds follow the project as it changes.

Real manifests (examples/repo, the unit tests' tables), the reference configuration
and the configuration error table, and signed webhook requests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = ROOT / "tests" / "unit" / "testdata"
# Inputs that once broke the property, kept so every run replays them.
REGRESSIONS = Path(__file__).resolve().parent / "corpus"

WEBHOOK_SECRET = "fuzz-webhook-secret"

_HAND_MANIFESTS = [
    # kind: List, a CRD and its custom resource, aliases and a merge key, timestamps.
    "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}"
    "\n- {apiVersion: v1, kind: Secret, metadata: {name: b}, stringData: {k: v}}\n",
    "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:"
    " {name: widgets.example.com}\nspec: {group: example.com, scope: Cluster, names:"
    " {kind: Widget, plural: widgets}}\n---\napiVersion: example.com/v1\nkind: Widget\n"
    "metadata: {name: w, namespace: ignored}\n",
    "base: &b {app: web, tier: front}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n"
    "  name: c\n  labels: {<<: *b, extra: x}\n  annotations: {at: 2024-01-02T03:04:05Z}\n"
    "data: {a: *b}\n",
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: n, namespace: dropped}\n",
]


def render_seeds() -> Iterator[bytes]:
    """Manifests as files hold them, and each parsed manifest again as JSON."""
    texts = [p.read_text() for p in sorted((ROOT / "examples" / "repo").rglob("*.yaml"))]
    for case in _table("render_errors.yaml"):
        texts.extend(str(content) for content in case["files"].values())
    texts.extend(_HAND_MANIFESTS)
    manifests: list[Any] = []
    for case in _table("diff_cases.yaml"):
        manifests.extend(case[side] for side in ("desired", "live") if side in case)
    for text in texts:
        yield text.encode()
        manifests.extend(_documents(text))
    for manifest in manifests:
        if isinstance(manifest, dict):
            yield yaml.safe_dump(manifest).encode()
            yield json.dumps(manifest, default=str).encode()
    yield from _regressions("render")


def config_seeds() -> Iterator[bytes]:
    """The reference configuration and every case of the configuration error table."""
    yield (ROOT / "config" / "gitopsd.yaml").read_bytes()
    for case in _table("config_errors.yaml"):
        yield str(case["config"]).encode()
    yield from _regressions("config")


def webhook_seeds() -> Iterator[bytes]:
    """Webhook requests (signed, with the secret header, unsigned, wrong, malformed) and GETs."""
    body = b'{"ref": "refs/heads/main", "after": "0123abcd"}'
    digest = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    yield request({"X-Hub-Signature-256": f"sha256={digest}"}, body, "?target=web")
    yield request({"X-Hub-Signature-256": f"sha256={digest}"}, body)
    yield request({"X-Gitopsd-Secret": WEBHOOK_SECRET}, b"", "?target=web")
    yield request({"X-Gitopsd-Secret": WEBHOOK_SECRET}, b"", "?target=nope")
    yield request({"X-Hub-Signature-256": "sha256=" + "0" * 64}, body)
    yield request({"X-Gitopsd-Secret": "wrong"}, b"x")
    yield request({}, body)
    yield request({"X-Hub-Signature-256": f"sha256={digest}", "Content-Length": "-1"}, body)
    for path in ("/hooks/sync", "/healthz", "/readyz", "/status", "/metrics", "/", "/targets/web"):
        yield f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
    yield b"POST /elsewhere HTTP/1.0\r\nContent-Length: 0\r\n\r\n"
    yield from _regressions("webhook")


def request(headers: dict[str, str], body: bytes, query: str = "") -> bytes:
    """A raw HTTP/1.1 POST to the webhook path (Content-Length from the body unless given)."""
    lines = [f"POST /hooks/sync{query} HTTP/1.1", "Host: localhost"]
    fields = {"Content-Length": str(len(body)), **headers}
    lines.extend(f"{name}: {value}" for name, value in fields.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _table(name: str) -> list[Any]:
    table = yaml.safe_load((TESTDATA / name).read_text())
    return table if isinstance(table, list) else []


def _documents(text: str) -> list[Any]:
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        return []


def _regressions(target: str) -> Iterator[bytes]:
    folder = REGRESSIONS / target
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            yield path.read_bytes()
