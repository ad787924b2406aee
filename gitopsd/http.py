"""The HTTP listener: /healthz, /readyz, /metrics, /status and the sync webhook.

The standard library's threading server is enough for a handful of probes a
minute; it runs in a daemon thread beside the scheduler.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import structlog
from prometheus_client import CONTENT_TYPE_LATEST

log = structlog.get_logger(__name__)

SECRET_HEADER = "X-Gitopsd-Secret"
# GitHub, Gitea and Forgejo sign the body with the shared secret instead of sending it.
SIGNATURE_HEADER = "X-Hub-Signature-256"
MAX_BODY = 1024 * 1024


class Backend(Protocol):
    """What the listener needs from the daemon."""

    def status(self) -> dict[str, Any]: ...
    def readiness(self) -> list[str]: ...  # why the daemon is not ready; empty when it is
    def metrics(self) -> bytes: ...
    def webhook_secret(self) -> str | None: ...
    def trigger(self, target: str | None) -> list[str]: ...  # KeyError for an unknown target


class HttpListener:
    """Serves `backend` on (address, port) from a background thread."""

    def __init__(self, backend: Backend, address: str, port: int) -> None:
        handler = type("Handler", (_Handler,), {"backend": backend})
        self._server = ThreadingHTTPServer((address, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="gitopsd-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("http_listening", address=self._server.server_address[0], port=self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    backend: Backend
    server_version = "gitopsd"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/healthz":
            self._send(HTTPStatus.OK, b"ok\n")
        elif path == "/readyz":
            reasons = self.backend.readiness()
            body = ("\n".join(reasons) if reasons else "ready") + "\n"
            self._send(HTTPStatus.SERVICE_UNAVAILABLE if reasons else HTTPStatus.OK, body.encode())
        elif path == "/metrics":
            self._send(HTTPStatus.OK, self.backend.metrics(), CONTENT_TYPE_LATEST)
        elif path == "/status":
            body = json.dumps(self.backend.status(), indent=2, sort_keys=True) + "\n"
            self._send(HTTPStatus.OK, body.encode(), "application/json")
        elif path == "/hooks/sync":
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"use POST\n", allow="POST")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/hooks/sync":
            self._send(HTTPStatus.NOT_FOUND, b"not found\n")
            return
        secret = self.backend.webhook_secret()
        if secret is None:
            self._send(HTTPStatus.NOT_FOUND, b"no webhook configured\n")
            return
        body = self._read_body()
        if body is None:
            return
        if not self._authorized(secret, body):
            log.warning("webhook_refused", client=self.client_address[0])
            self._send(HTTPStatus.UNAUTHORIZED, b"bad or missing secret\n")
            return
        names = parse_qs(url.query).get("target")
        target = names[0] if names else None
        try:
            started = self.backend.trigger(target)
        except KeyError:
            self._send(HTTPStatus.NOT_FOUND, f"no target named {target!r}\n".encode())
            return
        log.info("webhook_triggered", targets=started)
        body_out = json.dumps({"triggered": started}) + "\n"
        self._send(HTTPStatus.ACCEPTED, body_out.encode(), "application/json")

    def _read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"body too large\n")
            return None
        return self.rfile.read(length)

    def _authorized(self, secret: str, body: bytes) -> bool:
        given = self.headers.get(SECRET_HEADER)
        if given is not None:
            return hmac.compare_digest(given.encode(), secret.encode())
        signature = self.headers.get(SIGNATURE_HEADER)
        if signature is not None:
            digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            return hmac.compare_digest(signature.encode(), f"sha256={digest}".encode())
        return False

    def _send(
        self, status: HTTPStatus, body: bytes, content_type: str = "text/plain", **headers: str
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.capitalize(), value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Probes every few seconds would flood the log at INFO; keep them for debugging.
        log.debug("http_request", client=self.client_address[0], request=format % args)
