"""The `ha:` section: the coordination cluster and the Lease timings of several replicas.

Apart from config.py, which stays the home of the target settings; config.py calls
`read_ha`. Without the section gitopsd runs alone (the state-directory lock guards it).
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from gitopsd.configread import Section

# Packed (fmt: skip) like config.py's key tables: one key a line would fill a screen.
HA_KEYS = {
    "kubeconfig", "context", "namespace", "lease_duration", "renew_deadline", "retry_period",
    "identity",
}  # fmt: skip
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_MAX_LEASE_SECONDS = 3600.0


@dataclass(frozen=True)
class HaSettings:
    """Where the Leases live and how long they last; `identity` names this replica."""

    identity: str
    kubeconfig: Path | None = None  # None: the in-cluster service account
    context: str | None = None
    namespace: str = "gitopsd-system"
    lease_duration_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_period_seconds: float = 2.0


def default_identity() -> str:
    """Host name and process id: unique among replicas, and says where to look."""
    return f"{socket.gethostname()}-{os.getpid()}"


def read_ha(top: Section) -> HaSettings | None:
    """The `ha:` section, or None when there is none; the timings must nest."""
    node = top.section("ha", HA_KEYS)
    if node is None:
        return None
    namespace = node.text("namespace", "gitopsd-system") or "gitopsd-system"
    if not _DNS_LABEL.fullmatch(namespace):
        raise node.error(f"{namespace!r} is not a valid namespace name", key="namespace")
    duration = node.duration("lease_duration", 15.0, maximum=_MAX_LEASE_SECONDS) or 15.0
    deadline = node.duration("renew_deadline", 10.0, maximum=_MAX_LEASE_SECONDS) or 10.0
    retry = node.duration("retry_period", 2.0, maximum=_MAX_LEASE_SECONDS) or 2.0
    if deadline >= duration:
        raise node.error(
            f"must be shorter than lease_duration ({duration:g}s), not {deadline:g}s",
            key="renew_deadline",
        )
    if retry >= deadline:
        raise node.error(
            f"must be shorter than renew_deadline ({deadline:g}s), not {retry:g}s",
            key="retry_period",
        )
    return HaSettings(
        identity=node.text("identity") or default_identity(),
        kubeconfig=node.path("kubeconfig"),
        context=node.text("context"),
        namespace=namespace,
        lease_duration_seconds=duration,
        renew_deadline_seconds=deadline,
        retry_period_seconds=retry,
    )
