"""Delivery rules on plain numbers: verdicts, Retry-After, backoff, rate limit, repeats, outages."""

from __future__ import annotations

import pytest

from gitopsd.delivery import (
    DOWN_PROBE_SECONDS,
    RateLimit,
    Repeats,
    SinkHealth,
    Verdict,
    retry_after_seconds,
    retry_delay,
    verdict_of,
)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.SENT),
        (201, Verdict.SENT),
        (204, Verdict.SENT),
        (408, Verdict.RETRY),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
        (301, Verdict.REJECTED),
        (400, Verdict.REJECTED),
        (401, Verdict.REJECTED),
        (404, Verdict.REJECTED),
        (422, Verdict.REJECTED),
    ],
)
def test_verdict_of_a_status(status: int, verdict: Verdict) -> None:
    assert verdict_of(status) is verdict


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),  # 30 s after `now` below
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # already past
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert retry_after_seconds(value, now) == seconds


def test_retry_delay_doubles_to_a_cap_unless_the_receiver_says() -> None:
    assert [retry_delay(n, None) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert retry_delay(1, 7.0) == 7.0
    assert retry_delay(3, 0.5) == 0.5  # the receiver knows best, even when sooner
    assert retry_delay(1, 10**9) == 3600.0


def test_rate_limit_lets_a_burst_through_then_one_per_share_of_the_minute() -> None:
    limit = RateLimit(per_minute=2, now=0.0)
    assert limit.delay(0.0) == 0.0
    limit.take(0.0)
    limit.take(0.0)
    assert limit.delay(0.0) == 30.0
    assert limit.delay(12.0) == 18.0
    assert limit.delay(30.0) == 0.0
    limit.take(30.0)
    assert limit.delay(30.0) == 30.0


def test_repeats_within_the_window_are_collapsed() -> None:
    repeats = Repeats(window=600.0)
    assert repeats.repeat("a", 0.0) is False
    assert repeats.repeat("a", 599.0) is True
    assert repeats.repeat("b", 599.0) is False
    assert repeats.repeat("a", 600.0) is False  # a reminder after the window
    assert repeats.repeat("a", 700.0) is True


def test_a_down_sink_is_probed_every_five_minutes_and_comes_back_on_a_delivery() -> None:
    health = SinkHealth()
    assert health.admit(0.0) and not health.down
    assert health.failed(10.0) is True  # went down: the one error is logged by the caller
    assert health.failed(11.0) is False  # already down: no second error
    assert not health.admit(12.0)
    assert not health.admit(11.0 + DOWN_PROBE_SECONDS - 1)
    assert health.admit(11.0 + DOWN_PROBE_SECONDS)
    assert not health.admit(11.0 + DOWN_PROBE_SECONDS)  # one probe per period
    assert health.sent() == 10.0 and not health.down
    assert health.sent() is None
