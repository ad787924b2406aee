"""What gitopsd shows instead of a secret value (gitopsd.standin), for assertions."""

from __future__ import annotations

from pathlib import Path

from gitopsd.standin import installation_key, stand_in


def shown_as(value: str, state_dir: Path | None = None) -> str:
    """`<redacted hmac:...>` for `value`: under the key of the installation at `state_dir`
    (a gitopsd command run by the test), else this process's key (in-process tests)."""
    key = installation_key(state_dir) if state_dir is not None else None
    return stand_in(value.encode(), key)
