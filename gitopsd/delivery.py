"""Delivery rules for notifications: retry or give up, how long to wait, what is a repeat.

Pure: every rule takes the time as an argument, so tests drive it without a
clock or a thread; gitopsd.sinks carries the rules out.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

BACKOFF_FIRST = 1.0  # seconds before the first retry; doubling after that
BACKOFF_CAP = 60.0
RETRY_AFTER_CAP = 3600.0  # a receiver asking for more is still waited for an hour at most
DOWN_PROBE_SECONDS = 300.0  # a sink that is down is tried again with one message this often


class Verdict(enum.Enum):
    SENT = "sent"
    RETRY = "retry"  # 5xx, 408, 429, timeouts, refused connections: may pass later
    REJECTED = "rejected"  # any other answer: the same message would be refused again


@dataclass(frozen=True)
class Attempt:
    """How one delivery attempt went; `problem` never holds the URL or a credential."""

    verdict: Verdict
    problem: str = ""
    status: int | None = None
    retry_after: float | None = None


def verdict_of(status: int) -> Verdict:
    if 200 <= status < 300:
        return Verdict.SENT
    if status in (408, 425, 429) or status >= 500:
        return Verdict.RETRY
    return Verdict.REJECTED


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds from `now`: delta-seconds or an HTTP date; None if absent or bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive one is read as such
        return None
    return max(when.timestamp() - now, 0.0)


def retry_delay(failures: int, retry_after: float | None) -> float:
    """The wait after the `failures`-th failed attempt: doubling from 1 s, or what was asked."""
    backoff = min(BACKOFF_FIRST * 2.0 ** min(failures - 1, 30), BACKOFF_CAP)
    if retry_after is None or not math.isfinite(retry_after):
        return backoff
    return min(max(retry_after, 0.0), RETRY_AFTER_CAP)


class RateLimit:
    """A token bucket: at most `per_minute` messages in any minute, a burst of that many."""

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._tokens = self.capacity
        self._at = now

    def delay(self, now: float) -> float:
        """Seconds until a message may go; 0 when it may go now."""
        tokens = self._refill(now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self._rate

    def take(self, now: float) -> None:
        self._tokens = self._refill(now) - 1.0
        self._at = now

    def _refill(self, now: float) -> float:
        return min(self.capacity, self._tokens + max(now - self._at, 0.0) * self._rate)


class Repeats:
    """Keys seen within `window` seconds: the first is sent, repeats within the window are not."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._first_seen: dict[str, float] = {}

    def repeat(self, key: str, now: float) -> bool:
        """Whether `key` was let through less than `window` ago; records it when not."""
        self._first_seen = {k: t for k, t in self._first_seen.items() if now - t < self.window}
        if key in self._first_seen:
            return True
        self._first_seen[key] = now
        return False


@dataclass
class SinkHealth:
    """Whether a sink is up; while down, one message every DOWN_PROBE_SECONDS is tried."""

    down_since: float | None = None
    probe_at: float = 0.0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def admit(self, now: float) -> bool:
        """Whether a message may be tried now (always while up; a probe while down)."""
        if self.down_since is None:
            return True
        if now >= self.probe_at:
            self.probe_at = now + DOWN_PROBE_SECONDS
            return True
        return False

    def failed(self, now: float) -> bool:
        """Record an undeliverable message; True when this takes the sink down."""
        self.probe_at = now + DOWN_PROBE_SECONDS
        if self.down_since is not None:
            return False
        self.down_since = now
        return True

    def sent(self) -> float | None:
        """Record a delivery; when the sink had gone down (None if it was up)."""
        since, self.down_since = self.down_since, None
        return since
