"""Notification delivery against real HTTP receivers on loopback.

Each sink is built from a configuration file, as the daemon builds it, and
sends with its real worker thread and urllib to a receiver that behaves as the
service documents (a webhook checking its signature, Slack, each forge's commit
status endpoint), or that is down, slow or rate limiting. Delays come from a
ManualClock the sender waits on, so backoff, Retry-After, rate limits and the
dedupe window are asserted to the second without sleeping. No token, signing
secret or webhook URL path may appear in any log line: every test checks.
"""

from __future__ import annotations

import json
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from gitopsd.clock import ManualClock
from gitopsd.config import load_config
from gitopsd.daemon import Daemon
from gitopsd.errors import ClusterUnreachableError, RenderError
from gitopsd.journal import Journal
from gitopsd.metrics import Metrics
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
from gitopsd.notifications import HealthChange, fight_event, lease_lost_event
from gitopsd.passresult import PassOutcome, PassResult
from gitopsd.sinks import Outbox, read_specs
from tests.daemon.receivers import (
    Receiver,
    forge_check,
    serving,
    slack_check,
    webhook_check,
)
from tests.support.fake_runner import Script
from tests.support.git_remotes import free_port
from tests.support.waiting import eventually

SECRET = "sign-with-THIS-secret"
TOKEN = "forge-token-0123456789"
URL_TOKEN = "T000/B000/XXXXslacktokenXXXX"  # what a Slack URL's path is: a credential
COMMIT = "0123456789abcdef0123456789abcdef01234567"
REVISION = Revision(COMMIT, "refs/heads/main", "Raise web replicas", "Ada Lovelace")
START = 1_000_000.0


@pytest.fixture(autouse=True)
def log_events() -> Iterator[list[dict[str, Any]]]:
    """Every log event of the test; none may carry a credential or a URL's path."""
    with structlog.testing.capture_logs() as events:
        yield events
    text = json.dumps(events, default=str)
    for credential in (SECRET, TOKEN, URL_TOKEN, "XXXXslacktoken"):
        assert credential not in text


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


class Sinks:
    """Outboxes built from configuration files in the test's folder."""

    def __init__(self, folder: Path, clock: ManualClock) -> None:
        self.folder, self.clock = folder, clock
        self.metrics = Metrics()
        self.outboxes: list[Outbox] = []
        (folder / "hook-secret").write_text(SECRET + "\n")
        (folder / "forge-token").write_text(TOKEN + "\n")

    def build(self, sinks: str, **env: str) -> Outbox:
        path = self.folder / "gitopsd.yaml"
        path.write_text(
            "state_dir: state\ntargets:\n"
            "  - {name: web, repo: 'https://git.example/org/infra.git', branch: main}\n"
            "notify:\n" + textwrap.indent(textwrap.dedent(sinks), "  ")
        )
        config = load_config(path)
        outbox = Outbox(read_specs(config), config, self.metrics, self.clock)
        outbox.start()
        self.outboxes.append(outbox)
        return outbox

    def counted(self, name: str, **labels: str) -> float:
        """A notification counter's value for the labels given."""
        families = text_string_to_metric_families(self.metrics.render().decode())
        for family in families:
            for sample in family.samples:
                if sample.name == f"gitopsd_notifications_{name}_total" and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0


@pytest.fixture
def sinks(tmp_path: Path, clock: ManualClock) -> Iterator[Sinks]:
    made = Sinks(tmp_path, clock)
    yield made
    for outbox in made.outboxes:
        outbox.close(timeout=5)


def drift(name: str = "app", path: str = "/data/v") -> ChangeSetEntry:
    key = ResourceKey("", "ConfigMap", "prod", name)
    owners = (FieldOwner("kubectl-edit", "Update", "t"),)
    report = DriftReport(key, False, (FieldChange(path, "1", "2"),), owners)
    return ChangeSetEntry(key, Action.CORRECTED, report)


def converged(*entries: ChangeSetEntry, at: float = START) -> PassResult:
    changes = ChangeSet(entries or (drift(),))
    return PassResult("web", PassOutcome.CONVERGED, REVISION, changes, None, None, at, 1.5)


def failed(message: str = "a.yaml#0: kind is missing", *, retryable: bool = False) -> PassResult:
    error = ClusterUnreachableError(message) if retryable else RenderError(message)
    return PassResult("web", PassOutcome.FAILED, REVISION, ChangeSet(), None, error, START, 0.5)


def in_sync() -> PassResult:
    return PassResult("web", PassOutcome.IN_SYNC, REVISION, ChangeSet(), None, None, START, 0.2)


def named(events: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == event]


def test_webhook_body_is_signed_and_the_receiver_verifies_it(
    sinks: Sinks, clock: ManualClock, log_events: list[dict[str, Any]]
) -> None:
    with (
        serving(Receiver(clock, webhook_check(SECRET))) as good,
        serving(Receiver(clock, webhook_check("another secret"))) as wrong,
    ):
        outbox = sinks.build(
            f"""\
            - {{name: ops, type: webhook, url: "{good.url}/hooks/gitopsd",
               secret_file: hook-secret}}
            - {{name: other, type: webhook, url: "{wrong.url}/h", secret_file: hook-secret}}
            """
        )
        outbox.publish(converged(), None, dry_run=False)
        assert good.wait_for(1) and wrong.wait_for(1) and outbox.idle(10)
    (request,) = good.requests
    assert request.answered == 200 and request.path == "/hooks/gitopsd"
    assert request.headers["x-gitopsd-event"] == "drift_corrected"
    body = request.json()
    assert body["event"] == "drift_corrected" and body["revision"]["author"] == "Ada Lovelace"
    assert body["objects"][0]["fields"] == [{"path": "/data/v", "desired": "1", "live": "2"}]
    assert body["objects"][0]["managers"] == ["kubectl-edit"]
    # A receiver with another secret refuses the signature: a 4xx is not retried.
    assert [r.answered for r in wrong.requests] == [401]
    assert sinks.counted("sent", sink="ops") == 1
    assert sinks.counted("dropped", sink="other", reason="rejected") == 1
    (rejected,) = named(log_events, "notify_rejected")
    assert rejected["sink"] == "other" and rejected["problem"] == "HTTP 401"


def test_slack_gets_one_readable_message_per_pass(sinks: Sinks, clock: ManualClock) -> None:
    with serving(Receiver(clock, slack_check)) as slack:
        (sinks.folder / "slack-url").write_text(f"{slack.url}/services/{URL_TOKEN}\n")
        outbox = sinks.build(
            "- {type: slack, url_file: slack-url, status_url: 'https://ops.example/'}\n"
        )
        outbox.publish(converged(drift("a"), drift("b"), drift("c")), None, dry_run=False)
        outbox.publish(failed(), HealthChange("ok", "failed"), dry_run=False)
        assert slack.wait_for(2) and outbox.idle(10)
    first, second = (r.json()["text"].splitlines() for r in slack.requests)
    assert [r.answered for r in slack.requests] == [200, 200]
    assert first[0] == ":wrench: *web*: corrected drift, 3 objects written"
    assert (
        first[1] == "<https://git.example/org/infra/commit/" + COMMIT + "|0123456789ab> "
        "Raise web replicas by Ada Lovelace"
    )
    assert first[2:5] == [
        f"• corrected ConfigMap prod/{n}: /data/v (changed by kubectl-edit)" for n in "abc"
    ]
    assert first[-1] == "<https://ops.example/targets/web|status page>"
    assert second[0] == ":x: *web*: pass failed: a.yaml#0: kind is missing"


@pytest.mark.parametrize(
    ("forge", "base", "route", "states"),
    [
        ("github", "", "/repos/org/infra/statuses/", ["success", "failure", "pending", "success"]),
        (
            "gitea",
            "/api/v1",
            "/api/v1/repos/org/infra/statuses/",
            ["success", "failure", "pending", "success"],
        ),
        (
            "gitlab",
            "/api/v4",
            "/api/v4/projects/org%2Finfra/statuses/",
            ["success", "failed", "pending", "success"],
        ),
    ],
)
def test_commit_status_on_each_forge(
    sinks: Sinks, clock: ManualClock, forge: str, base: str, route: str, states: list[str]
) -> None:
    with serving(Receiver(clock, forge_check(forge, TOKEN))) as api:
        outbox = sinks.build(
            f"- {{type: commit_status, forge: {forge}, api_url: '{api.url}{base}', "
            "token_file: forge-token, status_url: 'https://ops.example'}\n"
        )
        steps = [converged(), in_sync(), failed(), failed(retryable=True), in_sync()]
        for count, result in enumerate(steps):
            outbox.publish(result, None, dry_run=False)
            assert outbox.idle(10), count
        assert api.wait_for(4)
    assert [r.answered for r in api.requests] == [201] * 4  # the forge accepted every one
    assert [r.path for r in api.requests] == [route + COMMIT] * 4
    sent = [r.json() for r in api.requests]
    assert [s["state"] for s in sent] == states  # the in-sync pass after success: not resent
    label = "name" if forge == "gitlab" else "context"
    assert {s[label] for s in sent} == {"gitopsd/web"}
    assert sent[0]["target_url"] == "https://ops.example/targets/web"
    assert sent[2]["description"] == "failed: a.yaml#0: kind is missing"


def test_a_receiver_answering_429_is_retried_after_what_it_asked(
    sinks: Sinks, clock: ManualClock
) -> None:
    with serving(Receiver(clock)) as hook:
        hook.answers.extend([(429, {"Retry-After": "7"}, b""), (503, {}, b""), (503, {}, b"")])
        outbox = sinks.build(f"- {{type: webhook, url: '{hook.url}/h', max_attempts: 5}}\n")
        outbox.publish(failed(), None, dry_run=False)
        assert hook.wait_for(4) and outbox.idle(10)
    assert [r.answered for r in hook.requests] == [429, 503, 503, 200]
    times = [r.at - START for r in hook.requests]
    # Retry-After: 7 s; then the backoff after the second and third failures: 2 s, then 4 s.
    assert times == [0.0, 7.0, 9.0, 13.0]
    assert sinks.counted("failed", sink="webhook") == 3
    assert sinks.counted("sent", sink="webhook") == 1


def test_a_receiver_that_is_down_takes_the_sink_down_with_one_error_until_a_probe_passes(
    sinks: Sinks, clock: ManualClock, log_events: list[dict[str, Any]]
) -> None:
    port = free_port()  # nothing listens there yet
    outbox = sinks.build(
        f"- {{name: ops, type: webhook, url: 'http://127.0.0.1:{port}/{URL_TOKEN}', "
        "max_attempts: 3}\n"
    )
    outbox.publish(failed("first"), None, dry_run=False)
    assert outbox.idle(10)
    assert clock.time() - START == 1.0 + 2.0  # two backoff waits between three attempts
    for n in range(3):  # while down, nothing is attempted: each is dropped at once
        outbox.publish(failed(f"while down {n}"), None, dry_run=False)
    assert outbox.idle(10)
    assert sinks.counted("failed", sink="ops") == 3
    assert sinks.counted("dropped", sink="ops", reason="undeliverable") == 1
    assert sinks.counted("dropped", sink="ops", reason="sink_down") == 3
    (down,) = named(log_events, "notify_sink_down")
    assert down["endpoint"] == f"http://127.0.0.1:{port}/…" and down["attempts"] == 3
    assert down["problem"] == "cannot connect: Connection refused"
    with serving(Receiver(clock), port=port) as back:
        clock.advance(299.0)
        outbox.publish(failed("too early for a probe"), None, dry_run=False)
        clock.advance(1.0)
        outbox.publish(failed("the probe"), None, dry_run=False)
        assert back.wait_for(1) and outbox.idle(10)
        outbox.publish(failed("after"), None, dry_run=False)
        assert back.wait_for(2) and outbox.idle(10)
    assert [r.json()["error"] for r in back.requests] == ["the probe", "after"]
    assert len(named(log_events, "notify_sink_down")) == 1  # one error for the whole outage
    (recovered,) = named(log_events, "notify_sink_recovered")
    assert recovered["down_seconds"] == 300.0


def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt(
    sinks: Sinks, clock: ManualClock, log_events: list[dict[str, Any]]
) -> None:
    receiver = Receiver(clock)
    receiver.hold = threading.Event()
    with serving(receiver) as slow:
        outbox = sinks.build(
            f"- {{type: webhook, url: '{slow.url}/h', timeout: 200ms, max_attempts: 2}}\n"
        )
        outbox.publish(failed(), None, dry_run=False)
        assert outbox.idle(10)
        assert slow.wait_holding(2)  # both attempts reached it; neither was answered in time
    assert sinks.counted("failed", sink="webhook") == 2
    (down,) = named(log_events, "notify_sink_down")
    assert down["problem"] == "no answer within 0.2s"


def test_rate_limit_spaces_messages_beyond_the_burst(sinks: Sinks, clock: ManualClock) -> None:
    with serving(Receiver(clock)) as hook:
        outbox = sinks.build(f"- {{type: webhook, url: '{hook.url}/h', max_per_minute: 2}}\n")
        for n in range(4):
            outbox.publish(failed(f"error {n}"), None, dry_run=False)
        assert hook.wait_for(4) and outbox.idle(10)
    assert [r.at - START for r in hook.requests] == [0.0, 0.0, 30.0, 60.0]
    assert [r.json()["error"] for r in hook.requests] == [f"error {n}" for n in range(4)]


def test_repeats_within_the_window_are_collapsed(sinks: Sinks, clock: ManualClock) -> None:
    with serving(Receiver(clock)) as hook:
        outbox = sinks.build(f"- {{type: webhook, url: '{hook.url}/h', dedupe_window: 10m}}\n")
        for _ in range(3):
            outbox.publish(failed(), None, dry_run=False)
        outbox.publish(failed("another error"), None, dry_run=False)
        assert hook.wait_for(2) and outbox.idle(10)
        clock.advance(600.0)
        outbox.publish(failed(), None, dry_run=False)  # a reminder, once the window is over
        assert hook.wait_for(3) and outbox.idle(10)
    assert [r.json()["error"] for r in hook.requests] == [
        "a.yaml#0: kind is missing",
        "another error",
        "a.yaml#0: kind is missing",
    ]
    assert sinks.counted("dropped", sink="webhook", reason="duplicate") == 2


def test_the_queue_is_bounded_and_keeps_the_newest(sinks: Sinks, clock: ManualClock) -> None:
    receiver = Receiver(clock)
    receiver.hold = threading.Event()
    with serving(receiver) as slow:
        outbox = sinks.build(f"- {{type: webhook, url: '{slow.url}/h', queue_size: 2}}\n")
        outbox.publish(failed("in flight"), None, dry_run=False)
        assert slow.wait_holding(1)
        for n in range(4):
            outbox.publish(failed(f"queued {n}"), None, dry_run=False)
        assert sinks.counted("dropped", sink="webhook", reason="queue_full") == 2
        receiver.hold.set()
        assert slow.wait_for(3) and outbox.idle(10)
    assert [r.json()["error"] for r in slow.requests] == ["in flight", "queued 2", "queued 3"]


def test_targets_and_events_filter_what_a_sink_gets(sinks: Sinks, clock: ManualClock) -> None:
    with serving(Receiver(clock)) as hook:
        outbox = sinks.build(
            f"""\
            - {{name: failures, type: webhook, url: '{hook.url}/failures', events: [pass_failed]}}
            - {{name: nobody, type: webhook, url: '{hook.url}/none', targets: [web],
               events: [target_recovered]}}
            """
        )
        outbox.publish(converged(), None, dry_run=False)
        outbox.publish(failed(), HealthChange("ok", "failed"), dry_run=False)
        assert hook.wait_for(1) and outbox.idle(10)
    assert [(r.path, r.json()["event"]) for r in hook.requests] == [("/failures", "pass_failed")]


def test_fights_and_lost_leases_go_to_the_sinks_that_asked(
    sinks: Sinks, clock: ManualClock
) -> None:
    with serving(Receiver(clock, slack_check)) as chat, serving(Receiver(clock)) as hook:
        (sinks.folder / "slack-url").write_text(f"{chat.url}/services/{URL_TOKEN}\n")
        outbox = sinks.build(
            f"""\
            - {{name: ops, type: webhook, url: '{hook.url}/ops', events: [drift_fight, lease_lost]}}
            - {{name: failures, type: webhook, url: '{hook.url}/failures', events: [pass_failed]}}
            - {{name: chat, type: slack, url_file: slack-url}}
            - {{name: gh, type: commit_status, forge: github, token_file: forge-token,
               api_url: '{hook.url}/api'}}
            """
        )
        outbox.publish_event(fight_event("web", START, drift(), 5, 300.0))
        outbox.publish_event(lease_lost_event("web", START, "bastion-2", "held by bastion-1"))
        assert hook.wait_for(2) and chat.wait_for(2) and outbox.idle(10)
    got = [(r.path, r.json()["event"], r.json()["reason"]) for r in hook.requests]
    assert got == [
        ("/ops", "drift_fight", fight_event("web", START, drift(), 5, 300.0).reason),
        ("/ops", "lease_lost", "bastion-2: held by bastion-1"),
    ]
    texts = [r.json()["text"] for r in chat.requests]
    assert texts[0].startswith(":crossed_swords: *web*: drift fight: corrected 5 times")
    assert texts[1] == ":warning: *web*: lease lost by bastion-2: held by bastion-1"


def test_the_daemon_notifies_from_its_passes_and_never_waits_for_a_sink(tmp_path: Path) -> None:
    clock = ManualClock(float(int(time.time())))
    script = Script(clock=clock)
    stuck = Receiver(clock)
    stuck.hold = threading.Event()
    (tmp_path / "hook-secret").write_text(SECRET + "\n")
    port = free_port()
    with serving(Receiver(clock, webhook_check(SECRET))) as hook, serving(stuck) as slow:
        path = tmp_path / "gitopsd.yaml"
        path.write_text(
            textwrap.dedent(
                f"""\
                state_dir: state
                interval: 1h
                http: {{port: {port}}}
                targets:
                  - {{name: web, repo: 'https://git.example/org/infra.git', branch: main}}
                notify:
                  - {{name: ops, type: webhook, url: '{hook.url}/h', secret_file: hook-secret}}
                  - {{name: stuck, type: webhook, url: '{slow.url}/h', timeout: 1m}}
                """
            )
        )
        config = load_config(path)
        daemon = Daemon(
            config,
            runner_factory=script.factory,
            journal=Journal.open(config.state_dir),
            clock=clock,
        )

        def metrics_of() -> str:
            return daemon.backend.metrics().decode()

        thread = threading.Thread(target=daemon.run)
        thread.start()
        try:
            assert script.wait_calls("web", 1)
            script.outcomes["web"] = PassOutcome.FAILED
            script.errors["web"] = RenderError("a.yaml#0: kind is missing")
            daemon.trigger("web")
            assert script.wait_calls("web", 2) and hook.wait_for(1)
            script.outcomes["web"] = PassOutcome.CONVERGED
            daemon.trigger("web")
            assert script.wait_calls("web", 3) and hook.wait_for(3)
            # Every pass ended while the stuck sink still holds its first message.
            assert slow.wait_holding(1) and stuck.holding == 1 and not stuck.requests
            events = [r.json()["event"] for r in hook.requests]
            assert events == ["pass_failed", "target_recovered", "drift_corrected"]
            assert _eventually(lambda: 'notifications_sent_total{sink="ops"} 3.0' in metrics_of())
            code, headers, page = get(f"http://127.0.0.1:{port}/")
            assert code == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
            assert "script-src" not in headers["Content-Security-Policy"]
            assert "default-src 'none'" in headers["Content-Security-Policy"]
            assert 'href="targets/web"' in page and "in sync" in page
            code, _, page = get(f"http://127.0.0.1:{port}/targets/web")
            assert code == 200 and "a.yaml#0: kind is missing</pre>" in page
            assert get(f"http://127.0.0.1:{port}/targets/nope")[0] == 404
        finally:
            stuck.hold.set()
            script.release_all()
            daemon.request_stop()
            thread.join(10)


def _eventually(condition: Callable[[], object], timeout: float = 10.0) -> bool:
    return eventually(condition, timeout)


def get(url: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read().decode()


def test_a_reload_moves_a_sink_and_refuses_one_whose_url_cannot_be_read(
    tmp_path: Path, log_events: list[dict[str, Any]]
) -> None:
    clock = ManualClock(float(int(time.time())))
    script = Script(clock=clock, outcomes={"web": PassOutcome.FAILED})
    script.errors["web"] = RenderError("a.yaml#0: kind is missing")
    with serving(Receiver(clock)) as first, serving(Receiver(clock)) as second:
        path = tmp_path / "gitopsd.yaml"
        head = (
            "state_dir: state\ninterval: 1h\ntargets:\n"
            "  - {name: web, repo: 'https://git.example/org/infra.git', branch: main}\nnotify:\n"
        )
        path.write_text(head + f"  - {{type: webhook, url: '{first.url}/h'}}\n")
        config = load_config(path)
        daemon = Daemon(
            config,
            runner_factory=script.factory,
            journal=Journal.open(config.state_dir),
            clock=clock,
        )
        thread = threading.Thread(target=daemon.run)
        thread.start()
        try:
            assert script.wait_calls("web", 1) and first.wait_for(1)
            path.write_text(head + "  - {type: webhook, url_file: absent-url-file}\n")
            assert daemon.reload() is False  # the running sinks are kept
            (refused,) = named(log_events, "config_reload_refused")
            error = refused["error"]
            assert "notify[0] (webhook)" in error and "absent-url-file" in error
            path.write_text(head + f"  - {{type: webhook, url: '{second.url}/h'}}\n")
            assert daemon.reload() is True
            script.errors["web"] = RenderError("another error")
            daemon.trigger("web")
            assert script.wait_calls("web", 2) and second.wait_for(1)
            assert [r.json()["error"] for r in second.requests] == ["another error"]
            assert len(first.requests) == 1
        finally:
            script.release_all()
            daemon.request_stop()
            thread.join(10)
