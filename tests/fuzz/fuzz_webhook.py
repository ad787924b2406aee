"""Fuzz target: the webhook's request and secret parsing, one raw HTTP request per input.

gitopsd/http.py checks X-Gitopsd-Secret and X-Hub-Signature-256 inside its request
handler (no pure function to call), so each input is fed to that handler as the bytes
a client sent, without a socket. Valid outcome: nothing escapes the handler; the answer
is one HTTP status line with an expected code; 202 only when the request carries the
secret or a valid signature of the body that was read; the secret never leaks into an answer.
Run: python3 -m tests.fuzz.fuzz_webhook [libFuzzer flags] [corpus folders or files]
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import re
from typing import Any

from tests.fuzz import harness

with harness.instrumentation(["gitopsd", "http", "email"]):
    import structlog

    from gitopsd import http as listener
    from tests.fuzz import seeds

SECRET = seeds.WEBHOOK_SECRET.encode()
STATUSES = {200, 202, 400, 401, 404, 405, 408, 411, 413, 414, 431, 501, 503, 505}
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) [^\r\n]*\r\n")


class Backend:
    """The daemon's side: one target, `web`; records whether a pass was triggered."""

    triggered = False

    def status(self) -> dict[str, Any]:
        return {}

    def readiness(self) -> list[str]:
        return []

    def metrics(self) -> bytes:
        return b""

    def status_page(self) -> str:
        return "<!doctype html><title>gitopsd</title>"

    def target_page(self, name: str) -> str | None:
        return "<!doctype html><title>web</title>" if name == "web" else None

    def webhook_secret(self) -> str | None:
        return seeds.WEBHOOK_SECRET

    def trigger(self, target: str | None) -> list[str]:
        if target not in (None, "web"):
            raise KeyError(target)
        self.triggered = True
        return ["web"]


# A method the listener's Backend gained and this fake lacks would look like a crash.
_MISSING = {n for n in dir(listener.Backend) if not n.startswith("_")} - set(dir(Backend))
assert not _MISSING, f"fuzz_webhook.Backend lacks {sorted(_MISSING)}: add them"


def one_input(data: bytes) -> None:
    backend = Backend()
    handler_class = type("Handler", (listener._Handler,), {"backend": backend})
    # What StreamRequestHandler.setup() would make from a socket, without one.
    handler: Any = handler_class.__new__(handler_class)
    handler.rfile, handler.wfile = io.BytesIO(data), io.BytesIO()
    handler.client_address, handler.server, handler.request = ("127.0.0.1", 0), None, None
    handler.close_connection = True
    # A fixed Date header: the clock would otherwise steer the fuzzer (atheris traces the
    # comparisons inside date formatting), and a seeded run would not repeat itself.
    handler.date_time_string = lambda timestamp=None: "Wed, 01 Jan 2025 00:00:00 GMT"
    handler.handle_one_request()
    check_answer(data, handler.rfile.tell(), handler.wfile.getvalue(), backend.triggered)


def check_answer(data: bytes, consumed: int, answer: bytes, triggered: bool) -> None:
    # Error pages quote the request line: only a secret the client did not send is a leak.
    if SECRET in answer and SECRET not in data:
        raise harness.PropertyViolation("the webhook secret appears in the answer")
    if triggered and not _carries_secret(data, consumed):
        raise harness.PropertyViolation("a pass was triggered without the secret or a signature")
    # An HTTP/0.9 request (`GET /path`, or a version the server reads as 0.9) is answered
    # without a status line, as the standard library does.
    match = _STATUS_LINE.match(answer)
    if match is None:
        return
    status = int(match.group(1))
    if status not in STATUSES:
        raise harness.PropertyViolation(f"unexpected answer {answer[:80]!r}")
    if triggered != (status == 202):
        raise harness.PropertyViolation(f"status {status} but triggered={triggered}")


def _carries_secret(data: bytes, consumed: int) -> bool:
    """The secret itself, or an HMAC of a body (some line start up to what was read)."""
    if SECRET in data:
        return True
    signatures = set(re.findall(rb"sha256=([0-9a-f]{64})", data[:consumed]))
    starts = [i + 1 for i, byte in enumerate(data[:consumed]) if byte == ord("\n")]
    return any(
        hmac.new(SECRET, data[start:consumed], hashlib.sha256).hexdigest().encode() in signatures
        for start in starts
    )


if __name__ == "__main__":
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
        logger_factory=structlog.ReturnLoggerFactory(),
    )
    harness.main("webhook", one_input, seeds.webhook_seeds)
