"""The status page: one self-contained HTML document per view, rendered from plain data.

Pure: /status's document (and a target's journal rows) in, an HTML string out,
so what a person sees is tested without a browser. No script, no external asset
(the listener forbids both with a Content-Security-Policy); the page refreshes
itself with a meta tag. Every value is escaped: commit messages, error texts and
object names come from Git and the cluster, not from us.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

REFRESH_SECONDS = 10
MAX_DRIFTS = 50
MAX_VALUE_CHARS = 80

_CSS = """
:root{color-scheme:light dark;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--mute:#6e7781}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:12px;
max-width:1100px;margin-inline:auto}
header{display:flex;flex-wrap:wrap;gap:4px 16px;align-items:baseline;margin-bottom:12px}
h1{font-size:1.3em;margin:0}h2{font-size:1.1em;margin:20px 0 8px}
.mute{color:var(--mute)}
.cards{display:grid;gap:12px;grid-template-columns:repeat(auto-fill,minmax(320px,1fr))}
.card{border:1px solid #8884;border-radius:8px;padding:10px 12px;overflow-wrap:anywhere}
.card h2{margin:0 0 6px;font-size:1.1em;display:flex;gap:8px;align-items:center;flex-wrap:wrap}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 10px;margin:0}
dt{color:var(--mute)}dd{margin:0;min-width:0}
.badge{font-size:.8em;font-weight:600;padding:1px 8px;border-radius:10px;color:#fff;
background:var(--mute);white-space:nowrap}
.ok{background:var(--ok)}.bad{background:var(--bad)}.warn{background:var(--warn)}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.92em}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#8881;padding:8px;border-radius:6px}
.error{color:var(--bad)}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.92em}
th,td{text-align:left;vertical-align:top;padding:4px 6px;border-bottom:1px solid #8883}
a{color:inherit}
"""


def index_page(status: Mapping[str, Any], *, now: float) -> str:
    """Every target as a card: revision, sync state, health, last and next pass, failures."""
    targets = status.get("targets", {})
    failing = sum(1 for t in targets.values() if _failed(t))
    cards = "".join(
        _card(name, targets[name], now, link=f"targets/{quote(name)}") for name in sorted(targets)
    )
    summary = f"{len(targets)} targets, {failing} failing"
    body = _header(status, now, summary) + (
        f'<div class="cards">{cards}</div>' if cards else "<p>No targets.</p>"
    )
    return _document(f"gitopsd: {summary}", body)


def target_page(
    status: Mapping[str, Any], name: str, drifts: Sequence[Mapping[str, Any]], *, now: float
) -> str:
    """One target: its card, its last failure in full, and its recent drift journal."""
    target = status["targets"][name]
    failure = target.get("last_failure")
    failure_html = "<p class=mute>None recorded since the daemon started.</p>"
    if failure:
        when = _when(failure.get("at"), now)
        commit = _short(failure.get("revision"))
        failure_html = (
            f"<p>{when}{f' at <code>{_e(commit)}</code>' if commit else ''}</p>"
            f'<pre class="error">{_e(failure.get("error") or "")}</pre>'
        )
    recent = list(drifts)[-MAX_DRIFTS:][::-1]
    body = (
        _header(status, now, f'<a href="../">all targets</a> / {_e(name)}')
        + _card(name, target, now, link=None)
        + f"<h2>Last failure</h2>{failure_html}"
        + f"<h2>Recent drift</h2>{_drift_table(recent, now)}"
    )
    return _document(f"gitopsd: {name}", body)


def _document(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _header(status: Mapping[str, Any], now: float, summary: str) -> str:
    mode = " · dry run" if status.get("dry_run") else ""
    return (
        f"<header><h1>gitopsd</h1><span>{summary}</span>"
        f'<span class="mute">v{_e(str(status.get("version", "")))}{mode} · '
        f"{_e(_utc(now))} · refreshes every {REFRESH_SECONDS}s</span></header>"
    )


def _card(name: str, target: Mapping[str, Any], now: float, *, link: str | None) -> str:
    title = f'<a href="{_e(link)}">{_e(name)}</a>' if link else _e(name)
    label, tone = _state(target)
    running = '<span class="badge warn">running</span>' if target.get("running") else ""
    rows = [
        ("revision", _revision(target)),
        ("health", _e(str(target.get("health") or "unknown"))),
        ("last pass", _last_pass(target, now)),
        ("next run", _next_run(target, now)),
        ("failures", _failures(target, now)),
    ]
    if target.get("waiting_for"):  # depends_on: the dependency not ready, and why
        rows.append(("waiting", _e(str(target["waiting_for"]))))
    if target.get("lease_holder"):  # present once HA reports it
        rows.append(("lease", _e(str(target["lease_holder"]))))
    cells = "".join(f"<dt>{key}</dt><dd>{value}</dd>" for key, value in rows)
    return (
        f'<section class="card" id="target-{_e(name)}"><h2>{title}'
        f'<span class="badge {tone}">{label}</span>{running}</h2><dl>{cells}</dl></section>'
    )


def _state(target: Mapping[str, Any]) -> tuple[str, str]:
    if target.get("last_pass") is None:
        return "not run yet", ""
    if _failed(target):
        return "failing", "bad"
    if target.get("in_sync"):
        return "in sync", "ok"
    return "out of sync", "warn"


def _failed(target: Mapping[str, Any]) -> bool:
    last = target.get("last_pass") or {}
    return bool(last.get("outcome") == "failed")


def _revision(target: Mapping[str, Any]) -> str:
    commit = _short(target.get("revision"))
    if not commit:
        return '<span class="mute">none yet</span>'
    message = target.get("revision_message") or ""
    author = target.get("revision_author") or ""
    text = f"<code>{_e(commit)}</code>"
    if message:
        text += f" {_e(message)}"
    if author:
        text += f' <span class="mute">by {_e(author)}</span>'
    return text


def _last_pass(target: Mapping[str, Any], now: float) -> str:
    last = target.get("last_pass")
    if not last:
        return '<span class="mute">none yet</span>'
    duration = last.get("duration_seconds") or 0.0
    writes = last.get("writes", 0)
    return (
        f"{_e(str(last.get('outcome')))}, {_when(last.get('started_at'), now)}, "
        f"took {duration:.2f}s, {writes} write{'s' * (writes != 1)}"
    )


def _next_run(target: Mapping[str, Any], now: float) -> str:
    at = target.get("next_run_at")
    if at is None:
        return '<span class="mute">not scheduled</span>'
    return _when(at, now)


def _failures(target: Mapping[str, Any], now: float) -> str:
    count = target.get("consecutive_failures") or 0
    if not count:
        return "0"
    error = target.get("last_error") or ""
    return f'<span class="error">{count} in a row: {_e(error)}</span>'


def _drift_table(drifts: Sequence[Mapping[str, Any]], now: float) -> str:
    if not drifts:
        return '<p class="mute">No drift journaled.</p>'
    rows = "".join(
        "<tr>"
        f"<td>{_when(row.get('time'), now)}</td>"
        f"<td>{_e(_object(row))}</td>"
        f"<td>{_e(str(row.get('action', '')))}</td>"
        f"<td>{_fields(row.get('fields') or [])}</td>"
        f"<td>{_e(', '.join(_managers(row.get('managers') or [])))}</td>"
        "</tr>"
        for row in drifts
    )
    head = "<tr><th>when</th><th>object</th><th>action</th><th>fields</th><th>changed by</th></tr>"
    return f'<div class="scroll"><table>{head}{rows}</table></div>'


def _object(row: Mapping[str, Any]) -> str:
    where = f"{row['namespace']}/" if row.get("namespace") else ""
    return f"{row.get('kind', '')} {where}{row.get('name', '')}"


def _fields(fields: Sequence[Mapping[str, Any]]) -> str:
    if not fields:
        return '<span class="mute">—</span>'
    return "<br>".join(
        f"<code>{_e(str(f.get('path', '')))}</code>: {_e(_value(f.get('live')))} → "
        f"{_e(_value(f.get('desired')))}"
        for f in fields
    )


def _managers(managers: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted({str(m.get("manager", "")) for m in managers if m.get("manager")})


def _value(value: Any) -> str:
    text = "absent" if value is None else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _when(at: float | None, now: float) -> str:
    if at is None:
        return '<span class="mute">never</span>'
    return f'<span title="{_e(_utc(at))}">{_e(_relative(at - now))}</span>'


def _relative(seconds: float) -> str:
    span = abs(seconds)
    if span < 1:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if span >= size:
            amount = f"{int(span // size)}{unit}"
            return f"in {amount}" if seconds > 0 else f"{amount} ago"
    return "now"


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(commit: object) -> str:
    return str(commit)[:12] if commit else ""


def _e(text: str) -> str:
    return escape(text, quote=True)
