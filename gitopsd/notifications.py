"""What a pass tells the outside world: events, and the messages each kind of sink sends.

Pure: a finished pass (and the health change the status board saw) becomes
events; an event becomes a webhook body, a Slack message or a forge's commit
status request. Sending them is gitopsd.sinks' job, so every message is tested
here on plain data. Field values arrive already redacted (Secret data is a hash:
see normalize), and nothing here ever sees a token or a webhook URL.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from gitopsd import __version__
from gitopsd.model import Action, ChangeSetEntry, FieldChange, Revision
from gitopsd.passresult import PassOutcome, PassResult, one_line

SIGNATURE_HEADER = "X-Gitopsd-Signature-256"
BODY_VERSION = 1
MAX_OBJECTS = 100  # per webhook body; `objects_total` tells how many there were
MAX_SLACK_OBJECTS = 15
MAX_VALUE_CHARS = 1024
MAX_DESCRIPTION = 140  # GitHub refuses longer commit status descriptions


class EventType(enum.Enum):
    DRIFT_CORRECTED = "drift_corrected"
    PASS_FAILED = "pass_failed"
    TARGET_RECOVERED = "target_recovered"
    HEALTH_CHANGED = "health_changed"  # a workload went to or from progressing or degraded
    # Not from a pass: the watches saw another writer undo the same correction again and
    # again (watching.py), or this replica stopped holding a target's Lease (coordinator.py).
    DRIFT_FIGHT = "drift_fight"
    LEASE_LOST = "lease_lost"


EMITTED = frozenset(EventType)
# The coarse healths (status.health_of) that say a workload is not up. `waiting` (for a
# dependency) is left out: every daemon start has dependents wait for their dependency's
# first pass, and the dependency's own health_changed is the news.
_NOT_UP = frozenset({"progressing", "degraded"})
_NOT_A_FAILURE = frozenset({"ok", "unknown", "waiting"})


class Forge(enum.Enum):
    GITHUB = "github"
    GITLAB = "gitlab"
    GITEA = "gitea"
    FORGEJO = "forgejo"  # Gitea's API, under another name


class CommitState(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    PENDING = "pending"


@dataclass(frozen=True)
class HealthChange:
    """A target's coarse health before and after a pass (see status.health_of)."""

    previous: str
    current: str


@dataclass(frozen=True)
class Event:
    """One thing worth telling people about one target."""

    type: EventType
    target: str
    at: float
    outcome: str
    revision: Revision | None = None
    objects: tuple[ChangeSetEntry, ...] = ()
    error: str | None = None
    health: str = "ok"
    previous_health: str | None = None
    # health_changed: the worst object, or the dependency waited for; drift_fight and
    # lease_lost: what happened
    reason: str = ""

    @property
    def commit(self) -> str | None:
        return self.revision.commit if self.revision is not None else None


def pass_events(
    result: PassResult, change: HealthChange | None, *, dry_run: bool
) -> tuple[Event, ...]:
    """The events one finished pass produces, recovery first."""
    at = result.started_at + result.duration_seconds
    base = Event(EventType.PASS_FAILED, result.target, at, result.outcome.value, result.revision)
    health = change.current if change is not None else _health(result)
    events: list[Event] = []
    if change is not None and change.current == "ok" and change.previous not in _NOT_A_FAILURE:
        recovered = replace(base, type=EventType.TARGET_RECOVERED, previous_health=change.previous)
        events.append(recovered)
    if result.outcome is PassOutcome.FAILED:
        failed = tuple(e for e in result.changes.entries if e.action is Action.FAILED)
        error = str(result.error) if result.error is not None else "failed"
        events.append(replace(base, objects=failed, error=error, health=health))
    if change is not None and {change.previous, change.current} & _NOT_UP:
        why = result.waiting_for or result.health_reason
        events.append(
            replace(
                base,
                type=EventType.HEALTH_CHANGED,
                health=change.current,
                previous_health=change.previous,
                reason=why,
            )
        )
    written = tuple(e for e in result.changes.entries if e.action.wrote)
    if written and not dry_run and result.outcome.applied:
        events.append(replace(base, type=EventType.DRIFT_CORRECTED, objects=written))
    return tuple(events)


def fight_event(
    target: str, at: float, entry: ChangeSetEntry, corrections: int, window: float
) -> Event:
    """Another writer keeps undoing gitopsd's correction of `entry`'s object."""
    reason = (
        f"corrected {corrections} times within {window:g}s and changed back each time; "
        "find the other writer (managers) and stop it or add an ignore rule"
    )
    return Event(EventType.DRIFT_FIGHT, target, at, "drift_fight", objects=(entry,), reason=reason)


def lease_lost_event(target: str, at: float, identity: str, reason: str) -> Event:
    """This replica (`identity`) no longer holds `target`'s Lease; another may take it."""
    return Event(EventType.LEASE_LOST, target, at, "lease_lost", reason=f"{identity}: {reason}")


def _health(result: PassResult) -> str:
    return "ok" if result.outcome is not PassOutcome.FAILED else "failed"


def commit_state(result: PassResult) -> CommitState | None:
    """The commit status a pass gives its revision; None when it never resolved one.

    A failure a retry may fix (remote or cluster unreachable) leaves the commit
    pending, not failed: a red mark on a commit says the commit is wrong.
    """
    if result.revision is None:
        return None
    if result.outcome is PassOutcome.DEGRADED:  # applied, and a declared object failed
        return CommitState.FAILURE
    if result.outcome is PassOutcome.PROGRESSING:  # applied, not up within health_timeout
        return CommitState.PENDING
    if result.outcome.in_sync:
        return CommitState.SUCCESS
    if result.outcome is PassOutcome.WOULD_CHANGE:
        return CommitState.PENDING
    retryable = result.error is not None and result.error.retryable
    return CommitState.PENDING if retryable else CommitState.FAILURE


def describe(event: Event) -> str:
    """The event in one line, for logs, commit statuses and a message's first line."""
    where = f" at {event.revision.short}" if event.revision is not None else ""
    if event.type is EventType.DRIFT_CORRECTED:
        count = len(event.objects)
        return f"{event.target}: wrote {count} object{'s' * (count != 1)}{where}"
    if event.type is EventType.PASS_FAILED:
        return f"{event.target}: pass failed{where}: {one_line(event.error or 'failed')}"
    if event.type is EventType.TARGET_RECOVERED:
        return f"{event.target}: recovered{where} (was {event.previous_health})"
    if event.type is EventType.HEALTH_CHANGED:
        why = f": {one_line(event.reason)}" if event.reason else ""
        return f"{event.target}: {_health_move(event)}{where}{why}"
    if event.type is EventType.DRIFT_FIGHT:
        keys = ", ".join(str(e.key) for e in event.objects)
        return f"{event.target}: drift fight over {keys}"
    if event.type is EventType.LEASE_LOST:
        return f"{event.target}: lease lost by {one_line(event.reason)}"
    return f"{event.target}: {event.type.value}{where}"


def _health_move(event: Event) -> str:
    return f"health {event.previous_health} -> {event.health}"


def state_description(result: PassResult) -> str:
    """A commit status description, at most 140 characters."""
    if result.outcome.in_sync:
        text = f"{result.outcome.value}: {result.changes.writes} objects written"
    else:
        text = f"{result.outcome.value}: {one_line(result.error or result.outcome.value)}"
    return _clip(text, MAX_DESCRIPTION)


def dedupe_key(event: Event) -> str:
    """Events with equal keys say the same thing: a repeat within the window is collapsed."""
    objects = [
        (str(e.key), e.action.value, [c.path for c in e.drift.changes] if e.drift else [], e.error)
        for e in event.objects
    ]
    parts = [event.type.value, event.target, event.commit, event.error, event.previous_health]
    if event.type is EventType.HEALTH_CHANGED:  # a move to another health says something new
        parts += [event.health, event.reason]
    text = json.dumps([*parts, objects], default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# -- links -----------------------------------------------------------------------


def target_link(status_url: str | None, target: str) -> str | None:
    """The target's page on the status page, when its public address is configured."""
    if not status_url:
        return None
    return f"{status_url.rstrip('/')}/targets/{quote(target)}"


def commit_link(repo: str, commit: str) -> str | None:
    """The commit's web page, from an http(s) or SSH repository URL; None for local paths."""
    host, path = _host_and_path(repo)
    if not host or not path:
        return None
    route = "/-/commit/" if "gitlab" in host else "/commit/"
    return f"https://{host}/{path}{route}{commit}"


def repository_of(repo: str, forge: Forge) -> str | None:
    """`owner/name` (GitLab: the whole project path) from a repository URL."""
    path = _host_and_path(repo)[1]
    parts = [p for p in path.split("/") if p]
    if forge is Forge.GITLAB:
        return "/".join(parts) or None
    return "/".join(parts[-2:]) if len(parts) >= 2 else None


def _host_and_path(repo: str) -> tuple[str, str]:
    """Host (no user, password or port) and path (no `.git`) of a remote; ('', '') if local."""
    if "://" in repo:
        url = urlsplit(repo)
        if url.scheme not in ("http", "https", "ssh", "git"):
            return "", ""
        host, path = url.hostname or "", url.path
    elif ":" in repo and not repo.startswith("/"):  # scp-like: git@host:org/repo.git
        user_host, _, path = repo.partition(":")
        host = user_host.rpartition("@")[2]
    else:
        return "", ""
    return host, path.strip("/").removesuffix(".git")


def links(event: Event, *, status_url: str | None, repo: str) -> dict[str, str | None]:
    commit = event.commit
    return {
        "status": target_link(status_url, event.target),
        "commit": commit_link(repo, commit) if commit else None,
    }


# -- webhook ---------------------------------------------------------------------


def webhook_body(event: Event, link_map: dict[str, str | None]) -> bytes:
    """The documented JSON body of the `webhook` sink (README: notifications)."""
    shown = event.objects[:MAX_OBJECTS]
    document = {
        "version": BODY_VERSION,
        "event": event.type.value,
        "target": event.target,
        "time": _iso(event.at),
        "outcome": event.outcome,
        "summary": describe(event),
        "revision": _revision(event.revision),
        "health": event.health,
        "previous_health": event.previous_health,
        "error": event.error,
        "reason": event.reason or None,
        "objects": [_object(entry) for entry in shown],
        "objects_total": len(event.objects),
        "links": link_map,
        "gitopsd": {"version": __version__},
    }
    return json.dumps(document, sort_keys=True, default=str).encode()


def sign(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC of the body>`, as GitHub signs its webhooks."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _revision(revision: Revision | None) -> dict[str, str] | None:
    if revision is None:
        return None
    return {
        "commit": revision.commit,
        "short": revision.short,
        "ref": revision.ref,
        "message": revision.message,
        "author": revision.author,
    }


def _object(entry: ChangeSetEntry) -> dict[str, Any]:
    drift = entry.drift
    return {
        **entry.key.as_dict(),
        "action": entry.action.value,
        "missing": bool(drift and drift.missing),
        "fields": [_field(change) for change in (drift.changes if drift else ())],
        "managers": sorted({owner.manager for owner in (drift.owners if drift else ())}),
        "lost_managers": list(entry.lost_managers),
        "error": entry.error or None,
    }


def _field(change: FieldChange) -> dict[str, Any]:
    return {"path": change.path, "desired": _value(change.desired), "live": _value(change.live)}


def _value(value: Any) -> Any:
    """A field value, cut when long: a notification is not a copy of the object."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return value if len(text) <= MAX_VALUE_CHARS else _clip(text, MAX_VALUE_CHARS)


# -- Slack -----------------------------------------------------------------------

_SLACK_ICONS = {
    EventType.DRIFT_CORRECTED: ":wrench:",
    EventType.PASS_FAILED: ":x:",
    EventType.TARGET_RECOVERED: ":white_check_mark:",
    EventType.HEALTH_CHANGED: ":hourglass:",
    EventType.DRIFT_FIGHT: ":crossed_swords:",
    EventType.LEASE_LOST: ":warning:",
}


def slack_body(event: Event, link_map: dict[str, str | None]) -> bytes:
    """One Slack-compatible message (Slack, Mattermost, Rocket.Chat) for one event."""
    return json.dumps({"text": slack_text(event, link_map)}).encode()


def slack_text(event: Event, link_map: dict[str, str | None]) -> str:
    icon = _SLACK_ICONS.get(event.type, ":information_source:")
    lines = [f"{icon} *{_mrkdwn(event.target)}*: {_mrkdwn(_headline(event))}"]
    if event.revision is not None:
        revision = event.revision
        commit = f"`{revision.short}`"
        if link_map.get("commit"):
            commit = f"<{link_map['commit']}|{revision.short}>"
        author = revision.author
        by = f" by {_mrkdwn(author)}" if author else ""
        lines.append(f"{commit} {_mrkdwn(revision.message)}{by}")
    for entry in event.objects[:MAX_SLACK_OBJECTS]:
        lines.append(f"• {_mrkdwn(_object_line(entry))}")
    hidden = len(event.objects) - MAX_SLACK_OBJECTS
    if hidden > 0:
        lines.append(f"…and {hidden} more")
    if link_map.get("status"):
        lines.append(f"<{link_map['status']}|status page>")
    return "\n".join(lines)


def _headline(event: Event) -> str:
    if event.type is EventType.DRIFT_CORRECTED:
        count = len(event.objects)
        return f"corrected drift, {count} object{'s' * (count != 1)} written"
    if event.type is EventType.PASS_FAILED:
        return f"pass failed: {_clip(one_line(event.error or 'failed'), 500)}"
    if event.type is EventType.TARGET_RECOVERED:
        return f"recovered (was {event.previous_health})"
    if event.type is EventType.HEALTH_CHANGED:
        why = f": {_clip(one_line(event.reason), 500)}" if event.reason else ""
        return f"{_health_move(event)}{why}"
    if event.type is EventType.DRIFT_FIGHT:
        return f"drift fight: {_clip(event.reason, 500)}"
    if event.type is EventType.LEASE_LOST:
        return f"lease lost by {_clip(one_line(event.reason), 500)}"
    return str(event.type.value)


def _object_line(entry: ChangeSetEntry) -> str:
    drift = entry.drift
    paths = [change.path for change in (drift.changes if drift else ())]
    owners = {owner.manager for owner in (drift.owners if drift else ())}
    managers = sorted(owners | set(entry.lost_managers))
    text = f"{entry.action.value} {entry.key}"
    if paths:
        text += f": {', '.join(paths[:5])}" + (f" (+{len(paths) - 5})" if len(paths) > 5 else "")
    if managers:
        text += f" (changed by {', '.join(managers)})"
    if entry.error:
        text += f": {_clip(one_line(entry.error), 200)}"
    return text


def _mrkdwn(text: str) -> str:
    """Slack reads &, < and > as markup (`<!channel>` pings everyone): escape them."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- commit status ---------------------------------------------------------------

_GITLAB_STATES = {
    CommitState.SUCCESS: "success",
    CommitState.FAILURE: "failed",
    CommitState.PENDING: "pending",
}


@dataclass(frozen=True)
class StatusRequest:
    """A forge API call without its credentials: the sink adds the token header."""

    path: str  # appended to the API base URL
    body: bytes


def commit_status_request(
    forge: Forge,
    repository: str,
    commit: str,
    state: CommitState,
    *,
    context: str,
    description: str,
    target_url: str | None,
) -> StatusRequest:
    """The forge's documented "create a commit status" call for one commit."""
    body: dict[str, str] = {"description": _clip(description, MAX_DESCRIPTION)}
    if target_url:
        body["target_url"] = target_url
    if forge is Forge.GITLAB:
        # POST /projects/:id/statuses/:sha; :id may be the URL-encoded project path.
        body |= {"state": _GITLAB_STATES[state], "name": context}
        path = f"/projects/{quote(repository, safe='')}/statuses/{commit}"
    else:  # GitHub, Gitea and Forgejo share the route and the states
        body |= {"state": state.value, "context": context}
        path = f"/repos/{_owner_repo(repository)}/statuses/{commit}"
    return StatusRequest(path, json.dumps(body, sort_keys=True).encode())


def status_context(target: str) -> str:
    return f"gitopsd/{target}"


def auth_headers(forge: Forge, token: str) -> dict[str, str]:
    """Each forge's documented token header."""
    if forge is Forge.GITLAB:
        return {"PRIVATE-TOKEN": token}
    if forge is Forge.GITHUB:
        return {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
    return {"Authorization": f"token {token}"}


def default_api_url(forge: Forge) -> str | None:
    return {Forge.GITHUB: "https://api.github.com", Forge.GITLAB: "https://gitlab.com/api/v4"}.get(
        forge
    )


def _owner_repo(repository: str) -> str:
    owner, _, name = repository.partition("/")
    return f"{quote(owner, safe='')}/{quote(name, safe='')}"


# -- helpers ---------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
