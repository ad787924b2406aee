"""`gitopsd history`: the journal's passes and drift events, as a table or JSON."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

_VALUE_WIDTH = 40
# `gitopsd history` without --since or --all: the newest entries only, however old the journal.
DEFAULT_ENTRIES = 50


def last_entries(
    passes: list[dict[str, Any]],
    drifts: list[dict[str, Any]],
    events: list[dict[str, Any]],
    count: int | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The `count` newest of passes, drifts and events together (all for None), each list
    oldest first."""
    if count is None:
        return passes, drifts, events
    stamped = [(p["started_at"], p["id"], 0, i) for i, p in enumerate(passes)]
    stamped += [(d["time"], d["id"], 1, i) for i, d in enumerate(drifts)]
    stamped += [(e["time"], e["id"], 2, i) for i, e in enumerate(events)]
    kept = {(source, index) for _, _, source, index in sorted(stamped)[-count:]} if count else set()
    return (
        [p for i, p in enumerate(passes) if (0, i) in kept],
        [d for i, d in enumerate(drifts) if (1, i) in kept],
        [e for i, e in enumerate(events) if (2, i) in kept],
    )


def print_history(
    passes: list[dict[str, Any]],
    drifts: list[dict[str, Any]],
    as_json: bool,
    out: TextIO | None = None,
    events: list[dict[str, Any]] | None = None,
) -> None:
    """Write passes, drifts and other events (history rewrites), oldest first, to `out`."""
    out = out or sys.stdout
    events = events or []
    if as_json:
        document = {"passes": passes, "drifts": drifts, "events": events}
        json.dump(document, out, indent=2, default=str)
        out.write("\n")
        return
    rows = [(p["started_at"], _pass_row(p)) for p in passes]
    rows += [(d["time"], _drift_row(d)) for d in drifts]
    rows += [(e["time"], _event_row(e)) for e in events]
    rows.sort(key=lambda row: row[0])
    if not rows:
        out.write("no passes recorded\n")
        return
    for at, (target, event, detail) in rows:
        out.write(f"{_when(at)}  {target:<16} {event:<17} {detail}\n")


def _pass_row(row: dict[str, Any]) -> tuple[str, str, str]:
    revision = (row.get("revision") or "-")[:12]
    detail = f"{revision}  {row.get('writes', 0)} writes  {row.get('duration_seconds', 0):.2f}s"
    if row.get("error"):
        detail += f"  error: {row['error']}"
    return row["target"], f"pass {row['outcome']}", detail


def _drift_row(row: dict[str, Any]) -> tuple[str, str, str]:
    kind = f"{row['kind']}.{row['group']}" if row.get("group") else row["kind"]
    where = f"{row['namespace']}/" if row.get("namespace") else ""
    detail = f"{kind} {where}{row['name']}"
    fields = [_field(f) for f in row.get("fields") or []]
    if fields:
        detail += ": " + "; ".join(fields)
    managers = sorted({_manager(m) for m in row.get("managers") or []})
    if managers:
        detail += f"  (changed by {', '.join(managers)})"
    if row.get("error"):
        detail += f"  error: {row['error']}"
    return row["target"], row["action"], detail


def _event_row(row: dict[str, Any]) -> tuple[str, str, str]:
    detail = row.get("detail") or {}
    if row["event"] == "history_rewritten":
        text = f"{str(detail.get('previous'))[:12]} -> {str(detail.get('revision'))[:12]}"
    elif row["event"] == "health_changed":
        text = f"{detail.get('from')} -> {detail.get('to')}"
        text += f": {detail['reason']}" if detail.get("reason") else ""
    else:
        text = json.dumps(detail, sort_keys=True)
    return row["target"], row["event"], text


def _field(change: Any) -> str:
    if not isinstance(change, dict):
        return str(change)
    live, desired = _short(change.get("live")), _short(change.get("desired"))
    return f"{change.get('path')} live {live}, git {desired}"


def _manager(owner: Any) -> str:
    return str(owner.get("manager")) if isinstance(owner, dict) else str(owner)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 1] + "…"


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
