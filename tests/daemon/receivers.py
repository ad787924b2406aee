"""HTTP receivers on loopback for the notification tests: each behaves as its service documents.

A receiver records every request with the time on the test's clock, answers what
the test queued (200 by default), and can hold requests until released, to play
a receiver slower than the sender's timeout.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gitopsd.clock import Clock

Answer = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # the test clock's time when it arrived
    answered: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """One loopback HTTP server; `check` is the service's own validation of a request."""

    clock: Clock
    check: Callable[[str, dict[str, str], bytes], Answer | None] = lambda *_: None
    requests: list[Received] = field(default_factory=list)
    answers: deque[Answer] = field(default_factory=deque)
    hold: threading.Event | None = None  # set: requests wait for this before being answered
    holding: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Whether `count` requests have been answered within `timeout` real seconds."""
        with self.changed:
            return self.changed.wait_for(lambda: len(self.requests) >= count, timeout)

    def wait_holding(self, count: int, timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.holding >= count, timeout)

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if self.hold is not None:
            with self.changed:
                self.holding += 1
                self.changed.notify_all()
            self.hold.wait(30)
        answer = self.check(path, headers, body)
        if answer is None:
            with self.changed:
                answer = self.answers.popleft() if self.answers else (200, {}, b"ok")
        with self.changed:
            self.requests.append(Received(path, headers, body, self.clock.time(), answer[0]))
            self.changed.notify_all()
        return answer


@contextmanager
def serving(receiver: Receiver, port: int = 0) -> Iterator[Receiver]:
    """Serve `receiver` on 127.0.0.1 (on `port`, or a free one) until the block ends."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            status, headers, answer = receiver.handle(
                self.path, {k.lower(): v for k, v in self.headers.items()}, body
            )
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except OSError:
                pass  # the sender gave up waiting (the slow receiver's point)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    receiver.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def webhook_check(secret: str) -> Callable[[str, dict[str, str], bytes], Answer | None]:
    """A webhook receiver that verifies X-Gitopsd-Signature-256 as the README tells users to."""

    def check(path: str, headers: dict[str, str], body: bytes) -> Answer | None:
        given = headers.get("x-gitopsd-signature-256", "")
        wanted = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given, wanted):
            return 401, {}, b"bad signature"
        return None

    return check


def slack_check(path: str, headers: dict[str, str], body: bytes) -> Answer | None:
    """Slack's incoming webhook: a JSON object with a `text` string, or 400 invalid_payload."""
    document = _json(body)
    if headers.get("content-type") != "application/json" or document is None:
        return 400, {}, b"invalid_payload"
    if not isinstance(document.get("text"), str) or not document["text"]:
        return 400, {}, b"no_text"
    return None


_SHA = r"[0-9a-f]{40}"
_GITHUB_STATES = {"error", "failure", "pending", "success"}
_GITEA_STATES = {"pending", "success", "error", "failure", "warning"}
_GITLAB_STATES = {"pending", "running", "success", "failed", "canceled", "skipped"}


def forge_check(forge: str, token: str) -> Callable[[str, dict[str, str], bytes], Answer | None]:
    """Each forge's documented "create a commit status" endpoint, auth and states."""
    routes = {
        "github": (rf"^/repos/[^/]+/[^/]+/statuses/{_SHA}$", "authorization", f"Bearer {token}"),
        "gitea": (
            rf"^/api/v1/repos/[^/]+/[^/]+/statuses/{_SHA}$",
            "authorization",
            f"token {token}",
        ),
        "gitlab": (rf"^/api/v4/projects/[^/]+/statuses/{_SHA}$", "private-token", token),
    }
    route, header, credential = routes[forge]

    def check(path: str, headers: dict[str, str], body: bytes) -> Answer | None:
        if not re.match(route, path):
            return 404, {}, b'{"message": "Not Found"}'
        if headers.get(header) != credential:
            return 401, {}, b'{"message": "Bad credentials"}'
        document = _json(body)
        if document is None:
            return 400, {}, b'{"message": "Problems parsing JSON"}'
        states = {"github": _GITHUB_STATES, "gitea": _GITEA_STATES, "gitlab": _GITLAB_STATES}
        label = document.get("name") if forge == "gitlab" else document.get("context")
        if document.get("state") not in states[forge] or not label:
            return 422, {}, b'{"message": "Validation Failed"}'
        return 201, {"Content-Type": "application/json"}, json.dumps(document).encode()

    return check
