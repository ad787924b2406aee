"""The `notify:` list of the configuration: sinks, the events they want, delivery limits.

Apart from config.py, which stays the home of the target settings; config.py
calls `read_sinks` and hands it its secret reader, so secrets are read by one
set of rules (`*_file` / `*_env`, never inline).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gitopsd.configread import Section
from gitopsd.notifications import EMITTED, EventType, Forge, default_api_url

if TYPE_CHECKING:
    from gitopsd.config import SecretRef


class SinkType(enum.Enum):
    WEBHOOK = "webhook"
    SLACK = "slack"
    COMMIT_STATUS = "commit_status"


@dataclass(frozen=True)
class SinkSettings:
    """One notification sink. URLs, secrets and tokens are read when the daemon starts."""

    name: str
    type: SinkType
    url: str | None = None  # webhook only; a URL carrying a token belongs in url_file
    url_ref: SecretRef | None = None
    secret: SecretRef | None = None  # webhook: signs the body (X-Gitopsd-Signature-256)
    forge: Forge | None = None  # commit_status
    api_url: str | None = None
    token: SecretRef | None = None
    repository: str | None = None  # None: from each target's repository URL
    status_url: str | None = None  # the status page as readers reach it, for links
    events: frozenset[EventType] = EMITTED
    targets: frozenset[str] = frozenset()  # empty: every target
    timeout_seconds: float = 10.0
    max_attempts: int = 5
    queue_size: int = 100
    dedupe_window_seconds: float = 600.0
    max_per_minute: int = 30


SecretReader = Callable[[Section, str], "SecretRef | None"]

# Key tables stay packed (fmt: skip): one key per line would fill a screen for nothing.
_COMMON = {
    "name", "type", "events", "targets", "status_url", "timeout", "max_attempts", "queue_size",
    "dedupe_window", "max_per_minute",
}  # fmt: skip
_ONLY = {
    SinkType.WEBHOOK: {"url", "url_file", "url_env", "secret", "secret_file", "secret_env"},
    SinkType.SLACK: {"url", "url_file", "url_env"},
    SinkType.COMMIT_STATUS: {"forge", "api_url", "token", "token_file", "token_env", "repository"},
}
_KEYS = _COMMON.union(*_ONLY.values())
_MAX_TIMEOUT = 300.0


def read_sinks(
    top: Section, targets: Collection[str], secret: SecretReader
) -> tuple[SinkSettings, ...]:
    """Every sink of `notify:`, checked; names are unique (they label logs and metrics)."""
    sinks = tuple(_sink(top, where, item, targets, secret) for where, item in top.items("notify"))
    seen: set[str] = set()
    for index, sink in enumerate(sinks):
        if sink.name in seen:
            raise top.error(
                f"two sinks are called {sink.name!r}: give each a distinct name",
                key=f"notify[{index}].name",
            )
        seen.add(sink.name)
    return sinks


def _sink(
    top: Section, where: str, item: object, targets: Collection[str], secret: SecretReader
) -> SinkSettings:
    node = Section(item, file=top.file, where=where, keys=_KEYS)
    if not node.has("type"):
        raise node.error("is required: webhook, slack or commit_status", key="type")
    kind = node.choice("type", SinkType, SinkType.WEBHOOK)
    for key in node.data:
        if key not in _COMMON and key not in _ONLY[kind]:
            raise node.error(f"does not apply to a {kind.value} sink", key=key)
    common = SinkSettings(
        name=node.text("name", kind.value) or kind.value,
        type=kind,
        status_url=_http_url(node, "status_url"),
        events=_events(node, kind),
        targets=_targets(node, targets),
        timeout_seconds=node.duration("timeout", 10.0, maximum=_MAX_TIMEOUT) or 10.0,
        max_attempts=node.integer("max_attempts", 5),
        queue_size=node.integer("queue_size", 100),
        dedupe_window_seconds=node.duration("dedupe_window", 600.0) or 600.0,
        max_per_minute=node.integer("max_per_minute", 30),
    )
    if kind is SinkType.COMMIT_STATUS:
        return _commit_status(node, secret, common)
    return _posting(node, kind, secret, common)


def _posting(
    node: Section, kind: SinkType, secret: SecretReader, common: SinkSettings
) -> SinkSettings:
    if kind is SinkType.SLACK and node.has("url"):
        raise node.error(
            "a Slack webhook URL carries its token: give it in url_file or url_env", key="url"
        )
    url = _http_url(node, "url")
    if url is not None and (node.has("url_file") or node.has("url_env")):
        raise node.error("give url, url_file or url_env, only one", key="url")
    url_ref = secret(node, "url") if url is None else None
    if url is None and url_ref is None:
        raise node.error(f"a {kind.value} sink needs url, url_file or url_env")
    signing = secret(node, "secret") if kind is SinkType.WEBHOOK else None
    return replace(common, url=url, url_ref=url_ref, secret=signing)


def _commit_status(node: Section, secret: SecretReader, common: SinkSettings) -> SinkSettings:
    if not node.has("forge"):
        raise node.error("is required: github, gitlab, gitea or forgejo", key="forge")
    forge = node.choice("forge", Forge, Forge.GITHUB)
    api_url = _http_url(node, "api_url") or default_api_url(forge)
    if api_url is None:
        raise node.error(f"{forge.value} has no public default: give its API URL", key="api_url")
    token = secret(node, "token")
    if token is None:
        raise node.error("a commit_status sink needs token_file or token_env")
    repository = node.text("repository")
    if repository is not None and forge is not Forge.GITLAB and repository.count("/") != 1:
        raise node.error(f"{repository!r} is not owner/name", key="repository")
    return replace(
        common, forge=forge, api_url=api_url.rstrip("/"), token=token, repository=repository
    )


def _http_url(node: Section, key: str) -> str | None:
    value = node.text(key)
    if value is None:
        return None
    url = urlsplit(value)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise node.error("must be an http:// or https:// URL", key=key)
    return value


def _events(node: Section, kind: SinkType) -> frozenset[EventType]:
    if kind is SinkType.COMMIT_STATUS:
        if node.has("events"):
            raise node.error("a commit_status sink follows every pass: remove events", key="events")
        return frozenset()
    names = node.strings("events")
    if not node.has("events"):
        return EMITTED
    if not names:
        raise node.error("must name at least one event", key="events")
    emitted = ", ".join(sorted(e.value for e in EMITTED))
    events = set()
    for name in names:
        try:
            event = EventType(name)
        except ValueError:
            raise node.error(f"{name!r} is not an event; events: {emitted}", key="events") from None
        events.add(event)
    return frozenset(events)


def _targets(node: Section, targets: Collection[str]) -> frozenset[str]:
    names = node.strings("targets")
    for name in names:
        if name not in targets:
            raise node.error(f"no target named {name!r}", key="targets")
    return frozenset(names)
