"""The status page as HTML from plain data: content, escaping, self-containment, phones."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from gitopsd.statuspage import index_page, target_page

NOW = 1_800_000_000.0
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def target(**changes: Any) -> dict[str, Any]:
    entry = {
        "revision": COMMIT,
        "revision_message": "Raise <web> replicas & limits",
        "revision_author": "Ada <ada@example.com>",
        "in_sync": True,
        "last_pass": {
            "outcome": "converged",
            "started_at": NOW - 125,
            "duration_seconds": 1.234,
            "writes": 2,
        },
        "last_error": None,
        "last_success_at": NOW - 124,
        "consecutive_failures": 0,
        "health": "ok",
        "running": False,
        "interval_seconds": 60.0,
        "next_run_at": NOW + 42,
        "last_failure": None,
    }
    return entry | changes


def status(**targets: dict[str, Any]) -> dict[str, Any]:
    return {"version": "0.1.0", "config": "/etc/g.yaml", "dry_run": False, "targets": targets}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


def text(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def test_index_shows_every_target_with_what_a_person_asks_first() -> None:
    failing = target(
        in_sync=False,
        last_pass={
            "outcome": "failed",
            "started_at": NOW - 5,
            "duration_seconds": 0.5,
            "writes": 0,
        },
        last_error="target api: a.yaml#0: kind is missing",
        consecutive_failures=3,
        health="failed",
    )
    page = index_page(status(web=target(), api=failing), now=NOW)
    shown = text(page)
    assert "2 targets, 1 failing" in shown
    assert (
        "0123456789ab Raise &lt;web&gt; replicas &amp; limits by Ada &lt;ada@example.com&gt;"
        in shown
    )
    assert "converged, 2m ago , took 1.23s, 2 writes" in shown
    assert "in 42s" in shown
    assert "3 in a row: target api: a.yaml#0: kind is missing" in shown
    # api sorts first; each card links to the target's page, relative to where the page is.
    links = [a["href"] for t, a in tags(page) if t == "a"]
    assert links == ["targets/api", "targets/web"]
    badges = re.findall(r'class="badge (\w*)">([^<]+)<', page)
    assert badges == [("bad", "failing"), ("ok", "in sync")]


def test_the_page_is_self_contained_refreshes_and_fits_a_phone() -> None:
    page = index_page(status(web=target()), now=NOW)
    found = tags(page)
    metas = [attrs for tag, attrs in found if tag == "meta"]
    assert {"name": "viewport", "content": "width=device-width, initial-scale=1"} in metas
    assert {"http-equiv": "refresh", "content": "10"} in metas
    assert not [tag for tag, _ in found if tag in ("script", "img", "link", "iframe")]
    assert "http://" not in page and "https://" not in page and "url(" not in page


def test_everything_from_git_and_the_cluster_is_escaped() -> None:
    evil = '"><script>alert(1)</script>'
    page = index_page(
        status(web=target(revision_message=evil, revision_author=evil, last_error=evil)), now=NOW
    )
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_target_that_never_ran() -> None:
    fresh = target(revision=None, in_sync=None, last_pass=None, health="unknown", next_run_at=None)
    shown = text(index_page(status(web=fresh), now=NOW))
    assert "not run yet" in shown and "none yet" in shown and "not scheduled" in shown


def test_target_page_has_the_drift_journal_and_the_last_failure_in_full() -> None:
    failure = {
        "at": NOW - 3600,
        "revision": COMMIT,
        "error": "target web: apply refused:\n  ConfigMap prod/app: <invalid>",
    }
    drifts = [
        {
            "time": NOW - 60 * i,
            "kind": "ConfigMap",
            "namespace": "prod",
            "name": f"cm-{i}",
            "action": "corrected",
            "fields": [{"path": "/data/v", "desired": "1", "live": {"x": "<2>"}}],
            "managers": [{"manager": "kubectl-edit", "operation": "Update", "time": "t"}],
        }
        for i in reversed(range(60))  # the journal's order: oldest first
    ]
    page = target_page(status(web=target(last_failure=failure)), "web", drifts, now=NOW)
    shown = text(page)
    assert "1h ago at 0123456789ab" in shown
    # In full: the newline is kept inside <pre>.
    assert "target web: apply refused:\n  ConfigMap prod/app: &lt;invalid&gt;</pre>" in page
    rows = re.findall(r"<tr><td>", page)
    assert len(rows) == 50  # the most recent 50, newest first
    assert "ConfigMap prod/cm-0" in shown and "cm-59" not in shown
    assert "/data/v : {&quot;x&quot;: &quot;&lt;2&gt;&quot;} → &quot;1&quot;" in shown
    assert "kubectl-edit" in shown
    assert [a["href"] for t, a in tags(page) if t == "a"] == ["../"]


def test_target_page_without_drift_or_failure() -> None:
    shown = text(target_page(status(web=target()), "web", [], now=NOW))
    assert "None recorded since the daemon started." in shown and "No drift journaled." in shown


def test_a_pass_in_progress_shows_beside_the_last_known_state() -> None:
    page = index_page(status(web=target(running=True)), now=NOW)
    badges = re.findall(r'class="badge (\w*)">([^<]+)<', page)
    assert badges == [("ok", "in sync"), ("warn", "running")]
