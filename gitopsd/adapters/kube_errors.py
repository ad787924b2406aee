"""Turn an API server's error answer into gitopsd's ClusterError family.

Pure: takes the status code and the decoded Status body, so the mapping is
unit-tested without a server.
"""

from __future__ import annotations

from typing import Any

from gitopsd.adapters.rbac import forbidden_text
from gitopsd.errors import (
    ClusterError,
    ConflictError,
    ForbiddenError,
    ImmutableFieldError,
    InvalidObjectError,
    NotFoundError,
    UnavailableError,
)

_IMMUTABLE_MARKERS = ("field is immutable", "is immutable", "may not change once set")
# Server-side apply checks a patch against the kind's schema before anything else, and
# answers a mismatch (`replicas: three`, a misspelt field) with 500, not 422: it is the
# object that is wrong, so it must neither be retried nor blamed on the server.
# Likewise a value the kind's Go type cannot decode (a Secret's data that is not base64).
_OBJECT_FAULT_MARKERS = (
    "failed to create typed patch object",
    "unable to convert unstructured object",
)

# Tries of one request: a failing or unreachable server gets about 3 s of backoff in all; a
# 429 is the server asking us to come back later, so we keep coming back for longer.
RETRIES = 5
THROTTLED_RETRIES = 20
# A Retry-After beyond this is taken as this: one request must not hold a pass for an hour.
MAX_RETRY_AFTER = 30.0


def cluster_error(status: int, body: Any, what: str) -> ClusterError:
    """The ClusterError for one failed request; `what` names the object or request."""
    message = _status_message(body) or f"HTTP {status}"
    text = f"{what}: {message}"
    if status == 404:
        return NotFoundError(text, status=status)
    if status == 409:
        managers = conflict_managers(body)
        if managers:
            text += f" (fields owned by {', '.join(managers)}; `conflicts: force` takes them)"
        return ConflictError(text, status=status)
    if status in (401, 403):
        return ForbiddenError(forbidden_text(what, message), status=status)
    if status in (400, 422):
        if any(marker in message for marker in _IMMUTABLE_MARKERS):
            return ImmutableFieldError(
                f"{text} (set `recreate: true` on the target to delete and recreate it)",
                status=status,
            )
        return InvalidObjectError(text, status=status)
    if status == 500 and any(marker in message for marker in _OBJECT_FAULT_MARKERS):
        return InvalidObjectError(
            f"{text} (the object does not match its kind's schema: fix the field named)",
            status=status,
        )
    if status == 429 or status >= 500:
        return UnavailableError(text, status=status)
    return ClusterError(text, status=status)


def _status_message(body: Any) -> str:
    if isinstance(body, dict):
        return " ".join(str(body.get("message", "")).split())
    return ""


def backoff_seconds(tries: int) -> float:
    """The pause after `tries` failed attempts of one request: 0.2 s, 0.4 s, ... at most 5 s."""
    return float(min(0.2 * 2 ** (tries - 1), 5.0))


def retry_wait(headers: Any, body: Any, tries: int, jitter: float) -> float:
    """The pause before trying again: never less than the server asked (up to MAX_RETRY_AFTER),
    up to half as long again by `jitter` (0 to 1), so throttled requests return spread out."""
    asked = min(retry_after_seconds(headers, body, backoff_seconds(tries)), MAX_RETRY_AFTER)
    return asked * (1 + jitter / 2)


def retry_after_seconds(headers: Any, body: Any, default: float) -> float:
    """How long the server asked us to wait: Retry-After, then details.retryAfterSeconds."""
    header = headers.get("Retry-After") if headers is not None else None
    if header:
        try:
            return max(float(header), 0.0)
        except ValueError:
            pass
    if isinstance(body, dict):
        seconds = (body.get("details") or {}).get("retryAfterSeconds")
        if isinstance(seconds, int | float):
            return float(seconds)
    return default


def conflict_managers(body: Any) -> tuple[str, ...]:
    """The managers named in a server-side apply conflict (409) answer."""
    causes = ((body or {}).get("details") or {}).get("causes") or []
    managers = []
    for cause in causes:
        message = str(cause.get("message", ""))
        # 'conflict with "kubectl-edit" using apps/v1'
        if 'conflict with "' in message:
            managers.append(message.split('conflict with "', 1)[1].split('"', 1)[0])
    return tuple(sorted(set(managers)))
