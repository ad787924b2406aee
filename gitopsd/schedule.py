"""Scheduling decisions apart from the scheduler: backoff, per-target state, reload diffing.

Plain data and locks, no APScheduler, so the rules are tested without threads
or time passing; daemon.py carries them out.
"""

from __future__ import annotations


def backoff_seconds(failures: int, interval: float, cap: float) -> float:
    """Delay before retrying after `failures` consecutive failures: doubling, capped."""
    if failures <= 1:
        return interval
    return min(interval * (1 << min(failures - 1, 30)), max(cap, interval))
