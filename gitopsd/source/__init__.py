"""Git source stage: fetch a target's remote, resolve its ref, read its declared tree.

The re-exports are resolved lazily: the configuration loader imports the pure
`gitopsd.source.refs`, and an eager import of `git` here would import the
loader back before it is defined (and pygit2 with it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gitopsd.source.git import GitSource
    from gitopsd.source.redact import redact_url

__all__ = ["GitSource", "redact_url"]


def __getattr__(name: str) -> Any:
    if name == "GitSource":
        from gitopsd.source.git import GitSource

        return GitSource
    if name == "redact_url":
        from gitopsd.source.redact import redact_url

        return redact_url
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
