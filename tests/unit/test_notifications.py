"""Events from passes, and the webhook, Slack and commit-status messages made from them."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from gitopsd.errors import ClusterUnreachableError, RenderError
from gitopsd.model import (
    Action,
    ChangeSet,
    ChangeSetEntry,
    DriftReport,
    FieldChange,
    FieldOwner,
    ResourceKey,
    Revision,
)
from gitopsd.notifications import (
    CommitState,
    EventType,
    Forge,
    HealthChange,
    auth_headers,
    commit_link,
    commit_state,
    commit_status_request,
    dedupe_key,
    fight_event,
    lease_lost_event,
    pass_events,
    repository_of,
    sign,
    slack_body,
    slack_text,
    webhook_body,
)
from gitopsd.passresult import PassOutcome, PassResult

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REVISION = Revision(COMMIT, "refs/heads/main", "Scale <web> & friends", "Ada Lovelace")
APP = ResourceKey("", "ConfigMap", "prod", "app")
CREDS = ResourceKey("", "Secret", "prod", "creds")
HASHED = "<redacted sha256:1a2b3c4d>"  # what normalize puts in place of a Secret value


def corrected(key: ResourceKey = APP, path: str = "/data/v", manager: str = "kubectl-edit") -> Any:
    drift = DriftReport(
        key, False, (FieldChange(path, "1", "2"),), (FieldOwner(manager, "Update", "t"),)
    )
    return ChangeSetEntry(key, Action.CORRECTED, drift)


def result(
    outcome: PassOutcome, *entries: ChangeSetEntry, error: Any = None, revision: Any = REVISION
) -> PassResult:
    return PassResult("web", outcome, revision, ChangeSet(entries), None, error, 1_000_000.0, 2.5)


def test_a_pass_that_corrected_drift_is_one_event_with_its_written_objects() -> None:
    unchanged = ChangeSetEntry(CREDS, Action.UNCHANGED)
    events = pass_events(result(PassOutcome.CONVERGED, corrected(), unchanged), None, dry_run=False)
    assert [e.type for e in events] == [EventType.DRIFT_CORRECTED]
    assert events[0].objects == (corrected(),)
    assert events[0].at == 1_000_002.5 and events[0].commit == COMMIT


@pytest.mark.parametrize(
    ("outcome", "dry_run"),
    [(PassOutcome.IN_SYNC, False), (PassOutcome.WOULD_CHANGE, True), (PassOutcome.CONVERGED, True)],
)
def test_no_drift_event_without_a_write(outcome: PassOutcome, dry_run: bool) -> None:
    assert pass_events(result(outcome, corrected()), None, dry_run=dry_run) == ()


def test_a_failed_pass_and_a_recovery() -> None:
    failing = result(PassOutcome.FAILED, error=RenderError("a.yaml#0: kind is missing"))
    (failed,) = pass_events(failing, HealthChange("ok", "failed"), dry_run=False)
    assert failed.type is EventType.PASS_FAILED and failed.error == "a.yaml#0: kind is missing"
    assert failed.health == "failed"
    back = result(PassOutcome.CONVERGED, corrected())
    events = pass_events(back, HealthChange("cluster_down", "ok"), dry_run=False)
    assert [e.type for e in events] == [EventType.TARGET_RECOVERED, EventType.DRIFT_CORRECTED]
    assert events[0].previous_health == "cluster_down"
    # The first pass of a daemon is not a recovery.
    assert (
        pass_events(result(PassOutcome.IN_SYNC), HealthChange("unknown", "ok"), dry_run=False) == ()
    )


def test_webhook_body_is_the_documented_document() -> None:
    secret_drift = DriftReport(CREDS, False, (FieldChange("/data/password", HASHED, "<x>"),))
    entries = (corrected(), ChangeSetEntry(CREDS, Action.CORRECTED, secret_drift))
    (event,) = pass_events(result(PassOutcome.CONVERGED, *entries), None, dry_run=False)
    links = {"status": "https://ops.example/targets/web", "commit": None}
    body = json.loads(webhook_body(event, links))
    assert set(body) == {
        "version",
        "event",
        "target",
        "time",
        "outcome",
        "summary",
        "revision",
        "health",
        "previous_health",
        "error",
        "reason",
        "objects",
        "objects_total",
        "links",
        "gitopsd",
    }
    assert body["event"] == "drift_corrected" and body["target"] == "web"
    assert body["time"] == "1970-01-12T13:46:42.500000Z"
    assert body["revision"] == {
        "commit": COMMIT,
        "short": COMMIT[:12],
        "ref": "refs/heads/main",
        "message": "Scale <web> & friends",
        "author": "Ada Lovelace",
    }
    assert body["objects"][0] == {
        "group": "",
        "kind": "ConfigMap",
        "namespace": "prod",
        "name": "app",
        "action": "corrected",
        "missing": False,
        "fields": [{"path": "/data/v", "desired": "1", "live": "2"}],
        "managers": ["kubectl-edit"],
        "lost_managers": [],
        "error": None,
    }
    assert body["objects"][1]["fields"][0]["desired"] == HASHED
    assert body["links"] == links and body["objects_total"] == 2


def test_webhook_body_bounds_objects_and_values() -> None:
    big = DriftReport(APP, False, (FieldChange("/data/blob", "x" * 5000, None),))
    many = [ChangeSetEntry(APP, Action.CORRECTED, big)] * 150
    (event,) = pass_events(result(PassOutcome.CONVERGED, *many), None, dry_run=False)
    body = json.loads(webhook_body(event, {}))
    assert len(body["objects"]) == 100 and body["objects_total"] == 150
    assert len(body["objects"][0]["fields"][0]["desired"]) == 1024


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"event": "pass_failed"}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert sign("s3cret", body) == f"sha256={expected}"


def test_slack_message_summarises_the_pass_in_one_message() -> None:
    entries = [corrected(ResourceKey("", "ConfigMap", "prod", f"cm-{i}")) for i in range(20)]
    (event,) = pass_events(result(PassOutcome.CONVERGED, *entries), None, dry_run=False)
    text = slack_text(event, {"status": "https://ops.example/targets/web", "commit": None})
    lines = text.splitlines()
    assert lines[0] == ":wrench: *web*: corrected drift, 20 objects written"
    # Slack markup in a commit message is escaped, not interpreted.
    assert lines[1] == "`0123456789ab` Scale &lt;web&gt; &amp; friends by Ada Lovelace"
    assert lines[2] == "• corrected ConfigMap prod/cm-0: /data/v (changed by kubectl-edit)"
    assert "…and 5 more" in lines and lines[-1] == "<https://ops.example/targets/web|status page>"
    assert json.loads(slack_body(event, {})) == {"text": slack_text(event, {})}


def test_slack_failure_line() -> None:
    failing = result(PassOutcome.FAILED, error=RenderError("bad <!channel> file"), revision=None)
    (event,) = pass_events(failing, None, dry_run=False)
    assert slack_text(event, {}) == ":x: *web*: pass failed: bad &lt;!channel&gt; file"


@pytest.mark.parametrize(
    ("outcome", "error", "state"),
    [
        (PassOutcome.IN_SYNC, None, CommitState.SUCCESS),
        (PassOutcome.CONVERGED, None, CommitState.SUCCESS),
        (PassOutcome.WOULD_CHANGE, None, CommitState.PENDING),
        (PassOutcome.FAILED, RenderError("bad"), CommitState.FAILURE),
        # The cluster was down: the commit is not wrong, it is not applied yet.
        (PassOutcome.FAILED, ClusterUnreachableError("down", retryable=True), CommitState.PENDING),
    ],
)
def test_commit_state_of_a_pass(outcome: PassOutcome, error: Any, state: CommitState) -> None:
    assert commit_state(result(outcome, error=error)) is state


def test_no_commit_state_without_a_revision() -> None:
    assert commit_state(result(PassOutcome.FAILED, error=RenderError("x"), revision=None)) is None


@pytest.mark.parametrize(
    ("forge", "state", "path", "body"),
    [
        (
            Forge.GITHUB,
            CommitState.FAILURE,
            f"/repos/org/infra/statuses/{COMMIT}",
            {"state": "failure", "context": "gitopsd/web"},
        ),
        (
            Forge.GITEA,
            CommitState.PENDING,
            f"/repos/org/infra/statuses/{COMMIT}",
            {"state": "pending", "context": "gitopsd/web"},
        ),
        (
            Forge.GITLAB,
            CommitState.FAILURE,
            f"/projects/org%2Finfra/statuses/{COMMIT}",
            {"state": "failed", "name": "gitopsd/web"},
        ),
    ],
)
def test_commit_status_requests_follow_each_forge(
    forge: Forge, state: CommitState, path: str, body: dict[str, str]
) -> None:
    request = commit_status_request(
        forge,
        "org/infra",
        COMMIT,
        state,
        context="gitopsd/web",
        description="d" * 200,
        target_url="https://ops.example/targets/web",
    )
    assert request.path == path
    sent = json.loads(request.body)
    assert sent == {**body, "description": "d" * 139 + "…", "target_url": sent["target_url"]}


def test_auth_headers() -> None:
    assert auth_headers(Forge.GITLAB, "t") == {"PRIVATE-TOKEN": "t"}
    assert auth_headers(Forge.GITHUB, "t")["Authorization"] == "Bearer t"
    assert auth_headers(Forge.FORGEJO, "t") == {"Authorization": "token t"}


@pytest.mark.parametrize(
    ("repo", "github", "gitlab", "link"),
    [
        (
            "https://deploy@github.com/org/infra.git",
            "org/infra",
            "org/infra",
            f"https://github.com/org/infra/commit/{COMMIT}",
        ),
        (
            "git@gitlab.example:grp/sub/infra.git",
            "sub/infra",
            "grp/sub/infra",
            f"https://gitlab.example/grp/sub/infra/-/commit/{COMMIT}",
        ),
        (
            "ssh://git@git.example:2222/org/infra",
            "org/infra",
            "org/infra",
            f"https://git.example/org/infra/commit/{COMMIT}",
        ),
        ("/srv/git/infra.git", None, None, None),
    ],
)
def test_repository_and_commit_link_from_the_remote(
    repo: str, github: str | None, gitlab: str | None, link: str | None
) -> None:
    assert repository_of(repo, Forge.GITHUB) == github
    assert repository_of(repo, Forge.GITLAB) == gitlab
    assert commit_link(repo, COMMIT) == link


def test_equal_events_share_a_dedupe_key() -> None:
    failing = result(PassOutcome.FAILED, error=RenderError("bad"))
    (one,) = pass_events(failing, None, dry_run=False)
    (two,) = pass_events(failing, None, dry_run=False)
    other = result(PassOutcome.FAILED, error=RenderError("worse"))
    (three,) = pass_events(other, None, dry_run=False)
    assert dedupe_key(one) == dedupe_key(two) != dedupe_key(three)


def test_a_drift_fight_names_the_object_its_fields_and_the_other_writer() -> None:
    event = fight_event("web", 1_000_000.0, corrected(manager="looper"), 5, 300.0)
    body = json.loads(webhook_body(event, {"status": None, "commit": None}))
    assert body["event"] == "drift_fight" and body["outcome"] == "drift_fight"
    assert body["summary"] == "web: drift fight over ConfigMap prod/app"
    assert body["reason"].startswith("corrected 5 times within 300s and changed back each time")
    [app] = body["objects"]
    assert app["managers"] == ["looper"] and app["fields"][0]["path"] == "/data/v"
    text = slack_text(event, {})
    assert text.startswith(":crossed_swords: *web*: drift fight: corrected 5 times")
    assert "• corrected ConfigMap prod/app: /data/v (changed by looper)" in text


def test_a_lost_lease_names_the_replica_and_why() -> None:
    event = lease_lost_event("web", 1_000_000.0, "bastion-2", "held by bastion-1")
    body = json.loads(webhook_body(event, {"status": None, "commit": None}))
    assert body["event"] == "lease_lost" and body["revision"] is None and body["objects"] == []
    assert body["summary"] == "web: lease lost by bastion-2: held by bastion-1"
    assert body["reason"] == "bastion-2: held by bastion-1"
    assert slack_text(event, {}) == ":warning: *web*: lease lost by bastion-2: held by bastion-1"
    again = lease_lost_event("web", 1_000_030.0, "bastion-2", "heartbeat not renewed for 9.1s")
    assert dedupe_key(again) == dedupe_key(event)  # one alert per window, not per round
    assert dedupe_key(lease_lost_event("api", 1.0, "bastion-2", "x")) != dedupe_key(event)
