"""The HTTP listener: /healthz, /readyz, /metrics, /status and the sync webhook.

The standard library's threading server is enough for a handful of probes a
minute; it runs in a daemon thread beside the scheduler. Anyone who can reach
the port can open connections without a secret, so the server holds a bounded
number of them, each with a deadline to send its request, and keeps clear of the
open files that passes need: 1,021 idle connections used to starve every pass
of file descriptors and time out /healthz.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import resource
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from gitopsd.errors import NotOwnerError

log = structlog.get_logger(__name__)

SECRET_HEADER = "X-Gitopsd-Secret"
# GitHub, Gitea and Forgejo sign the body with the shared secret instead of sending it.
SIGNATURE_HEADER = "X-Hub-Signature-256"
# GitLab sends the secret token itself in this header.
GITLAB_HEADER = "X-Gitlab-Token"
MAX_BODY = 1024 * 1024
# The status page is self-contained: no script runs and nothing loads from elsewhere.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
MAX_CONNECTIONS = 64  # probes, scrapes and webhooks need a handful at a time
REQUEST_TIMEOUT = 10.0  # seconds to send a whole request; also bounds each read and write
FD_RESERVE = 512  # open files the listener leaves to passes (mirrors, API connections, journal)
LISTEN_BACKLOG = 128  # a burst waits in the kernel while every connection is busy
_FULL_WARNING_EVERY = 60.0


class Backend(Protocol):
    """What the listener needs from the daemon."""

    def status(self) -> dict[str, Any]: ...
    def status_page(self) -> str: ...
    def target_page(self, name: str) -> str | None: ...  # None: no such target
    def readiness(self) -> list[str]: ...  # why the daemon is not ready; empty when it is
    def metrics(self) -> bytes: ...
    def webhook_secret(self) -> str | None: ...
    def trigger(self, target: str | None) -> list[str]: ...  # KeyError for an unknown target


class HttpListener:
    """Serves `backend` on (address, port) from a background thread."""

    def __init__(self, backend: Backend, address: str, port: int) -> None:
        open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        limit = connection_limit(MAX_CONNECTIONS, open_files)
        if limit < MAX_CONNECTIONS:
            wanted = MAX_CONNECTIONS + FD_RESERVE
            log.warning(
                "http_connections_capped",
                max_connections=limit,
                open_files_limit=open_files,
                fix=f"raise the open-files limit to at least {wanted} (LimitNOFILE)",
            )
        self._connections = Connections(limit, REQUEST_TIMEOUT)
        attributes = {
            "backend": backend,
            "connections": self._connections,
            "timeout": REQUEST_TIMEOUT,
        }
        handler = type("Handler", (_Handler,), attributes)
        self._server = _Server((address, port), handler, self._connections)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="gitopsd-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info(
            "http_listening",
            address=self._server.server_address[0],
            port=self.port,
            max_connections=self._connections.limit,
        )

    def stop(self) -> None:
        self._connections.close()  # the accept loop may be waiting for room
        self._server.shutdown()
        self._server.server_close()


def connection_limit(wanted: int, open_files: int) -> int:
    """How many connections the listener may hold: `wanted`, never into the passes' reserve."""
    if open_files == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, open_files - FD_RESERVE))


class ClientSocket(Protocol):
    def fileno(self) -> int: ...
    def shutdown(self, how: int, /) -> None: ...


def has_unread_bytes(sock: ClientSocket) -> bool:
    """Whether the kernel holds bytes (or a hang-up) that the handler has not read yet."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


@dataclass
class _Connection:
    opened: float
    reading: bool = True  # still sending its request: gives way to newcomers
    evicted: bool = False  # shut down; counted until its thread has closed it


class Connections:
    """The listener's open connections: at most `limit`, each with `timeout` to send its request.

    When full, the connection that has spent longest sending its request gives way,
    so idle or trickling clients cannot lock out probes, which send theirs at once.
    One whose request waits unread in the kernel (its thread has not run yet) is spared.
    """

    def __init__(
        self,
        limit: int,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        unread: Callable[[ClientSocket], bool] = has_unread_bytes,
    ) -> None:
        self.limit, self.timeout = limit, timeout
        self._clock, self._unread = clock, unread
        self._open: dict[ClientSocket, _Connection] = {}  # in order of arrival
        self._changed = threading.Condition()
        self._closed = False
        self._warned_at: float | None = None

    def admit(self, sock: ClientSocket) -> bool:
        """Take `sock` in, making room if full; False refuses it (all busy, or closing)."""
        deadline = self._clock() + self.timeout
        with self._changed:
            while len(self._open) >= self.limit and not self._closed:
                self._warn_full()
                if not self._evicting() and self._evict_oldest_reader():
                    continue  # it may be closed already: look again before waiting
                remaining = deadline - self._clock()
                if remaining <= 0:
                    log.warning("http_connection_refused", reason="every connection is busy")
                    return False
                self._changed.wait(remaining)
            if self._closed:
                return False
            self._open[sock] = _Connection(self._clock())
            return True

    def request_read(self, sock: ClientSocket) -> None:
        """`sock` has sent its whole request: it is no longer evicted for newcomers."""
        with self._changed:
            if (connection := self._open.get(sock)) is not None:
                connection.reading = False

    def release(self, sock: ClientSocket) -> None:
        with self._changed:
            self._open.pop(sock, None)
            self._changed.notify_all()

    def expire(self) -> None:
        """Shut connections that have not sent their request within the timeout."""
        now = self._clock()
        with self._changed:
            for sock, connection in self._open.items():
                if connection.reading and now - connection.opened > self.timeout:
                    self._evict(sock, connection, "request_timeout")

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _evicting(self) -> bool:
        return any(connection.evicted for connection in self._open.values())

    def _evict_oldest_reader(self) -> bool:
        for sock, connection in self._open.items():
            if connection.reading and not connection.evicted and not self._unread(sock):
                self._evict(sock, connection, "connection_limit")
                return True
        return False

    def _evict(self, sock: ClientSocket, connection: _Connection, reason: str) -> None:
        if connection.evicted:
            return
        connection.evicted = True
        log.debug("http_connection_closed", reason=reason)
        # shutdown, not close: the handler's thread owns the descriptor; its blocked read
        # returns at once and it closes the socket itself.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def _warn_full(self) -> None:
        now = self._clock()
        if self._warned_at is None or now - self._warned_at >= _FULL_WARNING_EVERY:
            self._warned_at = now
            log.warning("http_connections_full", max_connections=self.limit)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        connections: Connections,
    ) -> None:
        self.connections = connections
        super().__init__(address, handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return self.connections.admit(request)

    def shutdown_request(self, request: Any) -> None:
        # Forgotten before it is closed, so an eviction never shuts a reused descriptor.
        self.connections.release(request)
        super().shutdown_request(request)

    def service_actions(self) -> None:
        self.connections.expire()  # the accept loop calls this at least every half second

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The standard handler prints a traceback to stderr, breaking the JSON log, for
        # every client that hangs up mid-request; that is the client's business.
        error = sys.exc_info()[1]
        client = client_address[0] if isinstance(client_address, tuple) else str(client_address)
        if isinstance(error, OSError):
            log.debug("http_client_error", client=client, error=f"{type(error).__name__}: {error}")
        else:
            log.error("http_handler_failed", client=client, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    backend: Backend
    connections: Connections | None = None  # None: driven without a listener (fuzzing)
    server_version = "gitopsd"

    def do_GET(self) -> None:
        self._request_read()
        if (url := self._url()) is None:
            return
        path = url.path
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
        elif path == "/":
            self._send_page(self.backend.status_page())
        elif path.startswith("/targets/"):
            self._send_page(self.backend.target_page(unquote(path.removeprefix("/targets/"))))
        elif path == "/hooks/sync":
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"use POST\n", allow="POST")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n")

    def do_POST(self) -> None:
        if (url := self._url()) is None:
            return
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
        self._request_read()
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
        except NotOwnerError as elsewhere:  # with `ha:`: the holder's own passes see the push
            log.info("webhook_not_owner", target=target, reason=str(elsewhere))
            self._send(HTTPStatus.ACCEPTED, f"{elsewhere}\n".encode())
            return
        log.info("webhook_triggered", targets=started)
        body_out = json.dumps({"triggered": started}) + "\n"
        self._send(HTTPStatus.ACCEPTED, body_out.encode(), "application/json")

    def _url(self) -> SplitResult | None:
        """The request's target split, or None once a 400 is sent for one urlsplit refuses."""
        try:
            return urlsplit(self.path)
        except ValueError:  # `x://[abc]/`: a bracketed host that is no IP address
            self._send(HTTPStatus.BAD_REQUEST, b"malformed request target\n")
            return None

    def _request_read(self) -> None:
        if self.connections is not None:
            self.connections.request_read(self.request)

    def _read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"body too large\n")
            return None
        body = self.rfile.read(length)
        if len(body) < length:  # the client hung up mid-body: nobody to answer
            log.debug("http_client_error", client=self.client_address[0], error="body cut short")
            return None
        return body

    def _authorized(self, secret: str, body: bytes) -> bool:
        for header in (SECRET_HEADER, GITLAB_HEADER):
            given = self.headers.get(header)
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

    def _send_page(self, page: str | None) -> None:
        status = HTTPStatus.OK if page is not None else HTTPStatus.NOT_FOUND
        body = (page if page is not None else "no such target\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in PAGE_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Probes every few seconds would flood the log at INFO; keep them for debugging.
        log.debug("http_request", client=self.client_address[0], request=format % args)
