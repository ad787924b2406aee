"""Git source stage: fetch a target's remote, resolve its ref, read its declared tree."""

from __future__ import annotations

from gitopsd.source.git import GitSource
from gitopsd.source.redact import redact_url

__all__ = ["GitSource", "redact_url"]
