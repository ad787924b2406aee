"""The request handler fed raw request bytes, without a socket (as the webhook fuzz target does)."""

from __future__ import annotations

import io
from typing import Any

import pytest

from gitopsd import http as listener

SECRET = "s3cret"


class Backend:
    """The daemon's side: one target, `web`; records whether a pass was triggered."""

    triggered = False

    def status(self) -> dict[str, Any]:
        return {}

    def status_page(self) -> str:
        return "<p>status</p>"

    def target_page(self, name: str) -> str | None:
        return None

    def readiness(self) -> list[str]:
        return []

    def metrics(self) -> bytes:
        return b""

    def webhook_secret(self) -> str | None:
        return SECRET

    def trigger(self, target: str | None) -> list[str]:
        self.triggered = True
        return ["web"]


def answer(request: bytes) -> tuple[bytes, Backend]:
    """The handler's answer to `request`, and the backend it was given."""
    backend = Backend()
    handler_class = type("Handler", (listener._Handler,), {"backend": backend})
    # What StreamRequestHandler.setup() would make from a socket, without one.
    handler: Any = handler_class.__new__(handler_class)
    handler.rfile, handler.wfile = io.BytesIO(request), io.BytesIO()
    handler.client_address, handler.server, handler.request = ("127.0.0.1", 0), None, None
    handler.close_connection = True
    handler.handle_one_request()
    return handler.wfile.getvalue(), backend


@pytest.mark.parametrize("method", ["GET", "POST"])
# The server folds a leading `//` into `/` itself; these reach urlsplit with a netloc.
@pytest.mark.parametrize("target", ["\x01//x[", "x://[abc]/", "http://[::1/hooks/sync"])
def test_a_path_urlsplit_refuses_is_a_bad_request(method: str, target: str) -> None:
    request = f"{method} {target} HTTP/1.1\r\n{listener.SECRET_HEADER}: {SECRET}\r\n\r\n"
    response, backend = answer(request.encode())
    assert response.startswith(b"HTTP/1.0 400 "), response[:80]
    assert not backend.triggered


def test_a_well_formed_webhook_still_triggers() -> None:
    request = f"POST /hooks/sync HTTP/1.1\r\n{listener.SECRET_HEADER}: {SECRET}\r\n\r\n"
    response, backend = answer(request.encode())
    assert response.startswith(b"HTTP/1.0 202 "), response[:80]
    assert backend.triggered
