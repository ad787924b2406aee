"""A target's watch settings: `watch` and `watch_debounce`.

Kept apart from config.py so the keys, defaults and checks live in one place;
config.py only calls `read_watch` for each target.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitopsd.configread import Section

WATCH_KEYS = frozenset({"watch", "watch_debounce"})
_MAX_DEBOUNCE_SECONDS = 60.0


@dataclass(frozen=True)
class WatchSettings:
    """Whether the daemon watches the target's objects, and how long a burst may last."""

    enabled: bool = True  # daemon mode only: --once, diff and validate always list
    debounce_seconds: float = 0.1  # from a drift's event to the pass that corrects it


def read_watch(node: Section) -> WatchSettings:
    """The target's watch settings; ConfigError naming the key when one is wrong."""
    debounce = node.duration("watch_debounce", 0.1, maximum=_MAX_DEBOUNCE_SECONDS)
    return WatchSettings(node.flag("watch", True), debounce or 0.1)
