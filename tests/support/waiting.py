"""Waiting for a condition in tests: one polling loop, so no test sleeps and then asserts.

A test names what it waits for and a timeout; the loop re-checks at a short interval
and fails with that name when the time is up, however busy the machine is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")

# Short enough that a met condition is seen at once; the timeout is the only real bound.
_INTERVAL = 0.01


def eventually(condition: Callable[[], object], timeout: float, every: float = _INTERVAL) -> bool:
    """Whether `condition()` became truthy within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: a wait on it is an interruptible pause
    while not condition():
        if time.monotonic() > deadline:
            return False
        pause.wait(every)
    return True


def wait_until(
    condition: Callable[[], _T | None], what: str, timeout: float, every: float = _INTERVAL
) -> _T:
    """The first truthy result of `condition()`; AssertionError naming `what` after `timeout`."""
    found: list[_T] = []

    def met() -> bool:
        result = condition()
        if result:
            found.append(result)
        return bool(result)

    if not eventually(met, timeout, every):
        raise AssertionError(f"not reached within {timeout:g}s: {what}")
    return found[-1]
