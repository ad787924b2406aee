"""API requests by verb, read from the kube-apiserver's audit log.

A measured run is bracketed by two offsets into the log; only the lines in
between, from the admin user (both tools use the admin certificate; the
apiserver's own loopback traffic is `system:apiserver`), at stage
ResponseComplete, are counted. The benchmark runs one tool at a time, so the
window is that tool's traffic.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
TOOL_USER = "admin"


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def offset(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def counts(self, start: int, *, settle: float = 0.3) -> dict[str, int]:
        """Requests since `start` by verb; dry-run patches and discovery apart."""
        time.sleep(settle)  # the last ResponseComplete event can trail the client's exit
        counts: Counter[str] = Counter()
        with self.path.open("rb") as log:
            log.seek(start)
            for line in log:
                if not line.endswith(b"\n"):
                    break
                event = json.loads(line)
                if event.get("stage") != "ResponseComplete":
                    continue
                if (event.get("user") or {}).get("username") != TOOL_USER:
                    continue
                counts[classify(event)] += 1
        return dict(sorted(counts.items()))


def classify(event: dict[str, object]) -> str:
    verb = str(event.get("verb", "?"))
    uri = str(event.get("requestURI", ""))
    if event.get("objectRef") is None:
        return "discovery" if verb == "get" else f"nonresource-{verb}"
    if verb in ("patch", "create", "update") and "dryRun=All" in uri:
        return f"{verb}-dryrun"
    return verb


def writes(counts: dict[str, int]) -> int:
    return sum(n for verb, n in counts.items() if verb in WRITE_VERBS)


def lists_by_resource(path: Path, start: int) -> dict[str, int]:
    """List requests since `start` by resource (for 'at most one list per kind')."""
    found: Counter[str] = Counter()
    with path.open("rb") as log:
        log.seek(start)
        for line in log:
            if not line.endswith(b"\n"):
                break
            event = json.loads(line)
            if event.get("stage") != "ResponseComplete" or event.get("verb") != "list":
                continue
            if (event.get("user") or {}).get("username") != TOOL_USER:
                continue
            ref = event.get("objectRef") or {}
            where = f" in {ref['namespace']}" if ref.get("namespace") else ""
            found[f"{ref.get('apiGroup') or 'core'}/{ref.get('resource')}{where}"] += 1
    return dict(sorted(found.items()))
